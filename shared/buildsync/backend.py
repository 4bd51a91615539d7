"""The TaskBackend client: FetchTasks over gRPC, one channel per backend.

Real backends get TLS with a Google ID token whose audience is the backend's
URL; a loopback host with a port (a local or test backend) gets a plaintext
channel. The sync stage sees only the small `TaskFetcher` protocol, so tests
can hand it any object with `fetch_tasks`.
"""

from __future__ import annotations

import threading
from typing import Protocol

import grpc

from buildsync.errors import PermanentError, TransientError, is_transient
from buildsync.proto import buildbucket_pb2 as pb
from buildsync.proto import buildbucket_pb2_grpc as pb_grpc
from buildsync.prpc import is_loopback_address

# Long enough for a backend to look up 1000 tasks, short enough that a hung
# backend fails the batch well within a function's 540 s limit.
DEFAULT_DEADLINE_SECONDS = 60.0

# docs/rules.md "Limits": FetchTasks never takes more than 1000 ids.
MAX_TASK_IDS = 1000


class TaskFetcher(Protocol):
    def fetch_tasks(self, task_ids: list[pb.TaskID]) -> pb.FetchTasksResponse: ...


def open_channel(hostname: str) -> grpc.Channel:
    """A channel to `hostname`: plaintext on loopback, TLS with an ID token elsewhere."""
    if is_loopback_address(hostname):
        return grpc.insecure_channel(hostname)
    # Imported here: only deployed functions talk to real backends, and
    # google-auth's transports cost import time on every cold start.
    import google.auth.transport.grpc
    import google.auth.transport.requests
    from google.oauth2 import id_token

    request = google.auth.transport.requests.Request()
    credentials = id_token.fetch_id_token_credentials(f"https://{hostname}", request=request)
    target = hostname if ":" in hostname else f"{hostname}:443"
    return google.auth.transport.grpc.secure_authorized_channel(credentials, request, target)


class GrpcTaskBackend:
    """FetchTasks against one backend host, over a channel reused by every call."""

    def __init__(self, target: str, hostname: str, deadline_seconds: float = DEFAULT_DEADLINE_SECONDS) -> None:
        self.target = target
        self.hostname = hostname
        self.deadline_seconds = deadline_seconds
        self._channel = open_channel(hostname)
        self._stub = pb_grpc.TaskBackendStub(self._channel)

    def fetch_tasks(self, task_ids: list[pb.TaskID]) -> pb.FetchTasksResponse:
        """Raises TransientError when a retry may help, PermanentError when not."""
        if len(task_ids) > MAX_TASK_IDS:
            raise PermanentError(f"{len(task_ids)} task ids asked of {self.target}; the limit is {MAX_TASK_IDS}")
        try:
            return self._stub.FetchTasks(pb.FetchTasksRequest(task_ids=task_ids), timeout=self.deadline_seconds)
        except grpc.RpcError as error:
            kind = TransientError if is_transient(error) else PermanentError
            raise kind(
                f"FetchTasks on {self.target} ({self.hostname}) failed: {error.code().name}: {error.details()}"
            ) from error

    def close(self) -> None:
        self._channel.close()


class BackendPool:
    """One GrpcTaskBackend per backend target, created on first use and then reused."""

    def __init__(self, deadline_seconds: float = DEFAULT_DEADLINE_SECONDS) -> None:
        self._deadline_seconds = deadline_seconds
        self._backends: dict[str, GrpcTaskBackend] = {}
        self._lock = threading.Lock()

    def get(self, target: str, hostname: str) -> GrpcTaskBackend:
        with self._lock:
            backend = self._backends.get(target)
            if backend is None or backend.hostname != hostname:
                backend = GrpcTaskBackend(target, hostname, self._deadline_seconds)
                self._backends[target] = backend
            return backend

    def close(self) -> None:
        with self._lock:
            for backend in self._backends.values():
                backend.close()
            self._backends.clear()
