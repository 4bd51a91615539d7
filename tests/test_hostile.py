"""Hostile inputs: every input a stranger or a stored build controls, each with the verdict it must get.

The inputs are the ones nobody at this deployment writes: Pub/Sub messages,
the settings file and the backend options, a backend's FetchTasks answers,
the entities a build has stored, a build's callback and ResultDB host, and
the hosts the settings name. Each row of the tables below names one and the
verdict it gets:

    SYNCED     the build is brought up to date (ended when its task ended)
    INVALID    the build alone is counted invalid (or stale), with its reason
    FAILED     the build alone is counted failed, with its reason
    LEFT       the build is not the batch's to sync (ended, gone, another backend's) and is left
    ERROR      acknowledged with one named ERROR line: the message, or the one effect
    TRANSIENT  raised as a TransientError: Pub/Sub redelivers, dead letters end it
    RETRY      a completion effect kept in the outbox, tried later, given up after a day

The invariant (docs/rules.md "What can never block a batch"): a due build is
synced, or counted invalid or failed alone with its reason; no input about
one build or one task fails another build's sync; and nothing is retried
forever. The per-build rows all run in ONE batch beside innocent builds,
which must sync and complete as if the hostile ones were not there.

The suite prints `FIGURE hostile: N inputs, S stuck builds, U unclassified
errors`: a stuck build is one whose verdict is none of the above (or that was
not the one its row expects), an unclassified error one that escaped as a
bug (a traceback, "unexpected error") instead of a verdict.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import json
import uuid
import zlib

import grpc
import pytest
from buildsync import env
from buildsync.edge import events, handlers
from buildsync.errors import SettingsError, TransientError
from buildsync.proto import buildbucket_pb2 as pb
from buildsync.remote.backend_options import parse_backend_options
from buildsync.rules.settings import load_settings
from buildsync.stages.messages import ShardJob, SyncBatch, SyncTrigger
from buildsync.stages.shard import due_batches
from buildsync.store import breakers, model, outbox
from cloudevents.http import CloudEvent
from google.protobuf import struct_pb2

from tests import buildbucket_writer as bb
from tests.builds import put_build
from tests.conftest import PROJECT
from tests.harness import BACKEND, LONG_AGO, Subscribed, captured_logs, outbox_due, settings_text, with_deep_stack
from tests.test_completion import put_buildbucket_build
from tests.test_events import pubsub_event
from tools.prpc_server import RawAnswer
from tools.resultdb_recorder import ResultDBRecorder
from tools.task_backend import FakeTaskBackend, TaskBackendServer, nested_bytes, nested_details, nested_groups

SYNCED, INVALID, FAILED, LEFT = "SYNCED", "INVALID", "FAILED", "LEFT"
ERROR, TRANSIENT, RETRY = "ERROR", "TRANSIENT", "RETRY"


@dataclasses.dataclass(frozen=True)
class Verdict:
    """One hostile input, the verdict it must get, and the one it got."""

    kind: str
    name: str
    expected: str
    observed: str
    detail: str = ""

    @property
    def stuck(self) -> bool:
        return self.observed != self.expected


@dataclasses.dataclass
class Tally:
    verdicts: list[Verdict] = dataclasses.field(default_factory=list)
    unclassified: list[str] = dataclasses.field(default_factory=list)

    def add(self, kind: str, name: str, expected: str, observed: str, detail: str = "") -> None:
        self.verdicts.append(Verdict(kind, name, expected, observed, detail))

    def count_bugs(self, events: list[dict]) -> None:
        """Log lines that say a bug escaped: a traceback or an unexpected error."""
        self.unclassified += [e["message"] for e in events if "unexpected error" in e["message"] or "traceback" in e]


# --- messages: what any publisher to the three topics can send ---------------------------------------------

_TRIGGERS = [
    ("a lone surrogate in the project", b'{"project": "\\ud800"}'),
    ("not UTF-8", b"\xff\xfe{}"),
    ("a JSON list", b"[]"),
    ("nested 100,000 deep", b"[" * 100_000 + b"]" * 100_000),
    ("a number as the backend", b'{"backend": 7}'),
    ("a float version", b'{"version": 1.0}'),
    ("an unknown field", b'{"shards": 3}'),
    ("an unknown backend", b'{"backend": "swarming://nowhere"}'),
    ("a 1 MB project name", json.dumps({"project": "p" * 1_000_000}).encode()),
]


def _shard_jobs(now: datetime.datetime) -> list[tuple[str, bytes]]:
    job = ShardJob(BACKEND, "proj", 0, 3, now)
    return [
        ("a shard count the settings do not have", dataclasses.replace(job, shards=2, shard=1).to_json()),
        ("a plan time an hour ahead", dataclasses.replace(job, planned_at=now + datetime.timedelta(hours=1)).to_json()),
        ("a shard outside its count", job.to_json().replace(b'"shard":0', b'"shard":7')),
        ("no version", job.to_json().replace(b'"version":1,', b"")),
        ("a lone surrogate in the project", job.to_json().replace(b'"proj"', b'"\\udfff"')),
    ]


def _sync_batches(now: datetime.datetime) -> list[tuple[str, bytes]]:
    batch = SyncBatch(BACKEND, "proj", (1,), now)
    return [
        ("1001 build ids", dataclasses.replace(batch, build_ids=tuple(range(1, 1002))).to_json()),
        ("build id 0", batch.to_json().replace(b"[1]", b"[0]")),
        ("build id 2**63", batch.to_json().replace(b"[1]", str([2**63]).encode())),
        ("a build id that is true", batch.to_json().replace(b"[1]", b"[true]")),
        ("an unknown backend", dataclasses.replace(batch, backend="swarming://nowhere").to_json()),
        (
            "a plan time an hour ahead",
            dataclasses.replace(batch, planned_at=now + datetime.timedelta(hours=1)).to_json(),
        ),
    ]


def _messages(tally: Tally, runtime) -> None:
    work = {
        "planner": lambda data: handlers.handle_trigger(runtime, SyncTrigger.from_json(data)),
        "shard": lambda data: handlers.handle_job(runtime, ShardJob.from_json(data)),
        "sync": lambda data: handlers.handle_batch(runtime, SyncBatch.from_json(data)),
    }
    # Planned now, as the stages' clocks see it: a plan from the suite's start would be dropped as too old.
    now = datetime.datetime.now(datetime.timezone.utc)
    rows = [("planner", *row) for row in _TRIGGERS] + [("shard", *row) for row in _shard_jobs(now)]
    rows += [("sync", *row) for row in _sync_batches(now)]
    rows.append(("sync", "an envelope whose data is not base64", None))
    for stage, name, data in rows:
        event = pubsub_event(data) if data is not None else CloudEvent(_ENVELOPE, {"message": {"data": "%%"}})
        tally.add("messages", f"{stage}: {name}", ERROR, *_handled(tally, event, stage, work[stage]))


_ENVELOPE = {
    "id": "m-1",
    "source": "//pubsub.googleapis.com/t",
    "type": "google.cloud.pubsub.topic.v1.messagePublished",
}


def _handled(tally: Tally, event: CloudEvent, stage: str, work) -> tuple[str, str]:
    """What the edge answered: ERROR (acknowledged with one ERROR line), TRANSIENT, or the bug it let out."""
    with captured_logs() as captured:
        try:
            events.handle(event, stage, work, lambda: env.DEFAULT_MAX_EVENT_AGE)
            outcome = None
        except TransientError:
            outcome = TRANSIENT
        except Exception as error:  # a bug: the edge re-raised it for a retry
            outcome = f"bug: {type(error).__name__}"
    lines = captured.events()
    tally.count_bugs(lines)
    errors = [e for e in lines if e["severity"] == "ERROR"]
    if outcome is None:
        outcome = ERROR if len(errors) == 1 else f"acknowledged with {len(errors)} ERROR lines"
    return outcome, errors[0]["message"][:160] if errors else ""


# --- settings and backend options: the deployment's files, as a careless or hostile operator writes them -------


def _settings(tally: Tally, tmp_path) -> None:
    rows = [
        ("not UTF-8", ".cfg", b'backends { target: "swarming://x\xff" }', ERROR),
        ("a byte-order mark", ".cfg", "\ufeffbackends {}".encode(), ERROR),
        ("JSON nested 100,000 deep", ".json", b'{"swarming":' * 100_000 + b"{}" + b"}" * 100_000, ERROR),
        ("text nested 5,000 deep", ".cfg", b"swarming {" * 5_000 + b"}" * 5_000, ERROR),
        ("a NUL byte", ".cfg", b'backends { target: "x" }\x00', ERROR),
        ("an unknown suffix", ".yaml", b"backends: []", ERROR),
        ("a hostname with user info", ".cfg", settings_text("swarm.example.com@evil.example").encode(), SYNCED),
        ("a ResultDB host with a path", ".cfg", b'resultdb { hostname: "results.example/x" }', SYNCED),
    ]
    for name, suffix, data, expected in rows:
        path = tmp_path / f"settings-{uuid.uuid4().hex[:6]}{suffix}"
        path.write_bytes(data)
        tally.add("settings", name, expected, _read(tally, name, functools.partial(load_settings, path)))
    for name, text in [
        ("options nested 100,000 deep", '{"*": ' * 100_000 + "{}" + "}" * 100_000),
        ("options that are a list", "[]"),
        ("an unknown transport", json.dumps({"*": {"transport": "smoke-signals"}})),
    ]:
        tally.add(
            "settings",
            name,
            ERROR,
            _read(tally, name, functools.partial(parse_backend_options, text, env.BACKEND_OPTIONS)),
        )


def _read(tally: Tally, name: str, read) -> str:
    """SYNCED when the settings are taken (as Buildbucket takes them, with a WARNING for what costs), ERROR when not."""
    try:
        read()
        return SYNCED
    except SettingsError:
        return ERROR
    except Exception as error:  # a bug
        tally.unclassified.append(f"settings {name}: {error!r}")
        return f"bug: {type(error).__name__}"


# --- one batch: hostile tasks, hostile stored builds, hostile callbacks and hosts, beside innocent builds -----


@dataclasses.dataclass(frozen=True)
class BuildRow:
    """One build of the shared batch: how it is made hostile, and the verdicts of its sync and its effects."""

    kind: str
    name: str
    sync: str
    effects: str | None = None  # the verdict of its completion effects, when it ends with some
    make: object = None  # (Scene, build_id) -> None: makes the build and its task


@dataclasses.dataclass
class Scene:
    client: object
    server: TaskBackendServer
    recorder: ResultDBRecorder
    callback_topic: Subscribed
    builds_topic: str
    shard_topic: str
    elsewhere: ResultDBRecorder

    @property
    def backend(self) -> FakeTaskBackend:
        return self.server.backend


def _plain(scene: Scene, build_id: int, **task) -> None:
    put_build(scene.client, build_id, updated=LONG_AGO)
    scene.backend.set_task(f"task-{build_id}", task.pop("status", pb.FAILURE), task.pop("update_id", 2), **task)


def _stale(scene: Scene, build_id: int) -> None:
    put_build(scene.client, build_id, updated=LONG_AGO, task_update_id=5)
    scene.backend.set_task(f"task-{build_id}", pb.FAILURE, 3)


def _ended(scene: Scene, build_id: int) -> None:
    put_build(scene.client, build_id, updated=LONG_AGO, status=pb.SUCCESS)
    scene.backend.set_task(f"task-{build_id}", pb.FAILURE, 2)


def _task(**fields):
    return lambda scene, build_id: _plain(scene, build_id, **fields)


def _details(json_levels: int):
    return lambda scene, build_id: _plain(scene, build_id, details=nested_details(json_levels))


def _details_groups(levels: int):
    def make(scene: Scene, build_id: int) -> None:
        _plain(scene, build_id, details=struct_pb2.Struct.FromString(nested_groups(levels)))

    return make


def _unknown_fields(scene: Scene, build_id: int) -> None:
    _plain(scene, build_id)
    scene.backend.tasks[f"task-{build_id}"].MergeFromString(b"\xba\x3e" + _varint(300_000) + b"u" * 300_000)


def _status_details_bloated(scene: Scene, build_id: int) -> None:
    _plain(scene, build_id)
    details = scene.backend.tasks[f"task-{build_id}"].status_details
    details.MergeFromString(b"\xba\x3e" + _varint(1_200_000) + b"u" * 1_200_000)


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    return bytes(out) + bytes([value])


def _stored(name: str, value=None, kind: str = model.BUILD_INFRA_KIND, delete: bool = False):
    """A build whose stored `kind` entity has property `name` set to `value` (or the entity deleted)."""

    def make(scene: Scene, build_id: int) -> None:
        _plain(scene, build_id)
        key = model.build_key(scene.client, build_id) if kind == model.BUILD_KIND else None
        key = key or model.child_key(scene.client, build_id, kind)
        if delete:
            scene.client.delete(key)
            return
        entity = scene.client.get(key)
        entity[name] = value
        scene.client.put(entity)

    return make


def _config(json_levels: int = 0, size: int = 0):
    """A build whose stored BuildInfra.backend.config nests `json_levels` deep, or weighs `size` bytes."""

    def make(scene: Scene, build_id: int) -> None:
        _plain(scene, build_id)
        entity = scene.client.get(model.infra_key(scene.client, build_id))
        infra = pb.BuildInfra.FromString(entity["infra"])
        config = (
            nested_bytes(json_levels)
            if json_levels
            else struct_pb2.Struct(fields={"blob": struct_pb2.Value(string_value="c" * size)}).SerializeToString()
        )
        # Written as bytes: field 1 of Backend, as Buildbucket would have stored it.
        entity["infra"] = infra.SerializeToString() + _field(7, _field(1, config))
        scene.client.put(entity)

    return make


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _ended_with(mutate):
    """A build with everything Buildbucket stores and every completion effect, then `mutate`d."""

    def make(scene: Scene, build_id: int) -> None:
        put_buildbucket_build(
            scene.client, build_id, scene.recorder, scene.callback_topic, _Tasks(scene), chunked=False
        )
        if mutate is not None:
            mutate(scene, build_id)

    return make


@dataclasses.dataclass(frozen=True)
class _Tasks:
    """What put_buildbucket_build takes as the task backend: something with `.backend`."""

    scene: Scene

    @property
    def backend(self):
        return self.scene.backend


def _callback(topic):
    def mutate(scene: Scene, build_id: int) -> None:
        _property(model.CALLBACK_TOPIC, topic(scene) if callable(topic) else topic)(scene, build_id)

    return mutate


def _property(name: str, value):
    """A Build property stored as `value`, whatever type luci/gae would load it as."""

    def mutate(scene: Scene, build_id: int) -> None:
        entity = scene.client.get(model.build_key(scene.client, build_id))
        entity[name] = value
        scene.client.put(entity)

    return mutate


def _child(kind: str, name: str, value):
    """Property `name` of the build's `kind` child entity stored as `value`."""

    def mutate(scene: Scene, build_id: int) -> None:
        entity = scene.client.get(model.child_key(scene.client, build_id, kind))
        entity[name] = value
        scene.client.put(entity)

    return mutate


def _resultdb_host(host):
    def mutate(scene: Scene, build_id: int) -> None:
        bb.set_invocation(scene.client, build_id, host(scene), f"invocations/build-{build_id}")

    return mutate


def _infra_config(config: bytes):
    """A build whose stored backend.config is the Struct `config`, written as bytes as Buildbucket stored it."""

    def mutate(scene: Scene, build_id: int) -> None:
        entity = scene.client.get(model.infra_key(scene.client, build_id))
        entity["infra"] += _field(7, _field(1, config))
        scene.client.put(entity)

    return mutate


def _output_garbage(scene: Scene, build_id: int) -> None:
    key = model.child_key(scene.client, build_id, "BuildOutputProperties")
    entity = scene.client.get(key)
    entity["properties"] = b"\xff\xff\xff garbage"
    scene.client.put(entity)


def _steps_bomb(scene: Scene, build_id: int) -> None:
    """Zipped steps of 100 KB that would inflate to 100 MB: past what is ever inflated (wire.py)."""
    bb.put_steps(scene.client, build_id, [], zipped=True)
    entity = scene.client.get(model.child_key(scene.client, build_id, model.BUILD_STEPS_KIND))
    entity["steps"] = _ZEROS_ZIPPED
    scene.client.put(entity)


_ZEROS_ZIPPED = zlib.compress(bytes(100 * 1024 * 1024), 9)


def _build_proto(change):
    """A mutation of the stored Build.proto: `change(build)` on the decoded proto, written back as bytes."""

    def mutate(scene: Scene, build_id: int) -> None:
        entity = scene.client.get(model.build_key(scene.client, build_id))
        build = pb.Build.FromString(entity["proto"])
        change(build)
        entity["proto"] = build.SerializeToString()
        scene.client.put(entity)

    return mutate


def _plain_then(mutate):
    return lambda scene, build_id: (_plain(scene, build_id), mutate(scene, build_id))


def _created_at(seconds: int):
    return _build_proto(lambda build: setattr(build.create_time, "seconds", seconds))


def _started_at_nanos(nanos: int):
    return _build_proto(lambda build: setattr(build.start_time, "nanos", nanos))


def _details_not_json(scene: Scene, build_id: int) -> None:
    """NaN and an infinity in the task's details: fine in binary, no proto3 JSON (Go's protojson refuses them too)."""
    scene.backend.tasks[f"task-{build_id}"].details.update({"nan": float("nan"), "inf": float("inf")})


def _wrong_token(scene: Scene, build_id: int) -> None:
    entity = scene.client.get(model.build_key(scene.client, build_id))
    entity["resultdb_update_token"] = "not the token ResultDB gave"
    scene.client.put(entity)


BUILD_ROWS = [
    BuildRow("innocent builds", f"an innocent build beside them #{i}", SYNCED, "DONE", _ended_with(None))
    for i in range(1, 4)
] + [
    # What a backend answers for one task.
    BuildRow("backend answers", "details nested 45 JSON levels (Go takes them)", SYNCED, make=_details(45)),
    BuildRow("backend answers", "details nested 100 JSON levels", SYNCED, make=_details(100)),
    BuildRow("backend answers", "details nested 300 JSON levels (901 levels)", SYNCED, make=_details(300)),
    BuildRow(
        "backend answers",
        "details nested 1,305 JSON levels (3,916 levels, just under 50 KiB)",
        SYNCED,
        make=_details(1305),
    ),
    BuildRow(
        "backend answers", "details nested 3,000 JSON levels (9,001 levels, over 50 KiB)", INVALID, make=_details(3000)
    ),
    BuildRow("backend answers", "details nesting 9,000 groups (36 KB of Go text)", SYNCED, make=_details_groups(8999)),
    BuildRow(
        "backend answers", "details nested 3,400 JSON levels (deeper than Go takes)", INVALID, make=_details(3400)
    ),
    BuildRow("backend answers", "details over 50 KiB", INVALID, make=_task(details=bb.struct({"l": "x" * 60_000}))),
    BuildRow(
        "backend answers", "a 2 MB summary on an ended task", SYNCED, make=_task(summary_markdown="s" * 2_000_000)
    ),
    BuildRow("backend answers", "a 200 KB link", SYNCED, make=_task(link="https://l/" + "x" * 200_000)),
    BuildRow("backend answers", "300 KB of unknown fields", SYNCED, make=_unknown_fields),
    BuildRow("backend answers", "status_details with 1.2 MB of unknown fields", SYNCED, make=_status_details_bloated),
    BuildRow("backend answers", "update_id 0", INVALID, make=_task(update_id=0)),
    BuildRow("backend answers", "an undeclared status (99)", INVALID, make=_task(status=99)),
    BuildRow("backend answers", "status ENDED_MASK", INVALID, make=_task(status=pb.ENDED_MASK)),
    BuildRow(
        "backend answers", "an older update_id (stale)", INVALID, make=lambda scene, build_id: _stale(scene, build_id)
    ),
    # What a build has stored.
    BuildRow(
        "stored entities",
        "Build.proto that is not a Build",
        FAILED,
        make=_stored("proto", b"\xff\xff", model.BUILD_KIND),
    ),
    BuildRow("stored entities", "BuildInfra that is not a BuildInfra", FAILED, make=_stored("infra", b"\x0a\xff")),
    BuildRow("stored entities", "BuildInfra.infra an integer", FAILED, make=_stored("infra", 7)),
    BuildRow(
        "stored entities", "no BuildInfra entity", LEFT, make=_stored("", kind=model.BUILD_INFRA_KIND, delete=True)
    ),
    BuildRow("stored entities", "no Build entity", LEFT, make=_stored("", kind=model.BUILD_KIND, delete=True)),
    BuildRow(
        "stored entities",
        "a malformed next_backend_sync_time",
        FAILED,
        make=_stored("next_backend_sync_time", "x--", model.BUILD_KIND),
    ),
    BuildRow("stored entities", "backend.config nested 45 JSON levels", SYNCED, make=_config(45)),
    BuildRow("stored entities", "backend.config nested 3,400 JSON levels", FAILED, make=_config(3400)),
    BuildRow(
        "stored entities", "backend.config nested 20,000 JSON levels (past the C stack)", FAILED, make=_config(20_000)
    ),
    BuildRow("stored entities", "BuildInfra stored near the entity limit", SYNCED, make=_config(size=1_010_000)),
    BuildRow("stored entities", "an ended build", LEFT, make=lambda scene, build_id: _ended(scene, build_id)),
    BuildRow(
        "stored entities", "a create_time past the year 9999", FAILED, make=_plain_then(_created_at(253402300800 * 2))
    ),
    BuildRow("stored entities", "a create_time before the year 1", FAILED, make=_plain_then(_created_at(-62135683200))),
    BuildRow(
        "stored entities",
        "a start_time with 2,000,000,000 nanos",
        SYNCED,
        ERROR,
        _ended_with(_started_at_nanos(2_000_000_000)),
    ),
    BuildRow("backend answers", "details holding NaN and an infinity", SYNCED, ERROR, _ended_with(_details_not_json)),
    # What a build's completion effects are pointed at.
    BuildRow(
        "callback topics",
        "a callback topic with a trailing newline",
        SYNCED,
        ERROR,
        _ended_with(_callback(f"projects/{PROJECT}/topics/callback\n")),
    ),
    BuildRow(
        "callback topics",
        "a callback naming the builds topic",
        SYNCED,
        ERROR,
        _ended_with(_callback(lambda scene: scene.builds_topic)),
    ),
    BuildRow(
        "callback topics",
        "a callback naming the shard topic",
        SYNCED,
        ERROR,
        _ended_with(_callback(lambda scene: scene.shard_topic)),
    ),
    BuildRow(
        "callback topics",
        "a callback topic that does not exist",
        SYNCED,
        ERROR,
        _ended_with(_callback(f"projects/{PROJECT}/topics/never-created")),
    ),
    BuildRow("callback topics", "a callback that is not a topic", SYNCED, ERROR, _ended_with(_callback("not a topic"))),
    BuildRow(
        "callback topics",
        "backend.config nested 3,330 JSON levels (9,992 levels), in the JSON notification",
        SYNCED,
        "DONE",
        _ended_with(_infra_config(nested_bytes(3330))),
    ),
    BuildRow("callback topics", "output properties that do not decode", SYNCED, ERROR, _ended_with(_output_garbage)),
    BuildRow("stored entities", "zipped steps that inflate to 100 MB", SYNCED, ERROR, _ended_with(_steps_bomb)),
    BuildRow(
        "hosts",
        "a ResultDB host with user info before the settings' host",
        SYNCED,
        ERROR,
        _ended_with(_resultdb_host(lambda scene: f"results.api.cr.dev@{scene.recorder.hostname}")),
    ),
    BuildRow(
        "hosts",
        "a ResultDB host the settings do not name",
        SYNCED,
        ERROR,
        _ended_with(_resultdb_host(lambda scene: scene.elsewhere.hostname)),
    ),
    BuildRow(
        "hosts",
        "a ResultDB host with a path",
        SYNCED,
        ERROR,
        _ended_with(_resultdb_host(lambda scene: f"{scene.recorder.hostname}/evil")),
    ),
    BuildRow("hosts", "an update token ResultDB refuses", SYNCED, ERROR, _ended_with(_wrong_token)),
    BuildRow(
        "hosts",
        "an update token with a line break",
        SYNCED,
        RETRY,
        _ended_with(_property("resultdb_update_token", "t\n")),
    ),
    BuildRow(
        "hosts", "an update token that is a number", SYNCED, ERROR, _ended_with(_property("resultdb_update_token", 7))
    ),
    BuildRow("callback topics", "a callback topic that is a number", SYNCED, ERROR, _ended_with(_callback(7))),
    BuildRow(
        "callback topics",
        "a callback topic stored as bytes",
        SYNCED,
        ERROR,
        _ended_with(_callback(f"projects/{PROJECT}/topics/callback".encode())),
    ),
    BuildRow(
        "callback topics",
        "callback user data stored as text",
        SYNCED,
        ERROR,
        _ended_with(_property("pubsub_callback.user_data", "text")),
    ),
    BuildRow("stored entities", "tags that are one number", SYNCED, ERROR, _ended_with(_property("tags", 7))),
    BuildRow("stored entities", "tags holding a null", SYNCED, ERROR, _ended_with(_property("tags", ["a:b", None]))),
    BuildRow("stored entities", "tags that are one string", SYNCED, "DONE", _ended_with(_property("tags", "a:b"))),
    BuildRow(
        "stored entities",
        "steps stored as text",
        SYNCED,
        ERROR,
        _ended_with(_child(model.BUILD_STEPS_KIND, "steps", "x")),
    ),
    BuildRow(
        "stored entities",
        "output properties stored as text",
        SYNCED,
        ERROR,
        _ended_with(_child("BuildOutputProperties", "properties", "text")),
    ),
    BuildRow(
        "stored entities",
        "input properties that are a number",
        SYNCED,
        ERROR,
        _ended_with(_child("BuildInputProperties", "properties", 7)),
    ),
    BuildRow(
        "stored entities",
        "a chunk_count that is text",
        SYNCED,
        ERROR,
        _ended_with(_child("BuildOutputProperties", "chunk_count", "x")),
    ),
    BuildRow(
        "stored entities",
        "a chunk_count of ten million (a lookup per thousand)",
        SYNCED,
        ERROR,
        _ended_with(_child("BuildOutputProperties", "chunk_count", 10**7)),
    ),
]


def _one_batch(tally: Tally, scene: Scene, runtime) -> None:
    """Every BuildRow in one batch; each build gets its own verdict and the innocent ones are synced whole."""
    build_ids = {row: 1000 + index for index, row in enumerate(BUILD_ROWS)}
    for row, build_id in build_ids.items():
        row.make(scene, build_id)
    batch = SyncBatch(BACKEND, "proj", tuple(build_ids.values()), datetime.datetime.now(datetime.timezone.utc))
    with captured_logs() as captured:
        try:
            handlers.handle_batch(runtime, batch)
        except Exception as error:  # any: the batch itself must not fail for one build's input
            tally.unclassified.append(f"the shared batch raised {error!r}")
    lines = captured.events()
    tally.count_bugs(lines)
    published = {_build_id(m) for m in scene.callback_topic.pull_nothing_more()}
    for row, build_id in build_ids.items():
        mine = [e for e in lines if e.get("build_id") == build_id or e.get("build_ids") == [build_id]]
        tally.add(row.kind, row.name, row.sync, *_sync_verdict(scene, build_id, mine))
        if row.effects is not None:
            observed = _effects_verdict(scene, build_id, mine, build_id in published)
            tally.add(row.kind, f"{row.name}: its completion effects", row.effects, observed)


def _build_id(received) -> int:
    """The build a callback is about; read with the stack a notification nested as deep as Go takes needs."""
    return int(with_deep_stack(lambda: json.loads(received.message.data))["buildPubsub"]["build"]["id"])


def _sync_verdict(scene: Scene, build_id: int, mine: list[dict]) -> tuple[str, str]:
    said = {e["message"]: e.get("reason") or e.get("error", "") for e in mine}
    if "build failed" in said or "transaction for a group of builds failed" in said:
        return FAILED, said.get("build failed") or said["transaction for a group of builds failed"]
    for message in ("build invalid", "build stale"):
        if message in said:
            return INVALID, said[message]
    build, infra = (
        scene.client.get(k) for k in (model.build_key(scene.client, build_id), model.infra_key(scene.client, build_id))
    )
    task = scene.backend.tasks.get(f"task-{build_id}")
    if build is None or infra is None or task is None:
        return LEFT, "no build, or no task"
    stored = pb.BuildInfra.FromString(infra["infra"]).backend.task
    ended = build["incomplete"] is False
    if stored.update_id == task.update_id and ended == bool(task.status & pb.ENDED_MASK):
        return SYNCED, ""
    return LEFT, f"task update {stored.update_id}, incomplete {build['incomplete']}"


# What the sync itself says of a build, before any completion effect.
_SYNC_LINES = ("build failed", "build invalid", "BuildSteps cannot be decoded; steps left as stored")


def _effects_verdict(scene: Scene, build_id: int, mine: list[dict], called_back: bool) -> str:
    if scene.client.get(outbox.entry_key(scene.client, build_id)) is not None:
        return RETRY
    errors = [e for e in mine if e["severity"] == "ERROR" and e["message"] not in _SYNC_LINES]
    if errors:
        return ERROR if len(errors) == 1 else f"{len(errors)} ERROR lines"
    finalized = f"invocations/build-{build_id}" in scene.recorder.finalized
    return "DONE" if finalized and called_back else f"finalized {finalized}, called back {called_back}"


# --- whole runs: builds whose identity no message can carry, planned, queried and synced beside an innocent one ---

_IDENTITIES = [
    ("a project that is a number", "project", 7, ERROR),
    ("a project that is null", "project", None, ERROR),
    ("a project of 1,400 bytes (over Pub/Sub's attribute limit)", "project", "p" * 1400, ERROR),
    ("a project no header can carry", "project", "pr\u20acj", ERROR),
    ("a backend_target that is a number (an unknown backend)", model.BACKEND_TARGET, 7, ERROR),
    ("a backend_target that is null (no backend's)", model.BACKEND_TARGET, None, LEFT),
    ("a Build keyed by a name, not an id", "", None, ERROR),
]


def _whole_runs(tally: Tally, scene: Scene, runtime) -> None:
    """Each row: a trigger for everything, the shard jobs it plans, their batches; one ERROR line names the
    hostile build, and the innocent build beside it is synced."""
    for index, (name, prop, value, expected) in enumerate(_IDENTITIES):
        innocent, hostile = 7000 + 2 * index, 7001 + 2 * index
        _plain(scene, innocent)
        _plain(scene, hostile)
        entity = scene.client.get(model.build_key(scene.client, hostile))
        scene.client.delete(entity.key)
        if prop:
            entity[prop] = value
        else:
            entity.key = scene.client.key(model.BUILD_KIND, f"build-{hostile}")
        scene.client.put(entity)
        with captured_logs() as captured:
            try:
                _plan_query_and_sync(runtime)
                observed = None
            except Exception as error:  # any: a stored build's identity must fail neither the plan nor a batch
                observed = f"bug: {type(error).__name__}"
                tally.unclassified.append(f"a whole run with {name}: {error!r}")
        lines = captured.events()
        tally.count_bugs(lines)
        errors = [e for e in lines if e["severity"] == "ERROR"]
        neighbour, _ = _sync_verdict(scene, innocent, [])
        if observed is None:
            observed = {0: LEFT, 1: ERROR}.get(len(errors), f"{len(errors)} ERROR lines")
            observed = observed if neighbour == SYNCED else f"its neighbour {neighbour}"
        tally.add("stored entities", f"a whole run: {name}", expected, observed, errors[0]["message"] if errors else "")
        scene.client.delete(entity.key)


def _plan_query_and_sync(runtime) -> None:
    """What the three functions do with one trigger, without Pub/Sub between them."""
    planned_at = datetime.datetime.now(datetime.timezone.utc)
    for job in handlers.handle_trigger(runtime, SyncTrigger(), planned_at):
        for batch in due_batches(runtime.datastore, job):
            handlers.handle_batch(runtime, batch)


# --- whole answers: what a backend (or whatever answers at its address) sends for a batch --------------------


def _whole_answers(tally: Tally, scene: Scene, runtime, tmp_path) -> None:
    server, backend = scene.server.prpc_server, scene.backend
    redirect_target = scene.elsewhere.server

    def raw(answer):
        return lambda request: answer

    rows = [
        ("the wrong number of responses", ERROR, lambda: setattr(backend, "response_hook", _drop_one)),
        ("garbage with code 0", TRANSIENT, lambda: setattr(server, "raw_answer", raw(_ok_answer(b"\xff\xfe garbage")))),
        ("a truncated answer", TRANSIENT, lambda: setattr(server, "raw_answer", raw(_ok_answer(b"\x0a\x90\x01")))),
        ("an HTML error page", TRANSIENT, lambda: setattr(server, "raw_answer", raw(RawAnswer(500, {}, b"<html>")))),
        (
            "X-Prpc-Grpc-Code: \u00b2",
            TRANSIENT,
            lambda: setattr(server, "raw_answer", raw(RawAnswer(200, {"X-Prpc-Grpc-Code": "\u00b2"}, b""))),
        ),
        (
            "a redirect to another host",
            TRANSIENT,
            lambda: setattr(server, "redirect_to", f"http://{redirect_target.hostname}/prpc/x/y"),
        ),
        ("PERMISSION_DENIED", ERROR, lambda: setattr(backend, "fail_with", grpc.StatusCode.PERMISSION_DENIED)),
        ("UNAVAILABLE", TRANSIENT, lambda: setattr(backend, "fail_with", grpc.StatusCode.UNAVAILABLE)),
        ("1,000 bytes dripped a byte at a time", TRANSIENT, functools.partial(_drip, server, backend)),
    ]
    quick = runtime(BUILDSYNC_FETCH_DEADLINE_SECONDS="2")
    for index, (name, expected, misbehave) in enumerate(rows):
        build_id = 5000 + index
        _plain(scene, build_id)
        scene.client.delete(breakers.breaker_key(scene.client, BACKEND))  # each row as the first failure
        misbehave()
        try:
            event = pubsub_event(
                SyncBatch(BACKEND, "proj", (build_id,), datetime.datetime.now(datetime.timezone.utc)).to_json()
            )
            observed, detail = _handled(
                tally, event, "sync", lambda data: handlers.handle_batch(quick, SyncBatch.from_json(data))
            )
        finally:
            backend.response_hook, backend.fail_with = None, None
            server.raw_answer, server.redirect_to, server.drip_seconds = None, None, None
        tally.add("backend answers", f"a whole answer: {name}", expected, observed, detail)
    tally.add("hosts", "a redirect's target got nothing", "0", str(redirect_target.connections))
    server.drip_ended.wait(60)
    tally.add("backend answers", "a dripped answer was hung up on at the deadline", "[False]", str(server.drips))
    path = tmp_path / "bad-host.cfg"
    path.write_text(settings_text("swarm.example.com@127.0.0.1:1"))
    odd = runtime(BUILDSYNC_SETTINGS=str(path))
    event = pubsub_event(SyncBatch(BACKEND, "proj", (5100,), datetime.datetime.now(datetime.timezone.utc)).to_json())
    observed, detail = _handled(
        tally, event, "sync", lambda data: handlers.handle_batch(odd, SyncBatch.from_json(data))
    )
    tally.add("hosts", "a settings hostname with user info", ERROR, observed, detail)


def _drip(server, backend) -> None:
    """An answer of about 1,000 bytes sent a byte every 20 ms: each byte well inside any socket timeout."""
    server.drip_seconds = 0.02
    backend.response_hook = lambda request, response: _with_summary(response, "s" * 1000)


def _with_summary(response, summary: str):
    for item in response.responses:
        item.task.summary_markdown = summary
    return response


def _drop_one(request, response):
    del response.responses[-1]
    return response


def _ok_answer(body: bytes) -> RawAnswer:
    return RawAnswer(200, {"X-Prpc-Grpc-Code": "0", "Content-Type": "application/prpc; encoding=binary"}, body)


def _tasks_that_do_not_decode(tally: Tally, scene: Scene, runtime) -> None:
    """pRPC answers whose second task does not decode: the first build syncs, the second alone is invalid."""
    rows = [
        ("a task nested 60,000 levels", lambda task: task.SerializeToString() + _field(6, nested_bytes(20_000))),
        (
            "a task whose summary is not UTF-8 (proto3 strings must be)",
            lambda task: task.SerializeToString() + _field(8, b"\xff\xfe not text"),
        ),
    ]
    for index, (name, task_bytes) in enumerate(rows):
        good, bad = 5200 + 2 * index, 5201 + 2 * index
        for build_id in (good, bad):
            _plain(scene, build_id)
        first = pb.FetchTasksResponse.Response(task=scene.backend.tasks[f"task-{good}"]).SerializeToString()
        second = _field(
            1, task_bytes(pb.Task(id=pb.TaskID(target=BACKEND, id=f"task-{bad}"), update_id=2, status=pb.FAILURE))
        )
        answer = _ok_answer(_field(1, first) + _field(1, second))
        scene.server.prpc_server.raw_answer = lambda request, answer=answer: answer
        with captured_logs() as captured:
            try:
                handlers.handle_batch(
                    runtime, SyncBatch(BACKEND, "proj", (good, bad), datetime.datetime.now(datetime.timezone.utc))
                )
            finally:
                scene.server.prpc_server.raw_answer = None
        lines = captured.events()
        tally.count_bugs(lines)
        for build_id, row, expected in ((good, f"its neighbour ({name})", SYNCED), (bad, name, INVALID)):
            mine = [e for e in lines if e.get("build_id") == build_id]
            tally.add("backend answers", row, expected, *_sync_verdict(scene, build_id, mine))


@pytest.mark.both_emulators
def test_every_hostile_input_gets_its_verdict_and_no_build_is_stuck(
    datastore_client, datastore_env, task_backend, recorder, builds_topic, callback_topic, runtime, tmp_path, capsys
):
    elsewhere = ResultDBRecorder().start()
    on_this_emulator = {name: value for name, value in datastore_env.items() if name.startswith("BUILDSYNC_")}
    runtime = functools.partial(
        runtime, **on_this_emulator
    )  # how its transactions begin (README "Two Datastore emulators")
    the_runtime = runtime(BUILDSYNC_SWEEP_MIN_AGE_SECONDS="0")
    scene = Scene(
        datastore_client, task_backend, recorder, callback_topic, builds_topic.topic, the_runtime.shard_topic, elsewhere
    )
    tally = Tally()
    try:
        _messages(tally, the_runtime)
        _settings(tally, tmp_path)
        _whole_runs(tally, scene, the_runtime)
        _one_batch(tally, scene, the_runtime)
        _tasks_that_do_not_decode(tally, scene, the_runtime)
        _whole_answers(tally, scene, runtime, tmp_path)
    finally:
        elsewhere.stop()
    assert elsewhere.calls == [], "no ResultDB call reached a host outside the settings"

    stuck = [v for v in tally.verdicts if v.stuck]
    with capsys.disabled():
        for verdict in tally.verdicts:
            got = "ok" if not verdict.stuck else f"GOT {verdict.observed}"
            print(f"  {verdict.kind:16} {verdict.expected:9} {got:12} {verdict.name}  {verdict.detail[:80]}")
        print(
            f"FIGURE hostile: {len(tally.verdicts)} inputs, {len(stuck)} stuck builds, "
            f"{len(tally.unclassified)} unclassified errors"
        )
    assert stuck == [] and tally.unclassified == []


def test_nothing_is_retried_forever_an_effect_still_failing_after_its_budget_is_given_up_with_one_error(
    datastore_client, task_backend, recorder, builds_topic, callback_topic, runtime
):
    """The outbox's budget: an effect still failing a day after its build ended is dropped, named.

    The other budgets are Pub/Sub's dead-letter policy for a message retried
    as transient (deploy/pubsub.tf, tests/test_deploy.py) and pRPC's 6
    attempts within one deadline (tests/test_prpc.py).
    """
    put_buildbucket_build(datastore_client, 7, recorder, callback_topic, task_backend, chunked=False)
    the_runtime = runtime()
    recorder.fail_next(grpc.StatusCode.NOT_FOUND, grpc.StatusCode.NOT_FOUND)  # retried by the outbox, as upstream
    handlers.handle_batch(the_runtime, SyncBatch(BACKEND, "proj", (7,), datetime.datetime.now(datetime.timezone.utc)))
    (left,) = outbox_due(datastore_client, datetime.datetime.now(datetime.timezone.utc), datetime.timedelta(0))
    assert left.effects == {outbox.Effect.RESULTDB}
    past_budget = dataclasses.replace(left, created=left.created - outbox.RETRY_BUDGET)
    calls = len(recorder.calls)
    with captured_logs() as captured:
        the_runtime.completer.complete([past_budget])
    (dropped,) = [e for e in captured.events() if e["severity"] == "ERROR"]
    assert dropped["message"] == "completion effects dropped" and dropped["effects"] == ["resultdb"]
    # Given up before it was tried: an effect that raised a bug every time would end the same way.
    assert len(recorder.calls) == calls
    assert outbox_due(datastore_client, datetime.datetime.now(datetime.timezone.utc), datetime.timedelta(0)) == []
