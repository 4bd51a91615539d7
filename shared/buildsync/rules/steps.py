"""A build's steps as Buildbucket stores them, and how they end with the build.

docs/storage.md "Children of a Build" and docs/rules.md "When a build ends".
Buildbucket keeps the steps out of Build.proto, in the BuildSteps child entity:
its `steps` property is a serialized `buildbucket.v2.Build` holding only
`steps` (field 17), zlib-compressed (and `step_container_bytes_zipped` set)
when the plain bytes exceed 1,000,000. Pure functions over bytes and protos;
model.py reads and writes the entity. The container is decoded and re-encoded
in place, so step fields this package does not declare survive as unknown
fields.
"""

from __future__ import annotations

import zlib

from google.protobuf import timestamp_pb2
from google.protobuf.message import DecodeError

from buildsync import wire
from buildsync.errors import StoredDataError
from buildsync.proto import buildbucket_pb2 as pb
from buildsync.rules.status_rules import is_ended

# Buildbucket's BuildStepsMaxBytes (model/details.go): larger step containers
# are stored zlib-compressed.
MAX_PLAIN_BYTES = 1_000_000


class StepsFormatError(StoredDataError):
    """The stored steps are not a (possibly zlib-compressed) serialized Build."""


def decode_steps(data: bytes, zipped: bool) -> pb.Build:
    """The step container stored as `data`; raises StepsFormatError naming what is wrong."""
    if not isinstance(data, bytes):
        raise StepsFormatError(f"steps are stored as a {type(data).__name__}, not bytes")
    if zipped:
        try:
            data = wire.inflate_zlib(data)
        except DecodeError as error:
            raise StepsFormatError(f"steps are marked zipped but do not inflate: {error}") from error
    try:
        return wire.decode(pb.Build, data)
    except DecodeError as error:
        raise StepsFormatError(f"steps do not decode as a buildbucket.v2.Build: {error}") from error


def encode_steps(container: pb.Build) -> tuple[bytes, bool]:
    """The bytes to store for `container` and whether they are zlib-compressed."""
    data = container.SerializeToString()
    if len(data) <= MAX_PLAIN_BYTES:
        return data, False
    return zlib.compress(data), True


def end_incomplete_steps(container: pb.Build, end_time: timestamp_pb2.Timestamp) -> bool:
    """Ends every step that has not ended as Buildbucket does: CANCELED at `end_time`.

    Start time, summary and every other field stay as they are. Returns
    whether any step changed, so an untouched BuildSteps is not rewritten.
    """
    changed = False
    for step in container.steps:
        if not is_ended(step.status):
            step.status = pb.CANCELED
            step.end_time.CopyFrom(end_time)
            changed = True
    return changed
