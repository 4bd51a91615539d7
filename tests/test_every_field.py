"""A build with every field set, ended by the real sync: nothing is dropped or renamed.

Every field of Build and BuildInfra, and of the task the backend answers with,
is set by walking the descriptors (tests/field_filler.py): those of upstream's
own .proto files when they are available (tests/upstream_schema.py), and ours
always, so a field added to either schema is covered without a new test. The
builds are written the way Buildbucket writes them, ended through the sync
function's handler on the emulator, and read back, decoded with upstream's
files when available: the stored entities keep every field, and the
BuildsV2PubSub on the builds topic and on the callback topic carry the build
exactly as upstream's notification does (model/build.go ToProto with every
field, protoutil.MergeSummary, tasks/notification.go), under upstream's JSON
names.
"""

from __future__ import annotations

import dataclasses
import datetime
import json

import pytest
from buildsync.edge import handlers
from buildsync.proto import buildbucket_pb2 as pb
from buildsync.proto import notification_pb2 as npb
from buildsync.stages.messages import SyncBatch
from buildsync.store import model
from google.protobuf import json_format
from google.protobuf.message import Message

from tests import buildbucket_writer as bb
from tests import upstream_schema
from tests.builds import BACKEND, put_build
from tests.field_filler import Filler, every_field, fields_set, leaves, runs_needed
from tests.harness import LONG_AGO, large_fields, skip_loudly

# Tag keys Buildbucket keeps on the entity for its own lookups and leaves out of
# every answer (model/build.go isHiddenTag), and one such tag of each.
HIDDEN_TAG_KEYS = ("build_address", "builder", "gitiles_ref")
HIDDEN_TAGS = ("builder:proj/ci/builder", "build_address:proj/ci/builder/1", "gitiles_ref:refs/heads/main")
CHILD_KINDS_THE_SYNC_WRITES = ("Build", "BuildInfra", "BuildStatus")


@dataclasses.dataclass(frozen=True)
class Schema:
    """The message classes of one schema: ours, or upstream's compiled from its own files."""

    name: str
    build: type[Message]
    task: type[Message]
    builds_v2_pubsub: type[Message]
    callback: type[Message]


OURS = Schema("ours", pb.Build, pb.Task, npb.BuildsV2PubSub, npb.PubSubCallBack)


@pytest.fixture(scope="module")
def upstream():
    folder, where = upstream_schema.upstream_folder()
    if folder is None:
        return None, where
    pool = upstream_schema.compile_upstream(folder)
    names = ("Build", "Task", "BuildsV2PubSub", "PubSubCallBack")
    return Schema("upstream", *(upstream_schema.upstream_class(pool, f"buildbucket.v2.{n}") for n in names)), where


@pytest.fixture(params=["ours", "upstream"])
def schemas(request, upstream) -> tuple[Schema, Schema]:
    """(the schema the builds are filled from, the schema everything read back is decoded with)."""
    theirs, where = upstream
    if theirs is None:
        if request.param == "upstream":
            skip_loudly(f"UPSTREAM'S .proto FILES ARE NOT AVAILABLE; filling from them is skipped: {where}")
        return OURS, OURS
    return (OURS if request.param == "ours" else theirs), theirs


def filled(schema: Schema, run: int, build_id: int, resultdb_host: str) -> tuple[Message, Message]:
    """A started build with every field set, and the ended task its backend answers with.

    Only what the sync needs to find and end the build is chosen: its id and
    builder, a STARTED status, an ended output status (so the build ends with
    it), ended steps, the task's id, and a ResultDB host that answers.
    """
    filler = Filler(run)
    build = filler.fill(schema.build())
    build.id = build_id
    build.builder.project, build.builder.bucket, build.builder.builder = "proj", "ci", "builder"
    build.status, build.output.status = pb.STARTED, pb.FAILURE
    build.update_time.FromDatetime(LONG_AGO)
    for step in build.steps:
        step.status = pb.SUCCESS
    task = build.infra.backend.task
    task.id.target, task.id.id, task.status, task.update_id = BACKEND, f"task-{build_id}", pb.STARTED, 1
    build.infra.resultdb.hostname, build.infra.resultdb.invocation = resultdb_host, f"invocations/build-{build_id}"
    fetched = filler.fill(schema.task())
    fetched.id.target, fetched.id.id, fetched.status, fetched.update_id = BACKEND, task.id.id, pb.FAILURE, 2
    return build, fetched


def entity_tags(build: Message) -> list[str]:
    """The Build entity's `tags`: the build's own, and hidden ones."""
    return [f"{tag.key}:{tag.value}" for tag in build.tags] + list(HIDDEN_TAGS)


def without_children(build: Message) -> Message:
    """Build.proto as Buildbucket stores it: infra, properties and steps live in child entities."""
    stored = type(build)()
    stored.CopyFrom(build)
    stored.ClearField("infra")
    del stored.steps[:]
    stored.input.ClearField("properties")
    stored.output.ClearField("properties")
    return stored


def store(client, build: Message, recorder, callback_topic, *, zipped: bool) -> None:
    """Writes `build` as Buildbucket does, children and entity properties included."""
    build_id = build.id
    put_build(client, build_id, updated=LONG_AGO)
    token = f"token-{build_id}"
    bb.set_build_properties(
        client,
        build_id,
        tags=entity_tags(build),
        callback_topic=callback_topic.topic,
        user_data=b"\x00data",
        update_token=token,
    )
    entity = client.get(model.build_key(client, build_id))
    entity["proto"] = without_children(build).SerializeToString()
    infra = client.get(model.infra_key(client, build_id))
    infra["infra"] = build.infra.SerializeToString()
    client.put_multi([entity, infra])
    bb.put_input_properties(client, build_id, json_format.MessageToDict(build.input.properties))
    bb.put_output_properties(client, build_id, json_format.MessageToDict(build.output.properties), chunked=zipped)
    bb.put_steps(client, build_id, [pb.Step.FromString(s.SerializeToString()) for s in build.steps], zipped=zipped)
    recorder.add_invocation(build.infra.resultdb.invocation, token)


def untouched_children(client, build_id: int) -> dict:
    """Every entity under the build the sync has no reason to write (properties, chunks, steps)."""
    query = client.query(ancestor=model.build_key(client, build_id))
    return {e.key.flat_path: dict(e) for e in query.fetch() if e.kind not in CHILD_KINDS_THE_SYNC_WRITES}


def differences(ours: Message, expected: Message) -> list[str]:
    """Paths whose values differ between two messages, for a readable failure."""
    mine, theirs = leaves(ours), leaves(expected)
    return sorted(p for p in mine.keys() | theirs.keys() if mine.get(p) != theirs.get(p))


def check_stored(client, written: Message, fetched: Message, decode: Schema) -> tuple[Message, Message]:
    """The stored Build.proto and BuildInfra keep every field written; the sync changed only what it owns."""
    build_id = written.id
    stored = decode.build.FromString(client.get(model.build_key(client, build_id))["proto"])
    infra = type(written.infra).FromString(client.get(model.infra_key(client, build_id))["infra"])
    assert stored.status == pb.FAILURE and stored.update_time.ToDatetime() > LONG_AGO.replace(tzinfo=None)
    expected = without_children(written)
    # What ending a build changes: its status, its update time, and the details of its new status.
    expected.status = stored.status
    expected.update_time.CopyFrom(stored.update_time)
    expected.status_details.CopyFrom(written.output.status_details)
    assert stored == expected, differences(stored, expected)
    expected_infra = type(written.infra)()
    expected_infra.CopyFrom(written.infra)
    expected_infra.backend.task.MergeFrom(fetched)
    assert infra == expected_infra, differences(infra, expected_infra)
    return stored, infra


def upstream_notification(stored: Message, infra: Message, written: Message) -> tuple[Message, Message]:
    """(build, build_large_fields) of upstream's notification of this stored build."""
    build = type(stored)()
    build.CopyFrom(stored)
    del build.tags[:]  # the entity's tags, as stored by store(), without the hidden ones
    for key, _, value in (tag.partition(":") for tag in entity_tags(written)):
        if key not in HIDDEN_TAG_KEYS:
            build.tags.add(key=key, value=value)
    build.infra.CopyFrom(infra)
    # Every part is set and none contains another, so upstream's MergeSummary joins all four.
    parts = (stored.summary_markdown, stored.output.summary_markdown, infra.backend.task.summary_markdown)
    build.summary_markdown = "\n".join([*parts, stored.cancellation_markdown])
    large = type(stored)()
    large.input.properties.CopyFrom(written.input.properties)
    large.output.properties.CopyFrom(written.output.properties)
    large.steps.extend(written.steps)
    return build, large


def check_published(message, message_class: type[Message]) -> Message:
    """Decodes a published message strictly; its JSON is exactly what the decoding schema prints."""
    parsed = json_format.Parse(message.data, message_class())  # an unknown or misspelt key fails here
    assert json_format.MessageToDict(parsed) == json.loads(message.data), "a key not under its JSON name"
    assert dict(message.attributes)["is_completed"] == "true"
    return parsed


def check_notification(notification: Message, written: Message, expected: tuple[Message, Message], decode: Schema):
    build, large = expected
    assert notification.compression == npb.ZLIB and not notification.build_large_fields_dropped
    assert notification.build == build, differences(notification.build, build)
    carried = large_fields(notification, decode.build)
    assert carried == large, differences(carried, large)
    missing = leaves(written).keys() - leaves(notification.build).keys() - leaves(carried).keys()
    assert sorted(missing) == []


def test_a_build_with_every_field_set_keeps_them_all_in_storage_and_in_its_notifications(
    schemas, datastore_client, task_backend, recorder, builds_topic, callback_topic, runtime
):
    fill, decode = schemas
    runs = runs_needed(fill.build.DESCRIPTOR, fill.task.DESCRIPTOR)
    written, fetched, covered = {}, {}, set()
    for run in range(runs):
        build, task = filled(fill, run, 100 + run, recorder.hostname)
        covered |= fields_set(build) | fields_set(task)
        build, task = (
            decode.build.FromString(build.SerializeToString()),
            decode.task.FromString(task.SerializeToString()),
        )
        store(datastore_client, build, recorder, callback_topic, zipped=run % 2 == 1)
        answer = task_backend.backend.set_task(task.id.id, pb.FAILURE, 2, BACKEND)
        answer.MergeFrom(pb.Task.FromString(task.SerializeToString()))
        written[build.id], fetched[build.id] = build, task
    assert every_field(fill.build.DESCRIPTOR, fill.task.DESCRIPTOR) - covered == set(), "a field the filler missed"
    before = {build_id: untouched_children(datastore_client, build_id) for build_id in written}

    now = datetime.datetime.now(datetime.timezone.utc)
    report = handlers.handle_batch(runtime(), SyncBatch(BACKEND, "proj", tuple(written), now))
    assert report.completed == runs

    notifications = [check_published(m, decode.builds_v2_pubsub) for m in builds_topic.pull(runs)]
    callbacks = [check_published(m, decode.callback) for m in callback_topic.pull(runs)]
    by_id = {n.build.id: n for n in notifications}
    assert sorted(by_id) == sorted(written) and sorted(c.build_pubsub.build.id for c in callbacks) == sorted(written)
    for callback in callbacks:
        assert callback.user_data == b"\x00data" and callback.build_pubsub == by_id[callback.build_pubsub.build.id]
    for build_id, build in written.items():
        stored, infra = check_stored(datastore_client, build, fetched[build_id], decode)
        assert untouched_children(datastore_client, build_id) == before[build_id]
        check_notification(by_id[build_id], build, upstream_notification(stored, infra, build), decode)
