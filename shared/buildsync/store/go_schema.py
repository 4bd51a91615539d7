"""What Buildbucket's Go save writes for each entity the sync writes: every property, its zero value, its index flag.

luci/gae saves every field of the Go struct on every save, whatever was stored
before: a scalar as its value, or as Go's zero value when it holds none; a
slice or a proto only when it holds something; each with the struct tag's
index flag (docs/storage.md "What a save writes"). So a Build that Buildbucket
has saved once has every property of its struct. buildsync writes the
properties it owns itself; `complete` then gives the entity the rest of the
shape a Go save leaves: an absent scalar gets Go's zero value, an empty list is
removed, and every property written in this save gets Go's index flag. A
property outside the struct, or another writer's property stored with another
index flag, is kept as it is, where Go would drop or re-flag it (the residue in
docs/storage.md).
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterable, Mapping

from google.cloud import datastore
from google.protobuf import timestamp_pb2

from buildsync.errors import StoredDataError
from buildsync.proto import buildbucket_pb2 as pb
from buildsync.rules import legacy

# A property luci/gae leaves out of the entity when its field holds nothing:
# an empty slice, a nil proto.
OMITTED = object()


@dataclasses.dataclass(frozen=True)
class GoProperty:
    """One field of a Go entity struct, as luci/gae stores it."""

    indexed: bool
    # What the save writes when the field holds Go's zero value, as the
    # Datastore client returns it; OMITTED: no property at all.
    zero: object = OMITTED


_EMPTY_TIME = legacy.ZERO_TIME

# model/build.go Build, with model/legacy.go LegacyProperties and LeaseProperties
# embedded and model/unused.go UnusedProperties (whose `pubsub_callback` blob
# Build.Save deletes again). Build.Save writes `parameters` and `result_details`
# as null when they are empty; the nested PubSubCallback struct is flattened
# with dots; the custom metrics slice of structs into two parallel lists.
BUILD: Mapping[str, GoProperty] = {
    "is_leased": GoProperty(True, False),
    "leasee": GoProperty(True, b""),
    "lease_expiration_date": GoProperty(True, _EMPTY_TIME),
    "lease_key": GoProperty(True, 0),
    "never_leased": GoProperty(True, False),
    "cancelation_reason": GoProperty(True, 0),
    "failure_reason": GoProperty(True, 0),
    "parameters": GoProperty(True, None),
    "result": GoProperty(True, 0),
    "result_details": GoProperty(True, None),
    "retry_of": GoProperty(True, 0),
    "status": GoProperty(True, 0),
    "url": GoProperty(False, ""),
    "proto": GoProperty(False),
    "project": GoProperty(True, ""),
    "bucket_id": GoProperty(True, ""),
    "builder_id": GoProperty(True, ""),
    "canary": GoProperty(True, False),
    "created_by": GoProperty(True, ""),
    "create_time": GoProperty(True, _EMPTY_TIME),
    "experimental": GoProperty(True, False),
    "experiments": GoProperty(True),
    "incomplete": GoProperty(True, False),
    "is_luci": GoProperty(True, False),
    "resultdb_update_token": GoProperty(False, ""),
    "status_v2": GoProperty(True, 0),
    "status_changed_time": GoProperty(True, _EMPTY_TIME),
    "tags": GoProperty(True),
    "update_token": GoProperty(False, ""),
    "start_build_token": GoProperty(False, ""),
    "pubsub_callback.auth_token": GoProperty(False, ""),
    "pubsub_callback.topic": GoProperty(False, ""),
    "pubsub_callback.user_data": GoProperty(False, b""),
    "parent_id": GoProperty(True, 0),
    "ancestor_ids": GoProperty(True),
    "start_task_request_id": GoProperty(False, ""),
    "start_build_request_id": GoProperty(False, ""),
    "next_backend_sync_time": GoProperty(True, ""),
    "backend_target": GoProperty(True, ""),
    "backend_sync_interval": GoProperty(False, 0),
    "custome_metrics.base": GoProperty(False),
    "custome_metrics.metric": GoProperty(False),
    "custom_builder_count_metrics": GoProperty(True),
    "custom_builder_max_age_metrics": GoProperty(True),
    "custom_builder_consecutive_failures_metrics": GoProperty(True),
    "stage_attempt_id": GoProperty(True, ""),
    "stage_attempt_token": GoProperty(False, ""),
}

# model/details.go BuildInfra: the proto alone, unindexed like every proto.
BUILD_INFRA: Mapping[str, GoProperty] = {"infra": GoProperty(False)}

# model/build.go BuildStatus.
BUILD_STATUS: Mapping[str, GoProperty] = {
    "build_address": GoProperty(True, ""),
    "status": GoProperty(False, 0),
}

# model/details.go BuildSteps: a nil Bytes is stored as an empty blob.
BUILD_STEPS: Mapping[str, GoProperty] = {
    "step_container_bytes_zipped": GoProperty(False, False),
    "steps": GoProperty(False, b""),
}


def complete(entity: datastore.Entity, table: Mapping[str, GoProperty], written: Iterable[str]) -> None:
    """Gives `entity` the properties and index flags a Go save of `table`'s struct leaves.

    `written` names the properties this save set: they get Go's index flag, as
    do the zero values added for absent scalars. An empty or null list is
    removed (luci/gae writes no property for an empty slice). Everything else
    keeps its value and flag.
    """
    flagged = set(written)
    for name, go in table.items():
        value = entity.get(name, OMITTED)
        if go.zero is OMITTED:
            if value is None or value == []:
                del entity[name]
                continue
        elif value is OMITTED:
            entity[name] = go.zero
            flagged.add(name)
        if name in flagged and name in entity:
            if go.indexed:
                entity.exclude_from_indexes.discard(name)
            else:
                entity.exclude_from_indexes.add(name)


def derived_from_proto(build: pb.Build) -> dict[str, object]:
    """The Build properties Build.Save computes from the proto on every save, besides the status's.

    `parent_id` only when the build has ancestors: otherwise the save keeps
    the stored one.
    """
    builder = build.builder
    derived: dict[str, object] = {
        "project": builder.project,
        "bucket_id": f"{builder.project}/{builder.bucket}",
        "builder_id": f"{builder.project}/{builder.bucket}/{builder.builder}",
        "canary": build.canary,
        "experimental": build.input.experimental,
        "create_time": go_time(build.create_time),
        "ancestor_ids": list(build.ancestor_ids),
    }
    if build.ancestor_ids:
        derived["parent_id"] = build.ancestor_ids[-1]
    return derived


def go_time(timestamp: timestamp_pb2.Timestamp) -> datetime.datetime:
    """A proto time as luci/gae stores it: rounded to the microsecond, halves up (gae's RoundTime).

    An unset timestamp is the Unix epoch, as Go's AsTime of a nil Timestamp.
    A time outside the years 1 to 9999, which Datastore refuses to store (so
    Buildbucket's own save fails), raises StoredDataError: the build that
    holds it fails alone.
    """
    micros = (timestamp.nanos + 500) // 1000
    try:
        return _EPOCH + datetime.timedelta(seconds=timestamp.seconds, microseconds=micros)
    except OverflowError as error:
        raise StoredDataError(
            f"time {timestamp.seconds} s {timestamp.nanos} ns since the epoch is outside the years 1 to 9999 "
            "that Datastore stores"
        ) from error


_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
