"""Reading a build back whole: Build.proto joined with its child entities, as Buildbucket's API answers."""

from __future__ import annotations

import datetime
import random

import pytest
from buildsync.ending import build_reader
from buildsync.proto import buildbucket_pb2 as pb
from buildsync.store import model
from google.cloud import datastore

from tests import buildbucket_writer as bb
from tests.builds import put_build

UPDATED = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)


def steps(*names: str) -> list[pb.Step]:
    return [pb.Step(name=name, status=pb.SUCCESS, summary_markdown=f"{name} ok") for name in names]


def test_a_build_with_every_child_reads_back_whole(datastore_client):
    client = datastore_client
    put_build(client, 7, updated=UPDATED)
    bb.set_build_properties(
        client, 7, tags=["buildset:patch/1", "builder:hidden", "build_address:x/y/1", "gitiles_ref:main", "user:me"]
    )
    bb.set_invocation(client, 7, "results.example", "invocations/build-7")
    bb.put_input_properties(client, 7, {"recipe": "r", "n": 1})
    bb.put_output_properties(client, 7, {"out": "plain"})
    bb.put_steps(client, 7, steps("a", "b"))
    stored = build_reader.read_builds(client, [7])[7]
    build = build_reader.api_build(stored)
    assert [(t.key, t.value) for t in build.tags] == [("buildset", "patch/1"), ("user", "me")]
    assert build.infra.resultdb.invocation == "invocations/build-7"
    assert build.infra.backend.task.id.id == "task-7"
    assert build.input.properties == bb.struct({"recipe": "r", "n": 1})
    assert build.output.properties == bb.struct({"out": "plain"})
    assert [s.name for s in build.steps] == ["a", "b"]


def test_chunked_output_properties_are_joined_and_decompressed(datastore_client):
    client = datastore_client
    put_build(client, 8, updated=UPDATED)
    rng = random.Random(8)
    # Incompressible, so the zstd stream spans several 1 MB chunks.
    values = {
        f"k{i}": "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(1000)) for i in range(2500)
    }
    chunks = bb.put_output_properties(client, 8, values, chunked=True)
    assert chunks >= 2
    stored = build_reader.read_builds(client, [8])[8]
    assert len(stored.output_chunks) == chunks
    assert build_reader.api_build(stored).output.properties == bb.struct(values)


def test_zipped_steps_are_decompressed(datastore_client):
    client = datastore_client
    put_build(client, 9, updated=UPDATED)
    bb.put_steps(client, 9, steps("x", "y", "z"), zipped=True)
    build = build_reader.api_build(build_reader.read_builds(client, [9])[9])
    assert [s.name for s in build.steps] == ["x", "y", "z"]


def test_a_missing_build_is_left_out_and_missing_children_leave_fields_empty(datastore_client):
    client = datastore_client
    put_build(client, 10, updated=UPDATED)
    found = build_reader.read_builds(client, [10, 11])
    assert list(found) == [10]
    build = build_reader.api_build(found[10])
    assert build.HasField("input") and not build.input.HasField("properties")
    assert build.HasField("output") and not build.output.HasField("properties")
    assert not build.steps and not build.tags


def test_a_child_that_does_not_decode_names_itself(datastore_client):
    client = datastore_client
    put_build(client, 12, updated=UPDATED)
    entity = bb._child(client, 12, "BuildInputProperties", properties=b"\xff\xff not a struct")
    client.put(entity)
    with pytest.raises(model.EntityDecodeError, match="BuildInputProperties"):
        build_reader.api_build(build_reader.read_builds(client, [12])[12])


@pytest.mark.parametrize(
    ("summary", "output", "task", "expected"),
    [
        ("", "", "", ""),
        ("mine", "", "", "mine"),
        ("mine", "output says", "task says", "mine\noutput says\ntask says"),
        ("mine contains task says", "", "task says", "mine contains task says"),
        ("  ", "out", "", "out"),
    ],
)
def test_summary_is_merged_as_upstream(summary, output, task, expected):
    build = pb.Build(summary_markdown=summary)
    build.output.summary_markdown = output
    build.infra.backend.task.summary_markdown = task
    assert build_reader.merged_summary(build) == expected


def test_a_long_summary_is_cut_in_bytes_with_an_ellipsis():
    build = pb.Build(summary_markdown="é" * 3000)
    merged = build_reader.merged_summary(build)
    assert merged.endswith("...") and len(merged.encode()) <= build_reader.SUMMARY_MARKDOWN_MAX_LENGTH


@pytest.mark.parametrize(
    ("name", "value", "read"),
    [
        ("pubsub_callback.topic", 7, lambda stored: stored.callback_topic),
        ("pubsub_callback.user_data", "text", lambda stored: stored.callback_user_data),
        ("resultdb_update_token", b"bytes", lambda stored: stored.resultdb_update_token),
        ("project", 7, lambda stored: stored.project),
        ("tags", 7, build_reader.api_build),
        ("tags", ["a:b", 7], build_reader.api_build),
    ],
)
def test_a_property_of_another_type_than_luci_gae_loads_is_an_entity_decode_error(name, value, read):
    entity = datastore.Entity(datastore.Key("Build", 1, project="p"))
    entity.update({"proto": pb.Build(id=1).SerializeToString(), name: value})
    with pytest.raises(model.EntityDecodeError, match="not"):
        read(build_reader.StoredBuild(entity))


def test_absent_or_null_properties_read_as_empty_and_a_lone_tag_as_a_list_of_one():
    entity = datastore.Entity(datastore.Key("Build", 1, project="p"))
    entity.update({"proto": pb.Build(id=1).SerializeToString(), "resultdb_update_token": None, "tags": "a:b"})
    stored = build_reader.StoredBuild(entity)
    assert (stored.callback_topic, stored.callback_user_data, stored.resultdb_update_token) == ("", b"", "")
    assert [(tag.key, tag.value) for tag in build_reader.api_build(stored).tags] == [("a", "b")]


@pytest.mark.parametrize("count", [10**7, "3", 2.0])
def test_a_chunk_count_that_is_no_number_of_chunks_up_to_the_cap_fails_the_read_without_reading_chunks(
    datastore_client, count
):
    put_build(datastore_client, 1, updated=datetime.datetime.now(datetime.timezone.utc))
    bb.put_output_properties(datastore_client, 1, {"a": "b"})
    entity = datastore_client.get(model.child_key(datastore_client, 1, build_reader.OUTPUT_PROPERTIES_KIND))
    entity["chunk_count"] = count
    datastore_client.put(entity)
    stored = build_reader.read_builds(datastore_client, [1])[1]
    assert stored.output_chunks == ()
    with pytest.raises(model.EntityDecodeError, match="is not a number of chunks up to"):
        build_reader.api_build(stored)
