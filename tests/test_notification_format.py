"""The notification's shape: large fields apart and compressed, the cut-off, JSON and attributes."""

from __future__ import annotations

import json
import zlib

import pytest
import zstandard
from buildsync.ending import notification_format
from buildsync.proto import buildbucket_pb2 as pb
from buildsync.proto import notification_pb2 as npb
from google.protobuf import json_format

from tests.buildbucket_writer import struct
from tests.harness import large_fields, with_deep_stack
from tools.task_backend import nested_bytes


def whole_build() -> pb.Build:
    build = pb.Build(id=8_945_511_751_514_863_184, number=7, status=pb.FAILURE, summary_markdown="broke")
    build.builder.project, build.builder.bucket, build.builder.builder = "chromium", "ci", "linux-rel"
    build.input.properties.CopyFrom(struct({"recipe": "chromium", "n": 3}))
    build.output.properties.CopyFrom(struct({"got_revision": "abc"}))
    build.output.status = pb.FAILURE
    build.steps.add(name="compile", status=pb.CANCELED)
    build.tags.add(key="buildset", value="commit/gitiles/x")
    build.infra.resultdb.hostname = "results.example"
    return build


def test_large_fields_leave_the_build_and_travel_compressed_with_zlib_by_default():
    message = notification_format.builds_v2_pubsub(whole_build())
    assert message.compression == npb.ZLIB
    assert not message.build.steps
    assert not message.build.input.HasField("properties")
    assert not message.build.output.HasField("properties")
    assert message.build.output.status == pb.FAILURE  # the rest of output stays
    large = pb.Build.FromString(zlib.decompress(message.build_large_fields))
    assert large.input.properties == struct({"recipe": "chromium", "n": 3})
    assert large.output.properties == struct({"got_revision": "abc"})
    assert [s.name for s in large.steps] == ["compile"]
    assert not large.HasField("builder")


def test_zstd_on_request():
    message = notification_format.builds_v2_pubsub(whole_build(), npb.ZSTD)
    assert message.compression == npb.ZSTD
    raw = zstandard.ZstdDecompressor().decompressobj().decompress(message.build_large_fields)
    assert [s.name for s in pb.Build.FromString(raw).steps] == ["compile"]


def test_large_fields_over_the_limit_are_dropped_and_flagged():
    build = whole_build()
    message = notification_format.builds_v2_pubsub(build, limit=10)
    assert message.build_large_fields_dropped
    assert message.build_large_fields == b""
    assert message.build.builder.builder == "linux-rel"


@pytest.mark.parametrize("wrapped", [False, True], ids=["builds-topic", "callback"])
def test_json_over_pubsubs_limit_drops_the_large_fields_instead_of_failing(wrapped):
    message = notification_format.builds_v2_pubsub(whole_build())
    if wrapped:
        message = notification_format.callback_message(message, b"u")
    whole = notification_format.to_pubsub_data(message)
    data = notification_format.to_pubsub_data(message, limit=len(whole) - 1)
    decoded = json.loads(data)
    notification = decoded["buildPubsub"] if wrapped else decoded
    assert notification["buildLargeFieldsDropped"] is True and "buildLargeFields" not in notification
    assert notification["build"]["builder"]["builder"] == "linux-rel"
    assert notification_format.to_pubsub_data(message) == data  # the cut is kept on the message


def test_large_fields_part_has_input_and_output_even_when_empty():
    small, large = notification_format.split_large_fields(pb.Build(id=1))
    assert large.HasField("input") and large.HasField("output")
    assert not small.steps


def test_the_whole_build_survives_pubsub_json():
    build = whole_build()
    message = notification_format.builds_v2_pubsub(build)
    data = notification_format.to_pubsub_data(message)
    parsed = json.loads(data)
    assert parsed["build"]["id"] == str(build.id)  # int64 as a string, as proto3 JSON says
    assert parsed["build"]["status"] == "FAILURE"
    assert "buildLargeFields" in parsed
    decoded = json_format.Parse(data, npb.BuildsV2PubSub())
    assert decoded == message


def test_a_build_nested_as_deep_as_go_decodes_is_written_and_reads_back():
    """Requested properties stay in the JSON (BuildInfra), so it nests 3,332 JSON objects deep."""
    build = whole_build()
    build.infra.buildbucket.requested_properties.MergeFromString(nested_bytes(3332))
    build.input.properties.MergeFromString(nested_bytes(3332))
    message = notification_format.callback_message(notification_format.builds_v2_pubsub(build), b"u")
    data = notification_format.to_pubsub_data(message)
    decoded = with_deep_stack(lambda: json_format.Parse(data, npb.PubSubCallBack(), max_recursion_depth=20_000))
    assert decoded == message
    assert large_fields(message.build_pubsub).input.properties == build.input.properties


def test_callback_wraps_the_notification_with_user_data():
    notification = notification_format.builds_v2_pubsub(whole_build())
    callback = notification_format.callback_message(notification, b"\x00opaque")
    decoded = json_format.Parse(notification_format.to_pubsub_data(callback), npb.PubSubCallBack())
    assert decoded.user_data == b"\x00opaque"
    assert decoded.build_pubsub == notification


@pytest.mark.parametrize(
    "change",
    [
        lambda build: build.infra.backend.task.details.update({"x": float("nan")}),
        lambda build: build.infra.backend.config.update({"x": float("-inf")}),
        lambda build: setattr(build.end_time, "seconds", 253402300800),
        lambda build: setattr(build.start_time, "nanos", 1_000_000_000),
    ],
    ids=["nan details", "infinite config", "year 10000", "nanos of a second"],
)
def test_a_value_proto3_json_has_no_form_for_is_a_notification_error(change):
    build = pb.Build(id=1)
    change(build)
    with pytest.raises(notification_format.NotificationError, match="no JSON notification can carry"):
        notification_format.to_pubsub_data(notification_format.builds_v2_pubsub(build))


@pytest.mark.parametrize(("status", "completed"), [(pb.SUCCESS, "true"), (pb.CANCELED, "true"), (pb.STARTED, "false")])
def test_attributes_are_upstreams(status, completed):
    build = whole_build()
    build.status = status
    assert notification_format.attributes(build) == {
        "project": "chromium",
        "bucket": "ci",
        "builder": "linux-rel",
        "is_completed": completed,
        "version": "v2",
    }
