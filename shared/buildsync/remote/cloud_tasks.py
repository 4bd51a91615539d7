"""Creating Cloud Tasks in Buildbucket's queues, with Google's Cloud Tasks client library.

A task is created by name, so creating it again is harmless: Cloud Tasks
answers ALREADY_EXISTS, which counts as success, as it does for Buildbucket's
own dispatcher (docs/handoff.md "The Cloud Tasks request"). A transient error
is tried again at once a few times, then left to the outbox's sweep; any
other is a verdict on the request, logged by the caller and given up.

The client is made on the first task, so a deployment that never hands off
never imports the library. With an endpoint (a loopback Cloud Tasks server:
the tests, the local stack) it talks plaintext gRPC with no credentials;
otherwise to Google with the function's own credentials.
"""

from __future__ import annotations

import enum
import threading
from typing import TYPE_CHECKING

import grpc
from google.api_core import exceptions as api_exceptions

from buildsync.errors import SyncError, TransientError, as_sync_error

if TYPE_CHECKING:
    from google.cloud import tasks_v2

# Each call is quick; Buildbucket's dispatcher gives one 20 s.
TIMEOUT_SECONDS = 20.0

# Tries of one task in a row before it is left to the sweep; Buildbucket's
# dispatcher also retries a transient failure three times without waiting.
ATTEMPTS = 4


class Created(enum.Enum):
    DONE = "done"  # created now, or already (ALREADY_EXISTS)
    RETRY = "retry"  # a transient error: the outbox keeps the task
    GAVE_UP = "gave_up"  # Cloud Tasks refused the request for good


class TaskCreator:
    """Creates tasks, one client for the process; thread-safe."""

    def __init__(self, endpoint: str | None = None, timeout: float = TIMEOUT_SECONDS) -> None:
        """`endpoint`: host:port of a loopback Cloud Tasks server, or None for Google's."""
        self.endpoint = endpoint
        self._timeout = timeout
        self._client: tasks_v2.CloudTasksClient | None = None
        self._lock = threading.Lock()

    def _cloud_tasks(self) -> tasks_v2.CloudTasksClient:
        with self._lock:
            if self._client is None:
                from google.cloud import tasks_v2
                from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport

                if self.endpoint:
                    transport = CloudTasksGrpcTransport(channel=grpc.insecure_channel(self.endpoint))
                    self._client = tasks_v2.CloudTasksClient(transport=transport)
                else:
                    self._client = tasks_v2.CloudTasksClient()
            return self._client

    def create(self, request) -> tuple[Created, Exception | None]:
        """Creates the task of `request` (a raw CreateTaskRequest); returns the verdict and the last error.

        The error is a TransientError or PermanentError as errors.py sorts
        it; an error in neither table is a bug and is raised.
        """
        from google.cloud.tasks_v2.types import cloudtasks

        error: Exception | None = None
        for _ in range(ATTEMPTS):
            try:
                self._cloud_tasks().create_task(
                    request=cloudtasks.CreateTaskRequest.wrap(request), retry=None, timeout=self._timeout
                )
                return Created.DONE, None
            except api_exceptions.AlreadyExists:
                return Created.DONE, None
            except Exception as raised:  # sorted by the one table in errors.py
                error = as_sync_error(raised, f"creating Cloud Task {request.task.name}")
                if not isinstance(error, SyncError):
                    raise error from raised
                if not isinstance(error, TransientError):
                    break
        if isinstance(error, TransientError):
            return Created.RETRY, error
        return Created.GAVE_UP, error
