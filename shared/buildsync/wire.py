"""Decoding protobuf bytes that someone else wrote, as deep as Go decodes them and no deeper.

Backends and Buildbucket are Go: protobuf-go takes messages nested up to
10,000 levels (protowire's default RecursionLimit), and Python's upb decoder
stops at 100. A task whose `details` hold a JSON object about 35 levels deep
is three message levels a JSON level (Struct, map entry, Value), so Python
alone would refuse it, and with it a whole FetchTasks answer or a build's
BuildInfra on every run. So the process lifts upb's limit (to its own
ceiling of 65,535, set once at import, since merging deep messages
re-parses them too) and this module keeps what it is handed at Go's limit:

- `decode` reads bytes as a message; bytes long enough to nest deeper than
  MAX_NESTING are first walked without recursion (`nesting_depth`), so that
  nothing deeper than Go takes ever reaches the recursive C decoder, whose
  stack a nesting of tens of thousands of levels would overflow;
- `merge` does the same into an existing message (a repeated field's new item);
- `inflate_zlib` and `inflate_zstd` decompress what was stored compressed,
  to at most MAX_INFLATED_BYTES: a megabyte entity of zeros inflates a
  thousandfold, and such a bomb must fail its build, not the process.

Everything buildsync decodes that it did not write itself goes through here:
backend answers, stored entities, status details.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import TypeVar

import zstandard
from google.protobuf import descriptor
from google.protobuf.internal import api_implementation
from google.protobuf.message import DecodeError, Message

# protobuf-go's default recursion limit: Buildbucket and the backends take this deep.
MAX_NESTING = 10_000

# Stored compressed bytes never inflate past this: 64 times Datastore's largest
# entity, far above any steps or properties Buildbucket keeps, far below a
# function's memory.
MAX_INFLATED_BYTES = 64 * 1024 * 1024

# Each level of nesting costs at least two bytes (a tag and a length, or a
# group's start and end tags), so shorter bytes cannot nest deeper than
# MAX_NESTING and need no walk. The walk costs about a microsecond a field:
# a 50 KB task of a thousand small details fields, a few milliseconds.
WALK_FROM_BYTES = 2 * MAX_NESTING

if api_implementation.Type() == "upb":
    from google._upb import _message as _upb

    _upb.SetAllowOversizeProtos(True)  # up to 65,535 levels; MAX_NESTING is enforced here instead
else:  # pragma: no cover - the pure-Python decoder, should a deployment run it
    from google.protobuf.internal import decoder as _python_decoder

    _python_decoder.SetRecursionLimit(MAX_NESTING)

MessageT = TypeVar("MessageT", bound=Message)

_MESSAGE = descriptor.FieldDescriptor.TYPE_MESSAGE
_VARINT, _FIXED64, _LENGTH, _START_GROUP, _END_GROUP, _FIXED32 = range(6)


def decode(message_type: type[MessageT], data: bytes | bytearray) -> MessageT:
    """`data` as a `message_type`; raises DecodeError, also when it nests deeper than MAX_NESTING."""
    message = message_type()
    merge(message, data)
    return message


def merge(message: Message, data: bytes | bytearray) -> None:
    """Merges `data` into `message` (see `decode`); raises DecodeError, leaving `message` undefined."""
    if len(data) >= WALK_FROM_BYTES:
        depth = nesting_depth(message.DESCRIPTOR, data, MAX_NESTING)
        if depth > MAX_NESTING:
            raise DecodeError(
                f"{message.DESCRIPTOR.full_name} nests messages over {MAX_NESTING} levels deep, "
                "deeper than Go's decoder (and so Buildbucket) takes"
            )
    message.MergeFromString(data)


def inflate_zlib(data: bytes) -> bytes:
    """`data` decompressed (zlib); raises DecodeError when it is not a whole zlib stream or inflates too far."""
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, MAX_INFLATED_BYTES + 1)
    except zlib.error as error:
        raise DecodeError(f"not a zlib stream: {error}") from error
    if len(out) > MAX_INFLATED_BYTES or inflater.unconsumed_tail:
        raise DecodeError(f"inflates past {MAX_INFLATED_BYTES} bytes")
    if not inflater.eof:
        raise DecodeError("not a zlib stream: truncated")
    return out


def inflate_zstd(data: bytes) -> bytes:
    """`data`'s first zstd frame decompressed (its size may be left out, as Go's encoder does).

    Raises DecodeError when it is not a zstd stream or inflates too far.
    """
    out = bytearray()
    try:
        reader = zstandard.ZstdDecompressor().stream_reader(data)
        while chunk := reader.read(1 << 20):
            out += chunk
            if len(out) > MAX_INFLATED_BYTES:
                raise DecodeError(f"inflates past {MAX_INFLATED_BYTES} bytes")
    except zstandard.ZstdError as error:
        raise DecodeError(f"not a zstd stream: {error}") from error
    return bytes(out)


def nesting_depth(message: descriptor.Descriptor, data: bytes | bytearray, stop_after: int) -> int:
    """How many levels of messages `data` nests, read as `message` (1: no submessage); stops past `stop_after`.

    Iterative, so any depth is safe to measure. Fields the descriptor does
    not know are opaque, as the decoder keeps them; groups count as levels.
    Raises DecodeError when the wire format is broken.
    """
    # Each frame: [descriptor or None (a group), end of its bytes].
    frames: list[list] = [[message, len(data)]]
    deepest, position = 1, 0
    while frames:
        frame = frames[-1]
        if position == frame[1] and frame[0] is not None:
            frames.pop()
            continue
        if position >= frame[1]:
            raise DecodeError("truncated message")
        tag, position = _varint(data, position)
        kind, number = tag & 7, tag >> 3
        if kind == _LENGTH:
            length, position = _varint(data, position)
            start, position = position, position + length
            field = frame[0].fields_by_number.get(number) if frame[0] is not None else None
            if field is not None and field.type == _MESSAGE and position <= frame[1]:
                frames.append([field.message_type, position])
                position = start
        elif kind == _START_GROUP:
            frames.append([None, frame[1]])
        elif kind == _END_GROUP:
            if frame[0] is not None:
                raise DecodeError("end of a group that was not started")
            frames.pop()
        else:
            position = _skip_scalar(data, position, kind)
        deepest = max(deepest, len(frames))
        if deepest > stop_after:
            return deepest
    return deepest


def length_delimited(data: bytes | bytearray) -> Iterator[tuple[int, memoryview]]:
    """(field number, bytes) of each length-delimited field at the top level of `data`, in order.

    Other fields are skipped. For reading a repeated field one item at a
    time, so that an item that does not decode fails alone. Raises
    DecodeError when the top level is broken.
    """
    view, position = memoryview(data), 0
    while position < len(data):
        tag, position = _varint(data, position)
        kind, number = tag & 7, tag >> 3
        if kind == _LENGTH:
            length, position = _varint(data, position)
            if position + length > len(data):
                raise DecodeError("truncated message")
            yield number, view[position : position + length]
            position += length
        elif kind in (_START_GROUP, _END_GROUP):
            raise DecodeError(f"group field {number} at the top level")
        else:
            position = _skip_scalar(data, position, kind)


def _skip_scalar(data: bytes | bytearray, position: int, kind: int) -> int:
    if kind == _VARINT:
        return _varint(data, position)[1]
    if kind in (_FIXED64, _FIXED32):
        end = position + (8 if kind == _FIXED64 else 4)
        if end > len(data):
            raise DecodeError("truncated message")
        return end
    raise DecodeError(f"invalid wire type {kind}")


def _varint(data: bytes | bytearray, position: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if position >= len(data) or shift > 63:
            raise DecodeError("truncated or overlong varint")
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, position
        shift += 7
