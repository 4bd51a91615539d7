"""The three functions under functions-framework, wired by the Pub/Sub emulator.

The one way to run a deployment on this machine, used by the end-to-end and
fault tests, the package test, the local stack and the benchmark: it creates
the topics, starts one functions-framework process per function, and points a
push subscription at each, as Terraform does in the cloud. What it runs is a
choice: the working tree or the unpacked zips (`Sources`), under which Python
interpreter, on which ports. It never writes os.environ: each process gets its
environment as a dict, and its own clients are made for the emulator's host.
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
from collections.abc import Mapping

from buildsync.proto import notification_pb2 as npb
from google.api_core import exceptions as api_exceptions
from google.cloud import pubsub_v1
from google.protobuf import json_format

from tools.emulators import free_port, pubsub_clients, wait_until

REPO = pathlib.Path(__file__).resolve().parent.parent
FUNCTIONS = ("planner", "shard", "sync")

# Pub/Sub waits this long for a function's answer before redelivering.
ACK_DEADLINE_SECONDS = 60


@dataclasses.dataclass(frozen=True)
class Sources:
    """The folder of each function's main.py: the working tree, or zips unpacked as Cloud Functions would."""

    folders: Mapping[str, pathlib.Path]
    # A packaged function reads the settings.cfg inside its zip; the working tree has none.
    packaged: bool = False

    @classmethod
    def working_tree(cls) -> Sources:
        return cls({name: REPO / "functions" / name for name in FUNCTIONS})

    @classmethod
    def unpacked_zips(cls, folders: Mapping[str, pathlib.Path]) -> Sources:
        return cls(dict(folders), packaged=True)


class FunctionProcess:
    """One function served by functions-framework on a free loopback port."""

    def __init__(
        self,
        name: str,
        env: Mapping[str, str],
        log_dir: pathlib.Path,
        folder: pathlib.Path,
        python: str = sys.executable,
        port: int | None = None,
    ) -> None:
        self.name = name
        self._python = python
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log_path = log_dir / f"{name}.log"
        self._env = dict(env)
        self._source = folder / "main.py"
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
    """Topics, subscriptions and the three function processes of one deployment.

    `settings_path` None means each function reads the settings.cfg of its own
    folder (as a packaged zip does). `base_env` is what the processes inherit
    (default: this process's environment, read, never written); `extra_env`
    goes on top, e.g. BUILDSYNC_TRANSACTION_BEGIN, but the hosts, project and
    topics given here win. `ports` pins a function's port; the others get
    free ones.
    """

    def __init__(
        self,
        project: str,
        datastore_host: str,
        pubsub_host: str,
        settings_path: pathlib.Path | None = None,
        *,
        sources: Sources | None = None,
        python: str = sys.executable,
        ports: Mapping[str, int] | None = None,
        topics: Topics | None = None,
        log_dir: pathlib.Path | None = None,
        base_env: Mapping[str, str] | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        self.project = project
        self.sources = sources or Sources.working_tree()
        self.python = python
        self.ports = dict(ports or {})
        self.topics = topics or Topics.unique()
        self.log_dir = log_dir or pathlib.Path(tempfile.mkdtemp(prefix="buildsync-stack-"))
        self.settings_path = settings_path
        self.env = {
            **(os.environ if base_env is None else base_env),
            **(extra_env or {}),
            "GOOGLE_CLOUD_PROJECT": project,
            "DATASTORE_EMULATOR_HOST": datastore_host,
            "PUBSUB_EMULATOR_HOST": pubsub_host,
            "BUILDSYNC_SHARD_TOPIC": self.topics.shard,
            "BUILDSYNC_SYNC_TOPIC": self.topics.sync,
            "BUILDSYNC_BUILDS_TOPIC": self.topics.builds,
            "PYTHONUNBUFFERED": "1",
        }
        clients = pubsub_clients(pubsub_host)
        self._clients = clients
        self.publisher = clients.publisher
        self.subscriber = clients.subscriber
        self.functions: dict[str, FunctionProcess] = {}
        self.builds_subscription = self.watch_subscription(self.topics.builds)

    def topic_path(self, topic: str) -> str:
        return f"projects/{self.project}/topics/{topic}"

    def watch_subscription(self, topic: str) -> str:
        """The pull subscription `watch` makes on `topic`."""
        return f"projects/{self.project}/subscriptions/{topic}-watch"

    def function_env(self, name: str, **overrides: str) -> dict[str, str]:
        settings = self.settings_path or self.sources.folders[name] / "settings.cfg"
        return {**self.env, "BUILDSYNC_SETTINGS": str(settings), **overrides}

    def start(self) -> LocalStack:
        for topic in dataclasses.astuple(self.topics):
            try:
                self.publisher.create_topic(name=self.topic_path(topic))
            except api_exceptions.AlreadyExists:
                pass
        self.watch(self.topics.builds)
        for name in FUNCTIONS:
            self.functions[name] = self._process(name, self.function_env(name))
        for function in self.functions.values():
            function.start()
        sources = {"planner": self.topics.trigger, "shard": self.topics.shard, "sync": self.topics.sync}
        for name, topic in sources.items():
            self.subscribe(name, topic)
        return self

    def _process(self, name: str, env: Mapping[str, str]) -> FunctionProcess:
        port = self.ports.get(name)
        return FunctionProcess(name, env, self.log_dir, self.sources.folders[name], python=self.python, port=port)

    def restart(self, name: str, **env_overrides: str) -> FunctionProcess:
        """A new process for `name` on the old port, where the push subscription points."""
        old = self.functions[name]
        old.stop()
        self.ports[name] = old.port
        self.functions[name] = self._process(name, self.function_env(name, **env_overrides)).start()
        return self.functions[name]

    def subscribe(self, function: str, topic: str) -> None:
        """A push subscription from `topic` to `function`, as deploy/ creates in the cloud."""
        self.subscriber.create_subscription(
            name=f"projects/{self.project}/subscriptions/{topic}-to-{function}",
            topic=self.topic_path(topic),
            push_config={"push_endpoint": self.functions[function].url},
            ack_deadline_seconds=ACK_DEADLINE_SECONDS,
        )

    def watch(self, topic: str) -> str:
        """A pull subscription on `topic`, to see what the functions publish there; returns its path."""
        subscription = self.watch_subscription(topic)
        self.subscriber.create_subscription(name=subscription, topic=self.topic_path(topic))
        return subscription

    def publish(self, topic: str, data: bytes) -> None:
        self.publisher.publish(self.topic_path(topic), data).result(timeout=30)

    def pull(self, subscription: str, max_messages: int = 1000) -> list[pubsub_v1.types.ReceivedMessage]:
        """Pulls and acknowledges what `subscription` received so far."""
        response = self.subscriber.pull(subscription=subscription, max_messages=max_messages, timeout=10)
        if response.received_messages:
            self.subscriber.acknowledge(
                subscription=subscription, ack_ids=[m.ack_id for m in response.received_messages]
            )
        return list(response.received_messages)

    def pull_notifications(self, max_messages: int = 1000) -> list[pubsub_v1.types.ReceivedMessage]:
        """Pulls and acknowledges what the builds topic received so far."""
        return self.pull(self.builds_subscription, max_messages)

    def log_events(self) -> list[dict]:
        return [event for function in self.functions.values() for event in function.log_events()]

    def stop(self) -> None:
        for function in self.functions.values():
            function.stop()
        self._clients.close()

    def __enter__(self) -> LocalStack:
        try:
            return self.start()
        except BaseException:
            self.stop()  # whatever did start
            raise

    def __exit__(self, *exc_info) -> None:
        self.stop()


def from_pubsub_data(data: bytes) -> npb.BuildsV2PubSub:
    """A received builds-topic message, as a subscriber decodes it (fields it does not know are skipped)."""
    return json_format.Parse(data, npb.BuildsV2PubSub(), ignore_unknown_fields=True)
