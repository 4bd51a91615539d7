"""A real Cloud Tasks server for the tests and the local stack: `google.cloud.tasks.v2.CloudTasks` over gRPC.

It answers CreateTask as Cloud Tasks does where buildsync depends on it: the
queue must exist (NOT_FOUND otherwise), a task name must sit under the
request's queue and be well formed (INVALID_ARGUMENT otherwise), and a name
already used answers ALREADY_EXISTS. Every request is recorded as it arrived
(raw protobuf), accepted or not, and `decoded` reads a recorded request back
with our declarations of Buildbucket's task payloads, as a reviewer would.
`fail_next` makes the next calls fail with a chosen code; `hold` keeps calls
waiting unanswered (a caller can be killed mid-call) until `release`, after
which each is handled as if it had just arrived: Cloud Tasks may create a
task whose caller never hears of it.

    python -m tools.cloud_tasks [--queues projects/P/locations/L]   # serves until Ctrl-C
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import threading
import time
from concurrent import futures

import grpc
from buildsync.proto import taskdefs_pb2
from google.cloud.tasks_v2.types import cloudtasks, task
from google.protobuf import json_format, timestamp_pb2

SERVICE = "google.cloud.tasks.v2.CloudTasks"
CreateTaskRequest = cloudtasks.CreateTaskRequest.pb()
Task = task.Task.pb()

# Buildbucket's queues that ending a build enqueues into (docs/handoff.md "Buildbucket's task queues").
BUILDBUCKET_QUEUES = (
    "notify-pubsub-go",
    "export-bigquery-go",
    "end-turboci-stage-attempt",
    "pop-pending-builds",
    "finalize-resultdb-go",
)
DEFAULT_PARENT = "projects/buildbucket-local/locations/us-central1"

# What Cloud Tasks accepts as a task id (the last part of a task name).
_TASK_ID = re.compile(r"^[A-Za-z0-9_-]{1,500}$")


@dataclasses.dataclass(frozen=True)
class Decoded:
    """One CreateTask request, read back with Buildbucket's task payload declarations."""

    name: str
    queue: str
    form: str  # "app_engine_http_request" or "http_request"
    method: str
    uri: str  # the relative URI, or the URL of an HTTP task
    headers: dict[str, str]
    oidc: dict[str, str] | None
    envelope: dict
    payload: object  # the taskdefs message the envelope's type names, parsed from its body

    def to_json(self) -> dict:
        fields = dataclasses.asdict(self)
        fields["payload"] = json_format.MessageToDict(self.payload, preserving_proto_field_name=True)
        return fields


def decoded(request: CreateTaskRequest) -> Decoded:
    """Reads a recorded request the way Buildbucket's dispatcher would read its push."""
    which = request.task.WhichOneof("message_type")
    inner = getattr(request.task, which)
    if which == "app_engine_http_request":
        uri, oidc = inner.relative_uri, None
    else:
        uri = inner.url
        oidc = json_format.MessageToDict(inner.oidc_token) if inner.HasField("oidc_token") else None
    envelope = json.loads(inner.body)
    message_type = getattr(taskdefs_pb2, envelope["type"].removeprefix("taskdefs."))
    payload = json_format.ParseDict(envelope["body"], message_type())
    method = type(inner).DESCRIPTOR.fields_by_name["http_method"].enum_type.values_by_number[inner.http_method].name
    return Decoded(
        name=request.task.name,
        queue=request.parent,
        form=which,
        method=method,
        uri=uri,
        headers=dict(inner.headers),
        oidc=oidc,
        envelope=envelope,
        payload=payload,
    )


class CloudTasksServicer:
    """The CreateTask method, with the queues that exist and the names already taken."""

    def __init__(self, queues: set[str]) -> None:
        self.queues = queues
        self.requests: list[CreateTaskRequest] = []  # every request, as it arrived
        self.created: dict[str, CreateTaskRequest] = {}  # task name -> the request that created it
        self._failures: list[grpc.StatusCode] = []
        self._lock = threading.Lock()
        self._open = threading.Event()
        self._open.set()
        self._passes = 0  # calls still let through while held
        self.holding = threading.Event()  # set when a held call starts waiting

    def fail_next(self, code: grpc.StatusCode, times: int = 1) -> None:
        """The next `times` calls fail with `code`, before anything else is checked."""
        with self._lock:
            self._failures += [code] * times

    def hold(self, after: int = 0) -> None:
        """Calls after the next `after` wait unanswered until `release`."""
        with self._lock:
            self._passes = after
            self._open.clear()

    def release(self) -> None:
        self._open.set()

    def _wait_while_held(self) -> None:
        with self._lock:
            if self._open.is_set():
                return
            if self._passes:
                self._passes -= 1
                return
        self.holding.set()
        self._open.wait(timeout=120)

    def CreateTask(self, request: CreateTaskRequest, context: grpc.ServicerContext) -> Task:
        self._wait_while_held()
        with self._lock:
            self.requests.append(request)
            if self._failures:
                context.abort(self._failures.pop(0), "injected failure")
            problem = self._refusal(request)
            if problem:
                context.abort(*problem)
            self.created[request.task.name] = request
        created = Task(name=request.task.name, dispatch_count=0, response_count=0)
        created.create_time.CopyFrom(timestamp_pb2.Timestamp(seconds=int(time.time())))
        created.schedule_time.CopyFrom(created.create_time)
        return created

    def _refusal(self, request: CreateTaskRequest) -> tuple[grpc.StatusCode, str] | None:
        if request.parent not in self.queues:
            return grpc.StatusCode.NOT_FOUND, f"Requested entity was not found: queue {request.parent}"
        name = request.task.name
        if name:
            prefix, _, task_id = name.rpartition("/tasks/")
            if prefix != request.parent or not _TASK_ID.match(task_id):
                return grpc.StatusCode.INVALID_ARGUMENT, f"Task name {name!r} is not a task of {request.parent}"
            if name in self.created:
                return grpc.StatusCode.ALREADY_EXISTS, "Requested entity already exists"
        if request.task.WhichOneof("message_type") is None:
            return grpc.StatusCode.INVALID_ARGUMENT, "Task has no HTTP or App Engine request"
        return None

    def decoded_requests(self) -> list[Decoded]:
        with self._lock:
            return [decoded(request) for request in self.requests]


class CloudTasksServer:
    """Serves a CloudTasksServicer on a free loopback port until `stop`; `endpoint` is its host:port."""

    def __init__(self, parent: str = DEFAULT_PARENT, queues: tuple[str, ...] = BUILDBUCKET_QUEUES) -> None:
        self.parent = parent
        self.servicer = CloudTasksServicer({f"{parent}/queues/{queue}" for queue in queues})
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        handler = grpc.unary_unary_rpc_method_handler(
            self.servicer.CreateTask,
            request_deserializer=CreateTaskRequest.FromString,
            response_serializer=Task.SerializeToString,
        )
        self._server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, {"CreateTask": handler})])
        self.endpoint = f"127.0.0.1:{self._server.add_insecure_port('127.0.0.1:0')}"

    def start(self) -> CloudTasksServer:
        self._server.start()
        return self

    def stop(self) -> None:
        self.servicer.release()
        self._server.stop(grace=None)

    def __enter__(self) -> CloudTasksServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queues", default=DEFAULT_PARENT, help="the parent of Buildbucket's queues")
    args = parser.parse_args()
    with CloudTasksServer(args.queues) as server:
        print(f"Cloud Tasks on {server.endpoint}, queues under {server.parent}", flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()
