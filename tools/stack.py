"""The three functions under functions-framework, wired by the Pub/Sub emulator.

Used by the end-to-end tests, the local stack and the benchmark: it creates
the topics, starts one functions-framework process per function, and points a
push subscription at each, as Terraform does in the cloud.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import uuid

from google.api_core import exceptions as api_exceptions
from google.cloud import pubsub_v1

from tools.emulators import free_port, wait_until

REPO = pathlib.Path(__file__).resolve().parent.parent
FUNCTIONS = ("planner", "shard", "sync")

# Pub/Sub waits this long for a function's answer before redelivering.
ACK_DEADLINE_SECONDS = 60


class FunctionProcess:
    """One function served by functions-framework on a free loopback port."""

    def __init__(
        self,
        name: str,
        env: dict[str, str],
        log_dir: pathlib.Path,
        source: pathlib.Path | None = None,
        python: str = sys.executable,
    ) -> None:
        self.name = name
        self._python = python
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log_path = log_dir / f"{name}.log"
        self._env = env
        self._source = source or REPO / "functions" / name / "main.py"
        self._process: subprocess.Popen | None = None

    def start(self) -> FunctionProcess:
        command = [
            self._python,
            "-m",
            "functions_framework",
            f"--source={self._source}",
            f"--target={self.name}",
            "--signature-type=cloudevent",
            "--host=127.0.0.1",
            f"--port={self.port}",
        ]
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                command,
                env=self._env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self._source.parent,
                start_new_session=True,
            )
        wait_until(self._answers, 60, f"function {self.name} on port {self.port}", interval=0.1)
        return self

    def _answers(self) -> bool:
        if self._process.poll() is not None:
            raise RuntimeError(f"function {self.name} exited:\n{self.log_path.read_text(errors='replace')[-3000:]}")
        try:
            urllib.request.urlopen(self.url, timeout=1)
        except urllib.error.HTTPError:
            return True  # it answered, if only to say a GET is no event
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False
        return True

    def kill(self) -> None:
        """Ends the process at once, as a crash or an instance shutdown would."""
        if self._process is not None and self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait(timeout=15)

    def stop(self) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        os.killpg(self._process.pid, signal.SIGTERM)
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()

    def log_events(self) -> list[dict]:
        """The JSON log lines the function wrote so far."""
        events = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    events.append(json.loads(line))
                except json.JSONDecodeError:
                    pass
        return events


@dataclasses.dataclass
class Topics:
    trigger: str
    shard: str
    sync: str
    builds: str

    @classmethod
    def unique(cls) -> Topics:
        """Fresh names, so that one stack never sees another's messages."""
        suffix = uuid.uuid4().hex[:8]
        return cls(*(f"buildsync-{role}-{suffix}" for role in ("trigger", "shard", "sync", "builds")))


class LocalStack:
    """Topics, subscriptions and the three function processes of one deployment."""

    def __init__(
        self,
        project: str,
        datastore_host: str,
        pubsub_host: str,
        settings_path: pathlib.Path,
        topics: Topics | None = None,
        log_dir: pathlib.Path | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.project = project
        self.topics = topics or Topics.unique()
        self.log_dir = log_dir or pathlib.Path(tempfile.mkdtemp(prefix="buildsync-stack-"))
        self.env = {
            **os.environ,
            "GOOGLE_CLOUD_PROJECT": project,
            "DATASTORE_EMULATOR_HOST": datastore_host,
            "PUBSUB_EMULATOR_HOST": pubsub_host,
            "BUILDSYNC_SETTINGS": str(settings_path),
            "BUILDSYNC_SHARD_TOPIC": self.topics.shard,
            "BUILDSYNC_SYNC_TOPIC": self.topics.sync,
            "BUILDSYNC_BUILDS_TOPIC": self.topics.builds,
            "PYTHONUNBUFFERED": "1",
            **(extra_env or {}),
        }
        os.environ["PUBSUB_EMULATOR_HOST"] = pubsub_host
        self.publisher = pubsub_v1.PublisherClient()
        self.subscriber = pubsub_v1.SubscriberClient()
        self.functions: dict[str, FunctionProcess] = {}
        self.builds_subscription = f"projects/{project}/subscriptions/{self.topics.builds}-watch"

    def topic_path(self, topic: str) -> str:
        return f"projects/{self.project}/topics/{topic}"

    def start(self) -> LocalStack:
        for topic in dataclasses.astuple(self.topics):
            try:
                self.publisher.create_topic(name=self.topic_path(topic))
            except api_exceptions.AlreadyExists:
                pass
        self.subscriber.create_subscription(name=self.builds_subscription, topic=self.topic_path(self.topics.builds))
        for name in FUNCTIONS:
            self.functions[name] = FunctionProcess(name, self.env, self.log_dir)
        for function in self.functions.values():
            function.start()
        sources = {"planner": self.topics.trigger, "shard": self.topics.shard, "sync": self.topics.sync}
        for name, topic in sources.items():
            self.subscribe(name, topic)
        return self

    def subscribe(self, function: str, topic: str) -> None:
        """A push subscription from `topic` to `function`, as deploy/ creates in the cloud."""
        self.subscriber.create_subscription(
            name=f"projects/{self.project}/subscriptions/{topic}-to-{function}",
            topic=self.topic_path(topic),
            push_config={"push_endpoint": self.functions[function].url},
            ack_deadline_seconds=ACK_DEADLINE_SECONDS,
        )

    def publish(self, topic: str, data: bytes) -> None:
        self.publisher.publish(self.topic_path(topic), data).result(timeout=30)

    def pull_notifications(self, max_messages: int = 1000) -> list[pubsub_v1.types.ReceivedMessage]:
        """Pulls and acknowledges what the builds topic received so far."""
        response = self.subscriber.pull(subscription=self.builds_subscription, max_messages=max_messages, timeout=10)
        if response.received_messages:
            self.subscriber.acknowledge(
                subscription=self.builds_subscription, ack_ids=[m.ack_id for m in response.received_messages]
            )
        return list(response.received_messages)

    def log_events(self) -> list[dict]:
        return [event for function in self.functions.values() for event in function.log_events()]

    def stop(self) -> None:
        for function in self.functions.values():
            function.stop()
        self.publisher.stop()
        self.subscriber.close()
