"""ending/proto_json.py: json_format's text, byte for byte, written without recursion at any depth Go decodes."""

from __future__ import annotations

import threading
import time
import tracemalloc

import pytest
from buildsync import wire
from buildsync.ending import proto_json
from buildsync.proto import buildbucket_pb2 as pb
from buildsync.proto import notification_pb2 as npb
from google.protobuf import descriptor, json_format, struct_pb2
from hypothesis import given
from hypothesis import strategies as st

from tests.field_filler import Filler, reachable, runs_needed
from tests.harness import with_deep_stack
from tools.task_backend import length_prefix, nested_bytes

FD = descriptor.FieldDescriptor
ROOTS = (npb.BuildsV2PubSub, npb.PubSubCallBack)
WRITTEN_WELL_KNOWN = {
    "google.protobuf.Struct",
    "google.protobuf.Struct.FieldsEntry",
    "google.protobuf.Value",
    "google.protobuf.ListValue",
    "google.protobuf.Timestamp",
    "google.protobuf.Duration",
}


def nested_lists(json_levels: int) -> bytes:
    """A Value holding a list in a list ... `json_levels` deep ([[[...]]]): 2 × `json_levels` + 1 message levels."""
    data = b""
    for _ in range(json_levels):
        values = length_prefix(1, len(data)) + data  # ListValue.values
        data = length_prefix(6, len(values)) + values  # Value.list_value
    return data


# --- json_format's text ------------------------------------------------------------------------------------


@pytest.mark.parametrize("run", range(runs_needed(*(root.DESCRIPTOR for root in ROOTS))))
@pytest.mark.parametrize("root", ROOTS, ids=lambda root: root.DESCRIPTOR.name)
def test_a_notification_with_every_field_is_written_as_json_format_writes_it(root, run):
    message = Filler(run).fill(root())
    assert proto_json.to_json(message) == json_format.MessageToJson(message, indent=None)


def test_edge_values_are_written_as_json_format_writes_them():
    build = pb.Build(id=2**63 - 1, number=-(2**31), status=12345, summary_markdown='é\u2028"\\\x00\x7f😀')
    build.output.properties["n"] = -0.0
    build.output.properties["big"] = 1e300
    build.output.properties["empty"] = struct_pb2.Struct()
    build.output.properties["list"] = [None, True, "", 0.5, []]
    build.infra.buildbucket.hostname = ""  # an empty message that is present
    build.infra.backend.task.id.id = "t"
    build.tags.add()
    message = npb.PubSubCallBack(user_data=bytes(range(256)))
    message.build_pubsub.build.CopyFrom(build)
    assert proto_json.to_json(message) == json_format.MessageToJson(message, indent=None)


json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=30,
)


@given(st.dictionaries(st.text(), json_values, max_size=5))
def test_any_struct_is_written_as_json_format_writes_it(value):
    build = pb.Build()
    build.infra.backend.task.details.update(value)
    assert proto_json.to_json(build) == json_format.MessageToJson(build, indent=None)


@pytest.mark.parametrize(
    ("message_type", "data", "levels"),
    [(struct_pb2.Struct, nested_bytes(3333), 10_000), (struct_pb2.Value, nested_lists(4999), 9_999)],
    ids=["objects 3,333 deep", "lists 4,999 deep"],
)
def test_a_struct_as_deep_as_go_decodes_is_written_as_json_format_writes_it_with_stack_enough(
    message_type, data, levels, capsys
):
    value = wire.decode(message_type, data)
    assert wire.nesting_depth(message_type.DESCRIPTOR, data, 20_000) == levels
    tracemalloc.start()
    started = time.perf_counter()
    written = proto_json.to_json(value)
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    with capsys.disabled():
        name = message_type.DESCRIPTOR.name
        print(f"\nFIGURE proto_json {name} {levels:,} levels: {seconds * 1000:.0f} ms, {peak / 1e6:.1f} MB peak")
    assert written == with_deep_stack(lambda: json_format.MessageToJson(value, indent=None))


def test_a_deep_message_is_written_in_a_thread_with_a_small_stack():
    value = wire.decode(struct_pb2.Struct, nested_bytes(3333))
    written: list[str] = []
    threading.stack_size(256 << 10)  # what nothing recursive could use for 10,000 levels
    try:
        worker = threading.Thread(target=lambda: written.append(proto_json.to_json(value)))
        worker.start()
    finally:
        threading.stack_size(0)
    worker.join()
    assert written == ['{"a": ' * 3333 + "{}" + "}" * 3333]


# --- what JSON has no form for -----------------------------------------------------------------------------


@pytest.mark.parametrize("number", [float("nan"), float("inf"), float("-inf")])
def test_a_number_json_cannot_hold_is_refused_as_json_format_refuses_it(number):
    build = pb.Build()
    build.output.properties["x"] = number
    with pytest.raises(proto_json.JsonWriteError, match="cannot hold"):
        proto_json.to_json(build)
    with pytest.raises(json_format.SerializeToJsonError):
        json_format.MessageToJson(build)


def test_a_time_out_of_range_is_refused_as_json_format_refuses_it():
    build = pb.Build()
    build.end_time.seconds = 2**40
    with pytest.raises(proto_json.JsonWriteError, match="google.protobuf.Timestamp"):
        proto_json.to_json(build)
    with pytest.raises(json_format.SerializeToJsonError):
        json_format.MessageToJson(build)


# --- what a notification holds -----------------------------------------------------------------------------


def test_a_notification_holds_only_what_the_writer_writes():
    """No other well-known type (Any, wrappers, FieldMask), float or double but a Value's, extension, closed enum."""
    for root in ROOTS:
        for message in reachable(root.DESCRIPTOR):
            if message.file.name.startswith("google/protobuf/"):
                assert message.full_name in WRITTEN_WELL_KNOWN
            assert not message.extension_ranges, message.full_name
            for field in message.fields:
                if field.cpp_type in (FD.CPPTYPE_FLOAT, FD.CPPTYPE_DOUBLE):
                    assert (message.full_name, field.name) == ("google.protobuf.Value", "number_value")
                if field.enum_type is not None:
                    assert not field.enum_type.is_closed, field.full_name
