"""Buildbucket's build notification, made from a whole build (pure; no I/O).

The message is `BuildsV2PubSub` (docs/rules.md "Notifications"): the
build without its large fields (input and output properties, steps), which
travel beside it as a serialized Build, compressed as the topic asks, or not
at all when even compressed they are too big. A build's own callback topic
gets the same message wrapped in `PubSubCallBack`. Pub/Sub carries the proto3
JSON of either, with attributes a subscription can filter on.
"""

from __future__ import annotations

from buildsync.ending import compression, proto_json
from buildsync.errors import PermanentError
from buildsync.proto import buildbucket_pb2 as pb
from buildsync.proto import notification_pb2 as npb
from buildsync.rules.status_rules import is_ended

# Compressed large fields over this many bytes are dropped, as upstream does,
# to keep the message under Pub/Sub's 10 MB.
LARGE_FIELDS_LIMIT = 8_500_000

# Pub/Sub refuses message data over 10 MB (docs/platform.md "Pub/Sub"); in
# JSON the large fields are base64, a third bigger than their bytes.
PUBSUB_DATA_LIMIT = 10_000_000


def split_large_fields(build: pb.Build) -> tuple[pb.Build, pb.Build]:
    """(the build without its large fields, a Build holding only them)."""
    small = pb.Build()
    small.CopyFrom(build)
    large = pb.Build()
    # Both parts always present, as upstream builds them, so the bytes match.
    large.input.SetInParent()
    large.output.SetInParent()
    if build.input.HasField("properties"):
        large.input.properties.CopyFrom(build.input.properties)
    if build.output.HasField("properties"):
        large.output.properties.CopyFrom(build.output.properties)
    large.steps.extend(build.steps)
    del small.steps[:]
    if small.HasField("input"):
        small.input.ClearField("properties")
    if small.HasField("output"):
        small.output.ClearField("properties")
    return small, large


def builds_v2_pubsub(
    build: pb.Build, compression_kind: int = npb.ZLIB, limit: int = LARGE_FIELDS_LIMIT
) -> npb.BuildsV2PubSub:
    """The notification of `build`, its large fields compressed with `compression_kind`."""
    small, large = split_large_fields(build)
    packed = compression.compress(large.SerializeToString(), compression_kind)
    message = npb.BuildsV2PubSub(build=small, compression=compression_kind)
    if len(packed) > limit:
        message.build_large_fields_dropped = True
    else:
        message.build_large_fields = packed
    return message


def callback_message(notification: npb.BuildsV2PubSub, user_data: bytes) -> npb.PubSubCallBack:
    """What a build's callback topic gets: the notification and the creator's `user_data`."""
    return npb.PubSubCallBack(build_pubsub=notification, user_data=user_data)


def to_pubsub_data(message: npb.BuildsV2PubSub | npb.PubSubCallBack, limit: int = PUBSUB_DATA_LIMIT) -> bytes:
    """The message as Pub/Sub data: proto3 JSON, field names in lowerCamelCase.

    When the JSON would be over `limit` (large fields just under their own
    limit grow a third in base64), the large fields are dropped and flagged,
    so the message is still published rather than refused. Any depth Go
    decodes is written (proto_json.py). Raises NotificationError for a value
    proto3 JSON has no form for, which Go's protojson refuses too.
    """
    data = _json(message)
    if len(data) <= limit:
        return data
    notification = message.build_pubsub if isinstance(message, npb.PubSubCallBack) else message
    notification.build_large_fields = b""
    notification.build_large_fields_dropped = True
    return _json(message)


class NotificationError(PermanentError):
    """A build whose notification cannot be written; writing it again would fail the same way."""


def _json(message: npb.BuildsV2PubSub | npb.PubSubCallBack) -> bytes:
    try:
        return proto_json.to_json(message).encode()
    except proto_json.JsonWriteError as error:
        # Go's protojson refuses the same values.
        raise NotificationError(f"the build holds a value no JSON notification can carry: {error}") from error


def attributes(build: pb.Build) -> dict[str, str]:
    """The attributes upstream sets, so existing subscription filters keep working."""
    return {
        "project": build.builder.project,
        "bucket": build.builder.bucket,
        "builder": build.builder.builder,
        "is_completed": "true" if is_ended(build.status) else "false",
        "version": "v2",
    }
