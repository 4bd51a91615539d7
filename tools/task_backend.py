"""A real grpcio TaskBackend server whose tasks a test or demo sets by hand.

It answers FetchTasks from a dict of tasks, and can be told to misbehave the
ways real backends do: fail whole calls, answer per-task errors, return the
wrong number of responses, or hang past the caller's deadline.
"""

from __future__ import annotations

import threading
from concurrent import futures
from typing import Callable

import grpc
from buildsync.proto import buildbucket_pb2 as pb
from buildsync.proto import buildbucket_pb2_grpc as pb_grpc
from google.rpc import status_pb2

ResponseHook = Callable[[pb.FetchTasksRequest, pb.FetchTasksResponse], pb.FetchTasksResponse]


class FakeTaskBackend(pb_grpc.TaskBackendServicer):
    def __init__(self) -> None:
        self.tasks: dict[str, pb.Task] = {}
        self.task_errors: dict[str, tuple[int, str]] = {}
        # When set, every FetchTasks call fails with this code.
        self.fail_with: grpc.StatusCode | None = None
        # When set, FetchTasks blocks until the event is set (a hung backend).
        self.hang: threading.Event | None = None
        # When set, rewrites each response before it is sent.
        self.response_hook: ResponseHook | None = None
        self.calls: list[int] = []  # number of ids in each FetchTasks call
        self._lock = threading.Lock()

    def set_task(self, task_id: str, status: int, update_id: int, target: str = "", **fields) -> pb.Task:
        task = pb.Task(status=status, update_id=update_id, **fields)
        task.id.id, task.id.target = task_id, target
        with self._lock:
            self.tasks[task_id] = task
        return task

    def FetchTasks(self, request: pb.FetchTasksRequest, context: grpc.ServicerContext) -> pb.FetchTasksResponse:
        with self._lock:
            self.calls.append(len(request.task_ids))
        if self.hang is not None:
            self.hang.wait()
        if self.fail_with is not None:
            context.abort(self.fail_with, "injected failure")
        response = pb.FetchTasksResponse()
        with self._lock:
            for task_id in request.task_ids:
                item = response.responses.add()
                if task_id.id in self.task_errors:
                    code, message = self.task_errors[task_id.id]
                    item.error.CopyFrom(status_pb2.Status(code=code, message=message))
                elif task_id.id in self.tasks:
                    item.task.CopyFrom(self.tasks[task_id.id])
                else:
                    item.error.CopyFrom(
                        status_pb2.Status(code=grpc.StatusCode.NOT_FOUND.value[0], message="no such task")
                    )
        if self.response_hook is not None:
            response = self.response_hook(request, response)
        return response


class TaskBackendServer:
    """Serves a FakeTaskBackend on a free loopback port until `stop`."""

    def __init__(self, backend: FakeTaskBackend | None = None, workers: int = 8) -> None:
        self.backend = backend or FakeTaskBackend()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers))
        pb_grpc.add_TaskBackendServicer_to_server(self.backend, self._server)
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self.hostname = f"127.0.0.1:{self.port}"

    def start(self) -> TaskBackendServer:
        self._server.start()
        return self

    def stop(self) -> None:
        if self.backend.hang is not None:
            self.backend.hang.set()
        self._server.stop(grace=None)
