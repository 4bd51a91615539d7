"""Start and stop the Google Cloud emulators for tests, the local stack and benchmarks.

Each emulator runs in its own process group on a free loopback port, so that
`stop` ends the gcloud wrapper and the Java server it spawns together.

Nothing here writes os.environ: clients for an emulator are made from its
host explicitly (`datastore_client`, `pubsub_clients`), and child processes
get the variables in `Emulator.env`.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import grpc
from google.auth.credentials import AnonymousCredentials
from google.cloud import datastore, pubsub_v1
from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport
from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport

# The emulators are Java servers; a cold start takes a few seconds, more on a busy machine.
START_TIMEOUT_SECONDS = 90.0


class EmulatorUnavailable(RuntimeError):
    """gcloud or the emulator component is not installed."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_process_group(args: list[str], log_path: str) -> subprocess.Popen:
    """Starts `args` in a process group of its own, its output to `log_path`."""
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )


def stop_process_group(process: subprocess.Popen) -> None:
    """Stops the process group `process` leads: SIGTERM, then SIGKILL after 15 s."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=15)


def wait_until(condition, timeout: float, what: str, interval: float = 0.05) -> None:
    """Polls `condition` until it is true; raises TimeoutError naming `what`."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


# The databases a Datastore client can run against here. "datastore" is the
# legacy Datastore emulator (optimistic locking); "firestore" is the Firestore
# emulator in Datastore mode, which locks pessimistically like production.
DATASTORE_KINDS = ("datastore", "firestore")
KINDS = (*DATASTORE_KINDS, "pubsub")

# What buildsync must be told to live with an emulator's defects: the Firestore
# emulator cannot commit a write to what a transaction begun by its first lookup
# read (firebase-tools issue 8105), so transactions there begin explicitly.
SETTINGS_FOR = {"firestore": {"BUILDSYNC_TRANSACTION_BEGIN": "explicit"}}


class Emulator:
    """One running emulator: `kind` is one of KINDS."""

    def __init__(self, kind: str, project: str = "buildsync-test", log_path: str | None = None) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown emulator kind {kind!r}; expected one of {', '.join(KINDS)}")
        self.kind = kind
        self.project = project
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self._data_dir = tempfile.mkdtemp(prefix=f"buildsync-{kind}-")
        self._log_path = log_path or os.path.join(tempfile.gettempdir(), f"buildsync-{kind}-{self.port}.log")
        self._process: subprocess.Popen | None = None

    @property
    def env_var(self) -> str:
        return "PUBSUB_EMULATOR_HOST" if self.kind == "pubsub" else "DATASTORE_EMULATOR_HOST"

    @property
    def env(self) -> dict[str, str]:
        """What a child process needs to find this emulator and live with its defects."""
        return {self.env_var: self.host, **SETTINGS_FOR.get(self.kind, {})}

    def command(self) -> list[str]:
        gcloud = shutil.which("gcloud")
        if gcloud is None:
            raise EmulatorUnavailable("gcloud is not on PATH; install the Google Cloud CLI")
        if self.kind == "firestore":  # no --project or --data-dir: it keeps every project in memory
            return [
                gcloud,
                "emulators",
                "firestore",
                "start",
                "--database-mode=datastore-mode",
                f"--host-port={self.host}",
            ]
        args = [gcloud, "beta", "emulators", self.kind, "start", f"--project={self.project}"]
        args += [f"--host-port={self.host}", f"--data-dir={self._data_dir}"]
        if self.kind == "datastore":
            args += ["--no-store-on-disk", "--consistency=1.0"]
        return args

    def start(self) -> Emulator:
        self._process = start_process_group(self.command(), self._log_path)
        try:
            wait_until(self._healthy, START_TIMEOUT_SECONDS, f"the {self.kind} emulator on {self.host}", interval=0.2)
        except TimeoutError:
            self.stop()
            raise EmulatorUnavailable(f"the {self.kind} emulator did not start; its log:\n{self.log_text()}") from None
        return self

    def _healthy(self) -> bool:
        if self._process is not None and self._process.poll() is not None:
            raise EmulatorUnavailable(f"the {self.kind} emulator exited; its log:\n{self.log_text()}")
        try:
            with urllib.request.urlopen(f"http://{self.host}/", timeout=1) as response:
                return response.status == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def _port_open(self) -> bool:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def log_text(self) -> str:
        try:
            with open(self._log_path, encoding="utf-8", errors="replace") as log:
                return log.read()[-4000:]
        except OSError:
            return "(no log)"

    def reset(self) -> None:
        """Deletes every entity (Datastore and Firestore; Pub/Sub tests use fresh names instead)."""
        request = urllib.request.Request(f"http://{self.host}/reset", method="POST", data=b"")
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()

    def stop(self) -> None:
        if self._process is None:
            return
        stop_process_group(self._process)
        # The wrapper exits before the Java server it started lets go of the port.
        wait_until(lambda: not self._port_open(), 30, f"the {self.kind} emulator to release {self.host}")
        self._process = None
        shutil.rmtree(self._data_dir, ignore_errors=True)

    def restart(self) -> None:
        """Stops and starts the emulator on the same port; its data is lost."""
        self.stop()
        self._data_dir = tempfile.mkdtemp(prefix=f"buildsync-{self.kind}-")
        self.start()


def datastore_client(
    host: str, project: str, client_class: type[datastore.Client] = datastore.Client
) -> datastore.Client:
    """A Datastore client (or one of `client_class`) on the emulator at `host`, whatever the environment says."""
    return client_class(
        project=project, credentials=AnonymousCredentials(), client_options={"api_endpoint": f"http://{host}"}
    )


@dataclasses.dataclass
class PubSubClients:
    """A publisher and a subscriber on the Pub/Sub emulator at one host."""

    publisher: pubsub_v1.PublisherClient
    subscriber: pubsub_v1.SubscriberClient

    def close(self) -> None:
        self.publisher.stop()
        self.subscriber.close()


def pubsub_clients(host: str) -> PubSubClients:
    """Clients on the Pub/Sub emulator at `host` over plain gRPC, whatever the environment says."""
    return PubSubClients(
        publisher=pubsub_v1.PublisherClient(transport=PublisherGrpcTransport(channel=grpc.insecure_channel(host))),
        subscriber=pubsub_v1.SubscriberClient(transport=SubscriberGrpcTransport(channel=grpc.insecure_channel(host))),
    )
