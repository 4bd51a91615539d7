"""A real TaskBackend, served over pRPC (HTTP) and native gRPC, whose tasks a test or demo sets by hand.

It answers FetchTasks from a dict of tasks, and can be told to misbehave the
ways real backends do: fail whole calls, answer per-task errors, return the
wrong number of responses, or hang past the caller's deadline. Both
transports answer from the same FakeTaskBackend, so a test runs unchanged over
either; each call's headers are recorded as the backend saw them.
"""

from __future__ import annotations

import threading
from concurrent import futures
from typing import Callable

import grpc
from buildsync import wire  # noqa: F401  (lifts upb's nesting limit, as in the sync's own process)
from buildsync.proto import buildbucket_pb2 as pb
from buildsync.proto import buildbucket_pb2_grpc as pb_grpc
from google.protobuf import struct_pb2
from google.rpc import status_pb2

from tools.prpc_server import PrpcServer, PrpcStatus

SERVICE = "buildbucket.v2.TaskBackend"

ResponseHook = Callable[[pb.FetchTasksRequest, pb.FetchTasksResponse], pb.FetchTasksResponse]


def nested_details(json_levels: int) -> struct_pb2.Struct:
    """Task details holding a JSON object nested `json_levels` deep ({"a": {"a": ...}}), as Go would send it."""
    details = struct_pb2.Struct()
    details.MergeFromString(nested_bytes(json_levels))  # buildsync.wire has lifted upb's own limit in this process
    return details


def nested_bytes(json_levels: int) -> bytes:
    """A Struct nested `json_levels` JSON levels deep, 3 message levels each, built in one pass without decoding.

    Every level is a prefix ({"a": {"a": ...}} ends where the innermost does),
    so the prefixes are made innermost first and joined outermost first.
    """
    prefixes, inner = [], 0
    for _ in range(json_levels):
        value = length_prefix(5, inner)  # Value.struct_value
        entry = b"\x0a\x01a" + length_prefix(2, len(value) + inner)  # the map entry: key "a", then the value
        struct = length_prefix(1, len(entry) + len(value) + inner)  # Struct.fields
        prefixes.append(struct + entry + value)
        inner += len(prefixes[-1])
    return b"".join(reversed(prefixes))


def nested_groups(levels: int) -> bytes:
    """A Struct whose unknown field 2 nests `levels` groups ({2:{2:{...}}}): `levels` + 1 message levels.

    Two bytes and four characters of Go's text form a level, so details this
    deep stay far under Buildbucket's 50 KiB, where a JSON object nested as
    deep is some 13 characters a level and over it from 1,306 JSON levels (3,919 message levels).
    """
    return b"\x13" * levels + b"\x14" * levels


def length_prefix(number: int, size: int) -> bytes:
    """The tag and length of a length-delimited field `number` of `size` bytes."""
    length = bytearray()
    while size >= 0x80:
        length.append(size & 0x7F | 0x80)
        size >>= 7
    length.append(size)
    return bytes([number << 3 | 2]) + bytes(length)


class FakeTaskBackend(pb_grpc.TaskBackendServicer):
    def __init__(self) -> None:
        self.tasks: dict[str, pb.Task] = {}
        self.task_errors: dict[str, tuple[int, str]] = {}
        # When set, every FetchTasks call fails with this code.
        self.fail_with: grpc.StatusCode | None = None
        # When set, FetchTasks blocks until the event is set (a hung backend).
        self.hang: threading.Event | None = None
        # When set, rewrites each response before it is sent; a PrpcStatus it raises fails the whole call.
        self.response_hook: ResponseHook | None = None
        self.calls: list[int] = []  # number of ids in each FetchTasks call
        self.call_headers: list[dict[str, str]] = []  # lower-case names, as each call arrived
        self._lock = threading.Lock()

    def set_task(self, task_id: str, status: int, update_id: int, target: str = "", **fields) -> pb.Task:
        task = pb.Task(status=status, update_id=update_id, **fields)
        task.id.id, task.id.target = task_id, target
        with self._lock:
            self.tasks[task_id] = task
        return task

    def FetchTasks(self, request: pb.FetchTasksRequest, context: grpc.ServicerContext) -> pb.FetchTasksResponse:
        """The gRPC method."""
        try:
            return self.answer(request, dict(context.invocation_metadata()))
        except PrpcStatus as status:
            context.abort(status.code, status.message)

    def answer(self, request: pb.FetchTasksRequest, headers: dict[str, str]) -> pb.FetchTasksResponse:
        """FetchTasks for either transport; a whole-call failure is raised as PrpcStatus."""
        with self._lock:
            self.calls.append(len(request.task_ids))
            self.call_headers.append({name.lower(): value for name, value in headers.items()})
        if self.hang is not None:
            self.hang.wait()
        if self.fail_with is not None:
            raise PrpcStatus(self.fail_with, "injected failure")
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
    """Serves a FakeTaskBackend on two free loopback ports until `stop`.

    `hostname` is the pRPC server (what Buildbucket's settings would name;
    `prpc_server` lets a test replace its answers with raw bytes);
    `grpc_hostname` serves the same backend over native gRPC.
    """

    def __init__(self, backend: FakeTaskBackend | None = None, workers: int = 8) -> None:
        self.backend = backend or FakeTaskBackend()
        self.prpc_server = PrpcServer()
        self.prpc_server.add_method(
            "buildbucket.v2.TaskBackend", "FetchTasks", pb.FetchTasksRequest, self.backend.answer
        )
        self.hostname = self.prpc_server.hostname
        # Answers near 50 MB must get through, as they do over pRPC.
        options = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
        self._grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=workers), options=options)
        pb_grpc.add_TaskBackendServicer_to_server(self.backend, self._grpc)
        self.grpc_hostname = f"127.0.0.1:{self._grpc.add_insecure_port('127.0.0.1:0')}"

    def hostname_for(self, transport: str) -> str:
        """The address serving `transport` ("prpc" or "grpc")."""
        return self.grpc_hostname if transport == "grpc" else self.hostname

    def start(self) -> TaskBackendServer:
        self.prpc_server.start()
        self._grpc.start()
        return self

    def stop(self) -> None:
        if self.backend.hang is not None:
            self.backend.hang.set()
        self._grpc.stop(grace=None)
        self.prpc_server.stop()
