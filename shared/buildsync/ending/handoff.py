"""Handing an ended build to Buildbucket: the Cloud Tasks its own sync would enqueue.

When Buildbucket's sync ends a build, the ending transaction enqueues tasks
and Buildbucket's own handlers publish, export and finalize. In `buildbucket`
completion mode buildsync enqueues the same tasks instead of doing that work:
`task_classes_for` decides which (pure), `Handoff.plan` names them in the
ending transaction (the names go into the outbox entry), and `Handoff.request`
builds each CreateTask request exactly as Buildbucket's dispatcher would
(docs/handoff.md "Buildbucket's task queues", "The Cloud Tasks request").
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import secrets
from typing import TYPE_CHECKING, Callable

from google.protobuf import json_format
from google.protobuf.message import Message

from buildsync.ending.build_reader import StoredBuild
from buildsync.ending.resultdb import invocation_of
from buildsync.errors import PermanentError
from buildsync.proto import buildbucket_pb2 as pb
from buildsync.proto import project_config_pb2 as cpb
from buildsync.proto import taskdefs_pb2 as tpb
from buildsync.store.outbox import TaskRef

if TYPE_CHECKING:
    from google.cloud.tasks_v2.types import cloudtasks

# Buildbucket's dispatcher serves every task class under this prefix.
ROUTING_PREFIX = "/internal/tasks/t/"

# Headers Buildbucket's dispatcher puts on every task it creates.
CONTENT_TYPE = "application/json"
EXPECTED_ETA_HEADER = "X-Luci-Tq-Expected-ETA"

# A task name ends with 16 random bytes in lowercase hex, as the dispatcher
# names a task enqueued in a transaction.
TASK_ID_BYTES = 16

Payload = Callable[[int, pb.Build, str], Message]


@dataclasses.dataclass(frozen=True)
class TaskClass:
    """One of Buildbucket's task classes: its id, its queue, its payload and the title of its URL."""

    id: str
    queue: str
    payload: Payload  # (build id, Build proto, callback topic) -> the taskdefs message
    title_prefix: str = ""  # the URL ends with /<prefix><build id> when set


NOTIFY_PROXY = TaskClass(
    "notify-pubsub-go-proxy",
    "notify-pubsub-go",
    lambda build_id, build, _: tpb.NotifyPubSubGoProxy(build_id=build_id, project=build.builder.project),
)
NOTIFY_CALLBACK = TaskClass(
    "notify-pubsub-go",
    "notify-pubsub-go",
    lambda build_id, _, topic: tpb.NotifyPubSubGo(
        build_id=build_id, topic=cpb.BuildbucketCfg.Topic(name=topic), callback=True
    ),
)
EXPORT_BIGQUERY = TaskClass(
    "export-bigquery-go", "export-bigquery-go", lambda build_id, *_: tpb.ExportBigQueryGo(build_id=build_id)
)
END_TURBOCI_STAGE_ATTEMPT = TaskClass(
    "end-turboci-stage-attempt",
    "end-turboci-stage-attempt",
    lambda build_id, *_: tpb.EndTurboCIStageAttempt(build_id=build_id),
)
POP_PENDING_BUILDS = TaskClass(
    "pop-pending-builds",
    "pop-pending-builds",
    lambda build_id, build, _: tpb.PopPendingBuildTask(build_id=build_id, builder_id=build.builder),
    title_prefix="pop-pending-build-",
)
FINALIZE_RESULTDB = TaskClass(
    "finalize-resultdb-go", "finalize-resultdb-go", lambda build_id, *_: tpb.FinalizeResultDBGo(build_id=build_id)
)

CLASSES = {
    cls.id: cls
    for cls in (
        NOTIFY_PROXY,
        NOTIFY_CALLBACK,
        EXPORT_BIGQUERY,
        END_TURBOCI_STAGE_ATTEMPT,
        POP_PENDING_BUILDS,
        FINALIZE_RESULTDB,
    )
}
QUEUES = sorted({cls.queue for cls in CLASSES.values()})


def task_classes_for(stored: StoredBuild, infra: pb.BuildInfra, max_concurrent_builds: int) -> list[TaskClass]:
    """The tasks Buildbucket's sync enqueues when it ends this build (tasks/build_status.go)."""
    classes = [NOTIFY_PROXY, EXPORT_BIGQUERY]
    if stored.has_callback:
        classes.append(NOTIFY_CALLBACK)
    if stored.has_stage_attempt:
        classes.append(END_TURBOCI_STAGE_ATTEMPT)
    if max_concurrent_builds > 0:
        classes.append(POP_PENDING_BUILDS)
    if invocation_of(infra) is not None:
        classes.append(FINALIZE_RESULTDB)
    return classes


@dataclasses.dataclass(frozen=True)
class Push:
    """How tasks reach Buildbucket: App Engine's own routing, or HTTPS with an OIDC token."""

    host: str | None = None  # None: an AppEngineHttpRequest to Buildbucket's app
    service_account: str = ""  # the OIDC token's account, for the HTTP form


@dataclasses.dataclass(frozen=True)
class Handoff:
    """Where and how to create Buildbucket's tasks (the environment says, edge/environment.py)."""

    queues: str  # projects/P/locations/L, the parent of Buildbucket's queues
    push: Push = Push()
    endpoint: str | None = None  # a loopback Cloud Tasks server instead of Google's

    def plan(self, stored: StoredBuild, infra: pb.BuildInfra, max_concurrent_builds: int) -> frozenset[TaskRef]:
        """The tasks of an ending build, each with the name it keeps through every retry."""
        classes = task_classes_for(stored, infra, max_concurrent_builds)
        return frozenset(TaskRef(cls.id, secrets.token_hex(TASK_ID_BYTES)) for cls in classes)

    def queue_of(self, task: TaskRef) -> str:
        return f"{self.queues}/queues/{CLASSES[task.class_id].queue}"

    def request(
        self, task: TaskRef, build_id: int, build: pb.Build, callback_topic: str, created: datetime.datetime
    ) -> cloudtasks.CreateTaskRequest:
        """The raw CreateTaskRequest Buildbucket's dispatcher would send for `task`.

        Raises PermanentError for a task class we do not know (an entry
        written by another version): no retry makes it known.
        """
        from google.cloud.tasks_v2.types import cloudtasks, target

        cls = CLASSES.get(task.class_id)
        if cls is None:
            raise PermanentError(f"unknown task class {task.class_id!r}")
        relative_uri = ROUTING_PREFIX + cls.id + (f"/{cls.title_prefix}{build_id}" if cls.title_prefix else "")
        request = cloudtasks.CreateTaskRequest.pb()(parent=self.queue_of(task))
        request.task.name = f"{request.parent}/tasks/{task.task_id}"
        http = request.task.app_engine_http_request if self.push.host is None else request.task.http_request
        http.http_method = target.HttpMethod.POST.value
        http.headers.update({"Content-Type": CONTENT_TYPE, EXPECTED_ETA_HEADER: expected_eta(created)})
        http.body = envelope(cls.id, cls.payload(build_id, build, callback_topic))
        if self.push.host is None:
            http.relative_uri = relative_uri
        else:
            http.url = f"https://{self.push.host}{relative_uri}"
            # The audience is left unset, as Buildbucket's default leaves it:
            # Cloud Tasks then uses the task's URL, which its receiver checks.
            http.oidc_token.service_account_email = self.push.service_account
        return request

    def describe(self, tasks: frozenset[TaskRef]) -> list[str]:
        """One line per task, for a dry run."""
        return [f"create Cloud Task {task.class_id} in {self.queue_of(task)}" for task in sorted(tasks)]


def envelope(class_id: str, payload: Message) -> bytes:
    """The task body: Buildbucket's JSON envelope, byte for byte as Go's encoding/json indents it.

    The payload is proto3 JSON with enums as numbers; the whole is indented
    with tabs, and <, >, &, U+2028 and U+2029 are escaped as Go escapes them.
    """
    body = json_format.MessageToDict(payload, use_integers_for_enums=True)
    wrapped = {"class": class_id, "type": payload.DESCRIPTOR.full_name, "body": body}
    text = json.dumps(wrapped, indent="\t", ensure_ascii=False)
    for char, escaped in _GO_ESCAPES.items():
        text = text.replace(char, escaped)
    return text.encode()


_GO_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def expected_eta(when: datetime.datetime) -> str:
    """The X-Luci-Tq-Expected-ETA value: seconds since the epoch, with six digits of microseconds."""
    micros = int(when.timestamp()) * 1_000_000 + when.microsecond
    return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"
