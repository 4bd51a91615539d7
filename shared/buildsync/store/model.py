"""The Datastore entities Buildbucket writes, as far as the sync touches them.

A sync reads an entity, changes the properties it owns and writes the same
entity back, so every property and proto field it does not know survives (the
client keeps unknown properties, their index flags and meanings; protobuf keeps
unknown fields). Saving a Build recomputes the properties derived from its
proto, in one place: `save_build`.
"""

from __future__ import annotations

import datetime
from typing import Any, TypeVar

from google.cloud import datastore
from google.cloud.datastore_v1.types import entity as entity_pb2
from google.protobuf.message import DecodeError, Message

from buildsync import wire
from buildsync.errors import StoredDataError
from buildsync.proto import buildbucket_pb2 as pb
from buildsync.proto import project_config_pb2 as cpb
from buildsync.rules import legacy, steps, sync_time
from buildsync.rules.custom_metrics import BuilderMetricNames, CustomMetric
from buildsync.rules.status_rules import is_ended
from buildsync.rules.sync_time import DEFAULT_SYNC_INTERVAL
from buildsync.store import go_schema

Proto = TypeVar("Proto", bound=Message)

BUILD_KIND = "Build"
BUILD_INFRA_KIND = "BuildInfra"
BUILD_STATUS_KIND = "BuildStatus"
BUILD_STEPS_KIND = "BuildSteps"

# Build properties read or written by name in more than one module (docs/storage.md).
NEXT_SYNC_TIME = "next_backend_sync_time"  # the sync-time key (rules/sync_time.py)
BACKEND_TARGET = "backend_target"
INCOMPLETE = "incomplete"
STATUS_V2 = "status_v2"
PROJECT = "project"
CALLBACK_TOPIC = "pubsub_callback.topic"  # the pubsub_callback struct, flattened with dots
CALLBACK_USER_DATA = "pubsub_callback.user_data"


class EntityDecodeError(StoredDataError):
    """A stored entity lacks a property the sync reads, or holds one it cannot decode.

    The sync fails that build alone; any other error while syncing it is a bug.
    """


# A Build's custom metrics: a list of {base, metric} stored flattened into two
# parallel lists (docs/storage.md "Custom builder metrics"). The typo is Buildbucket's.
CUSTOM_METRIC_BASES = "custome_metrics.base"
CUSTOM_METRIC_DEFINITIONS = "custome_metrics.metric"

# The metric names a build counts towards, one indexed list per base; Buildbucket
# leaves a list that is empty out of the entity.
BUILDER_METRIC_NAMES = {
    "count": "custom_builder_count_metrics",
    "max_age": "custom_builder_max_age_metrics",
    "consecutive_failures": "custom_builder_consecutive_failures_metrics",
}

# luci/gae's own proto format: one header byte, then the message as is, or
# zstd-compressed (which it does above 16 KiB).
_GAE_PROTO_PLAIN = (1 << 3) | 4
_GAE_PROTO_ZSTD = (2 << 3) | 4

# docs/platform.md "Datastore": a lookup takes at most 1000 keys.
MAX_LOOKUP_KEYS = 1000

_RAW_KEY = entity_pb2.Key.pb()


class Key(datastore.Key):
    """A datastore.Key that encodes itself straight into the raw protobuf.

    The client's own `to_protobuf` deep-copies the path and sets every field
    through proto-plus wrappers; every key a sync looks up or writes goes
    through it, and it cost a quarter of the sync's CPU (README "Speed and
    robustness"). This builds the same message and hands it back wrapped, as
    the client's callers expect; tests/test_model.py holds it to the same bytes.
    The parts of the last path element are read from `flat_path` for the same
    reason: the client's getters deep-copy the whole path each time.
    """

    @property
    def kind(self) -> str:
        return self.flat_path[-2 if len(self.flat_path) % 2 == 0 else -1]

    @property
    def id(self) -> int | None:
        last = self.flat_path[-1] if len(self.flat_path) % 2 == 0 else None
        return last if isinstance(last, int) else None

    @property
    def name(self) -> str | None:
        last = self.flat_path[-1] if len(self.flat_path) % 2 == 0 else None
        return last if isinstance(last, str) else None

    def to_protobuf(self) -> entity_pb2.Key:
        raw = _RAW_KEY()
        raw.partition_id.project_id = self.project
        if self.database:
            raw.partition_id.database_id = self.database
        if self.namespace:
            raw.partition_id.namespace_id = self.namespace
        flat_path = self.flat_path
        for index in range(0, len(flat_path), 2):
            element = raw.path.add()
            element.kind = flat_path[index]
            if index + 1 < len(flat_path):  # else a partial key: kind only
                id_or_name = flat_path[index + 1]
                if isinstance(id_or_name, str):
                    element.name = id_or_name
                else:
                    element.id = id_or_name
        return entity_pb2.Key.wrap(raw)


def key(client: datastore.Client, *path: str | int) -> Key:
    """A key of `client`'s project, namespace and database, as `client.key` makes, that encodes fast."""
    return Key(*path, project=client.project, namespace=client.namespace, database=client.database)


def lookup(client: datastore.Client, keys: list[datastore.Key]) -> dict[tuple, datastore.Entity]:
    """The entities of `keys` that exist, by flat path, in lookups of at most MAX_LOOKUP_KEYS.

    Each entity carries its key from `keys`, so writing it back encodes that
    key fast (`Key`). Inside a transaction, the client reads in it.
    """
    found = {}
    by_path = {key.flat_path: key for key in keys}
    for start in range(0, len(keys), MAX_LOOKUP_KEYS):
        for entity in client.get_multi(keys[start : start + MAX_LOOKUP_KEYS]):
            entity.key = by_path.get(entity.key.flat_path, entity.key)
            found[entity.key.flat_path] = entity
    return found


def build_key(client: datastore.Client, build_id: int) -> Key:
    return key(client, BUILD_KIND, build_id)


def child_key(client: datastore.Client, build_id: int, kind: str) -> Key:
    """The key of a Build's child entity of `kind`: Buildbucket gives each the id 1."""
    return key(client, BUILD_KIND, build_id, kind, 1)


def infra_key(client: datastore.Client, build_id: int) -> Key:
    return child_key(client, build_id, BUILD_INFRA_KIND)


def status_key(client: datastore.Client, build_id: int) -> Key:
    return child_key(client, build_id, BUILD_STATUS_KIND)


def steps_key(client: datastore.Client, build_id: int) -> Key:
    return child_key(client, build_id, BUILD_STEPS_KIND)


def build_id_of(key: datastore.Key) -> int:
    """The build id of a Build key or of one of its children."""
    return key.flat_path[1]


def read_build(entity: datastore.Entity) -> pb.Build:
    return _decode(entity, "proto", pb.Build)


def read_infra(entity: datastore.Entity) -> pb.BuildInfra:
    return _decode(entity, "infra", pb.BuildInfra)


def next_sync_key_of(entity: datastore.Entity) -> str:
    """The stored `next_backend_sync_time`, or "" when the build has none."""
    return _stored(entity, NEXT_SYNC_TIME, str, optional=True) or ""


def write_infra(entity: datastore.Entity, infra: pb.BuildInfra) -> None:
    entity["infra"] = infra.SerializeToString()
    go_schema.complete(entity, go_schema.BUILD_INFRA, ("infra",))


def read_steps(entity: datastore.Entity) -> pb.Build:
    """The step container of a BuildSteps entity; raises steps.StepsFormatError."""
    return steps.decode_steps(entity.get("steps") or b"", bool(entity.get("step_container_bytes_zipped")))


def write_steps(entity: datastore.Entity, container: pb.Build) -> None:
    """Stores `container` in Buildbucket's format: plain, or zlib above a million bytes."""
    entity["steps"], entity["step_container_bytes_zipped"] = steps.encode_steps(container)
    go_schema.complete(entity, go_schema.BUILD_STEPS, ("steps", "step_container_bytes_zipped"))


def sync_interval_of(entity: datastore.Entity) -> datetime.timedelta:
    nanos = _stored(entity, "backend_sync_interval", int, optional=True) or 0
    return datetime.timedelta(microseconds=nanos // 1000) if nanos > 0 else DEFAULT_SYNC_INTERVAL


def save_build(entity: datastore.Entity, build: pb.Build, status_changed: bool, shards: int | None = None) -> None:
    """Writes `build` into `entity` with the properties Buildbucket's save derives from it.

    As Buildbucket's save does (model/build.go Save): the properties computed
    from the proto, the legacy v1 properties following the status, no lease
    on an ended build (legacy.py), and the default `backend_sync_interval` on
    a backend build whose interval is 0 or absent. `next_backend_sync_time`
    only ever moves forward: a build someone else pushed further out is not
    pulled back. Given the backend's `shards`, a key in a shard at or above it
    moves into one below (`SyncTimeKey.settled`). Then the entity gets the
    rest of the shape a Go save leaves, with Go's index flags on what is
    written (go_schema.complete).
    """
    written = {
        "proto": build.SerializeToString(),
        STATUS_V2: build.status,
        INCOMPLETE: not is_ended(build.status),
        **go_schema.derived_from_proto(build),
        **legacy.legacy_properties(build.status, build.status_details),
    }
    if is_ended(build.status):
        written.update(legacy.cleared_lease())
    if status_changed:
        written["status_changed_time"] = go_schema.go_time(build.update_time)
    for name in ("parameters", "result_details"):  # v1 blobs: Go writes null when they are empty
        if not entity.get(name):
            written[name] = None
    if entity.get(BACKEND_TARGET) and not entity.get("backend_sync_interval"):
        written["backend_sync_interval"] = sync_time.DEFAULT_SYNC_INTERVAL_NANOS
    entity.update(written)
    current = entity.get(NEXT_SYNC_TIME)
    if current and build.HasField("update_time"):
        key = sync_time.parse_key(current, _stored(entity, BACKEND_TARGET, str))
        update_time = build.update_time.ToDatetime(datetime.timezone.utc)
        candidate = sync_time.next_sync_unix(update_time, sync_interval_of(entity))
        settled = key.settled(shards) if shards is not None else key
        written_key = settled.with_time(max(candidate, key.unix_seconds))
        if written_key != key:
            entity[NEXT_SYNC_TIME] = written[NEXT_SYNC_TIME] = str(written_key)
    go_schema.complete(entity, go_schema.BUILD, written)


def read_custom_metrics(entity: datastore.Entity) -> tuple[CustomMetric, ...]:
    """The custom metrics a Build may report to; raises EntityDecodeError.

    The two lists pair up by position, as luci/gae loads them; a definition
    stored as null, or missing from a shorter list, counts as an empty one.
    """
    bases = listed(entity, CUSTOM_METRIC_BASES)
    definitions = listed(entity, CUSTOM_METRIC_DEFINITIONS)
    metrics = []
    for index, base in enumerate(bases):
        if not isinstance(base, int) or isinstance(base, bool):
            raise EntityDecodeError(f"Build property {CUSTOM_METRIC_BASES!r} holds a {type(base).__name__}, not int")
        stored = definitions[index] if index < len(definitions) else None
        definition = _gae_proto(stored, cpb.CustomMetricDefinition) if stored is not None else None
        definition = definition or cpb.CustomMetricDefinition()
        metrics.append(CustomMetric(base, definition.name, tuple(definition.predicates)))
    return tuple(metrics)


def builder_metric_names(entity: datastore.Entity) -> BuilderMetricNames:
    """The builder metric names stored on a Build (a lone string counts as a list of one)."""
    return BuilderMetricNames(
        **{field: tuple(str(name) for name in listed(entity, prop)) for field, prop in BUILDER_METRIC_NAMES.items()}
    )


def write_builder_metric_names(entity: datastore.Entity, names: BuilderMetricNames) -> None:
    """Stores the lists that changed, as Buildbucket does: a list of strings, or no property when empty."""
    current = builder_metric_names(entity)
    for field, prop in BUILDER_METRIC_NAMES.items():
        wanted = getattr(names, field)
        if wanted == getattr(current, field):
            continue
        if wanted:
            entity[prop] = list(wanted)
        else:
            del entity[prop]


def listed(entity: datastore.Entity, name: str) -> list:
    """A property Buildbucket stores as a list: absent is empty, a lone value is a list of one."""
    value = entity.get(name)
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _gae_proto(data: Any, message: type[Proto]) -> Proto:
    """A proto stored in luci/gae's format (header byte, maybe zstd); raises EntityDecodeError."""
    what = message.DESCRIPTOR.name
    if not isinstance(data, bytes) or not data or data[0] not in (_GAE_PROTO_PLAIN, _GAE_PROTO_ZSTD):
        raise EntityDecodeError(f"a stored {what} is not in luci/gae's proto format")
    try:
        body = data[1:]
        if data[0] == _GAE_PROTO_ZSTD:
            # compression.py is above the store; Go's encoder may leave the size out, so stream.
            body = wire.inflate_zstd(body)
        return wire.decode(message, body)
    except DecodeError as error:
        raise EntityDecodeError(f"a stored {what} does not decode: {error}") from error


def decode_proto(message: type[Proto], data: bytes, what: str) -> Proto:
    """Stored proto bytes as `message`: the one decode path, for the sync and the build reader alike.

    Raises EntityDecodeError, `what` saying what does not decode (bytes
    stored as another type do not either).
    """
    if not isinstance(data, (bytes, bytearray)):
        raise EntityDecodeError(f"{what}: a {type(data).__name__}, not bytes")
    try:
        return wire.decode(message, data)
    except DecodeError as error:
        raise EntityDecodeError(f"{what}: {error}") from error


def _decode(entity: datastore.Entity, name: str, message: type[Proto]) -> Proto:
    data = _stored(entity, name, bytes)
    return decode_proto(message, data, f"{entity.kind} property {name!r} is not a {message.DESCRIPTOR.name}")


def _stored(entity: datastore.Entity, name: str, expected: type, optional: bool = False) -> Any:
    """Property `name` of `entity`, checked to be `expected` (or absent when `optional`)."""
    value = entity.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, expected) or isinstance(value, bool):
        what = "missing" if name not in entity else f"a {type(value).__name__}"
        raise EntityDecodeError(f"{entity.kind} property {name!r} is {what}, not {expected.__name__}")
    return value
