"""Decoding others' protobuf bytes as deep as Go does: the walk that measures nesting, and decode's limit."""

from __future__ import annotations

import threading
import zlib

import pytest
import zstandard
from buildsync import wire
from buildsync.proto import buildbucket_pb2 as pb
from google.protobuf import struct_pb2
from google.protobuf.message import DecodeError

from tools.task_backend import length_prefix, nested_bytes, nested_details


@pytest.mark.parametrize(("json_levels", "depth"), [(0, 1), (1, 4), (45, 136), (3333, 10_000)])
def test_the_walk_counts_every_message_level_map_entries_included(json_levels, depth):
    assert wire.nesting_depth(struct_pb2.Struct.DESCRIPTOR, nested_bytes(json_levels), 20_000) == depth


def test_the_walk_stops_once_past_its_bound():
    assert wire.nesting_depth(struct_pb2.Struct.DESCRIPTOR, nested_bytes(50_000), 100) == 101


def test_fields_the_descriptor_does_not_know_and_strings_are_opaque():
    task = pb.Task(summary_markdown=nested_bytes(10).hex())
    unknown = nested_bytes(10)
    data = task.SerializeToString() + length_prefix(15, len(unknown)) + unknown  # an unknown field holding "messages"
    assert wire.nesting_depth(pb.Task.DESCRIPTOR, data, 100) == 1


def test_go_deep_nesting_decodes_and_one_level_more_is_refused():
    at_limit = wire.decode(struct_pb2.Struct, nested_bytes(3333))
    assert at_limit.ByteSize() == len(nested_bytes(3333))
    with pytest.raises(DecodeError, match="nests messages over 10000 levels deep"):
        wire.decode(struct_pb2.Struct, nested_bytes(3334))


def test_nesting_deep_enough_to_overflow_the_decoders_stack_is_refused_in_any_thread():
    """60,000 levels would crash upb's recursive decoder (8 MiB stack); the walk refuses it first."""
    caught: list[BaseException] = []

    def decode() -> None:
        try:
            wire.decode(struct_pb2.Struct, nested_bytes(20_000))
        except DecodeError as error:
            caught.append(error)

    worker = threading.Thread(target=decode)
    worker.start()
    worker.join()
    assert len(caught) == 1


def test_a_message_nested_deeper_than_python_alone_takes_merges_and_serializes():
    task = pb.Task()
    task.details.CopyFrom(nested_details(45))
    stored = pb.Task(update_id=1)
    stored.MergeFrom(task)  # a merge re-parses: the process's lifted limit holds there too
    assert wire.decode(pb.Task, stored.SerializeToString()) == stored


@pytest.mark.parametrize(
    "data",
    [
        b"\x0a\x05ab",
        b"\x0b\x0a\x00",
        b"\x0c",
        b"\x08\x80",
        b"\x0f",
        b"\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",
    ],
    ids=["truncated", "unended group", "unstarted group end", "truncated varint", "wire type 7", "overlong varint"],
)
def test_broken_wire_format_is_a_decode_error(data):
    with pytest.raises(DecodeError):
        wire.nesting_depth(pb.FetchTasksResponse.DESCRIPTOR, data, 100)


def test_top_level_fields_come_one_at_a_time_in_order():
    response = pb.FetchTasksResponse()
    for name in ("a", "b"):
        response.responses.add().task.id.id = name
    items = [(number, bytes(item)) for number, item in wire.length_delimited(response.SerializeToString())]
    assert [(n, pb.FetchTasksResponse.Response.FromString(i).task.id.id) for n, i in items] == [(1, "a"), (1, "b")]


def test_stored_compressed_bytes_inflate_up_to_the_cap_and_a_bomb_is_a_decode_error(monkeypatch):
    monkeypatch.setattr(wire, "MAX_INFLATED_BYTES", 1000)
    assert wire.inflate_zlib(zlib.compress(b"x" * 1000)) == b"x" * 1000
    assert wire.inflate_zstd(zstandard.ZstdCompressor(write_content_size=False).compress(b"x" * 1000)) == b"x" * 1000
    with pytest.raises(DecodeError, match="inflates past 1000 bytes"):
        wire.inflate_zlib(zlib.compress(b"x" * 1001))
    with pytest.raises(DecodeError, match="inflates past 1000 bytes"):
        wire.inflate_zstd(zstandard.ZstdCompressor().compress(b"x" * 5000))


@pytest.mark.parametrize(
    ("inflate", "data"),
    [
        (wire.inflate_zlib, b"garbage"),
        (wire.inflate_zlib, zlib.compress(b"x" * 100)[:8]),  # ends early
        (wire.inflate_zstd, b"garbage"),
    ],
    ids=["zlib garbage", "zlib truncated", "zstd garbage"],
)
def test_bytes_that_are_no_such_stream_are_a_decode_error(inflate, data):
    with pytest.raises(DecodeError):
        inflate(data)
