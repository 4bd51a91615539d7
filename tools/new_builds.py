"""Builds as Buildbucket creates them, for the local stack, the benchmark and the tests.

Not shipped: no function creates builds. The entities are written the way
Buildbucket's creation writes them (docs/storage.md), with the keys and the
sync-time key of the core package.
"""

from __future__ import annotations

import dataclasses
import datetime

from buildsync.proto import buildbucket_pb2 as pb
from buildsync.rules import legacy, sync_time
from buildsync.rules.status_rules import is_ended
from buildsync.rules.sync_time import DEFAULT_SYNC_INTERVAL
from buildsync.store import go_schema, model
from google.cloud import datastore


@dataclasses.dataclass(frozen=True)
class NewBuild:
    """A build as Buildbucket would create it, for demos, tests and benchmarks."""

    build_id: int
    project: str
    backend: str
    task_id: str
    status: int = pb.STARTED
    update_time: datetime.datetime = dataclasses.field(
        default_factory=lambda: datetime.datetime.now(datetime.timezone.utc)
    )
    shards: int = 1
    sync_interval: datetime.timedelta = DEFAULT_SYNC_INTERVAL
    task_update_id: int = 1
    bucket: str = "ci"
    builder: str = "builder"


def new_build_entities(client: datastore.Client, spec: NewBuild, shard: int | None = None) -> list[datastore.Entity]:
    """The Build, BuildInfra and BuildStatus entities of a freshly created build.

    The shard is random unless given, as Buildbucket picks it at creation.
    """
    build = pb.Build(id=spec.build_id, number=spec.build_id % 100_000, status=spec.status)
    build.builder.project, build.builder.bucket, build.builder.builder = spec.project, spec.bucket, spec.builder
    build.create_time.FromDatetime(spec.update_time)
    build.update_time.FromDatetime(spec.update_time)
    key = sync_time.new_key(spec.backend, spec.project, spec.shards, spec.update_time, spec.sync_interval)
    if shard is not None:
        key = dataclasses.replace(key, shard=shard)
    build_entity = datastore.Entity(model.build_key(client, spec.build_id))
    build_entity.update(
        {
            "proto": build.SerializeToString(),
            **go_schema.derived_from_proto(build),
            "is_luci": True,
            model.STATUS_V2: spec.status,
            model.INCOMPLETE: not is_ended(spec.status),
            "status_changed_time": spec.update_time,
            model.BACKEND_TARGET: spec.backend,
            "backend_sync_interval": int(spec.sync_interval.total_seconds()) * 1_000_000_000,
            model.NEXT_SYNC_TIME: str(key),
            **legacy.legacy_properties(spec.status, build.status_details),
        }
    )
    infra = pb.BuildInfra()
    if spec.task_id:
        task = infra.backend.task
        task.id.target, task.id.id = spec.backend, spec.task_id
        task.status, task.update_id = pb.SCHEDULED, spec.task_update_id
    infra_entity = datastore.Entity(model.infra_key(client, spec.build_id))
    infra_entity["infra"] = infra.SerializeToString()
    status_entity = datastore.Entity(model.status_key(client, spec.build_id))
    status_entity.update(
        {"status": spec.status, "build_address": f"{spec.project}/{spec.bucket}/{spec.builder}/b{spec.build_id}"}
    )
    # Every property as Buildbucket's first save leaves it: its whole struct, with Go's flags.
    tables = (go_schema.BUILD, go_schema.BUILD_INFRA, go_schema.BUILD_STATUS)
    entities = [build_entity, infra_entity, status_entity]
    for entity, table in zip(entities, tables, strict=True):
        go_schema.complete(entity, table, table)
    return entities
