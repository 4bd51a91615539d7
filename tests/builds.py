"""Writing builds into Datastore the way Buildbucket would, for the integration tests."""

from __future__ import annotations

import datetime

from buildsync.proto import buildbucket_pb2 as pb
from buildsync.store import model
from google.cloud import datastore

from tests.harness import BACKEND
from tools.new_builds import NewBuild, new_build_entities


def put_build(
    client: datastore.Client,
    build_id: int,
    *,
    project: str = "proj",
    backend: str = BACKEND,
    status: int = pb.STARTED,
    updated: datetime.datetime,
    task_id: str | None = None,
    task_update_id: int = 1,
    shard: int = 0,
    shards: int = 1,
) -> None:
    spec = NewBuild(
        build_id=build_id,
        project=project,
        backend=backend,
        task_id=f"task-{build_id}" if task_id is None else task_id,
        status=status,
        update_time=updated,
        shards=shards,
        task_update_id=task_update_id,
    )
    client.put_multi(new_build_entities(client, spec, shard=shard))


def get_build(
    client: datastore.Client, build_id: int
) -> tuple[datastore.Entity, pb.Build, pb.BuildInfra, datastore.Entity]:
    build, infra, status = (
        client.get(key)
        for key in (
            model.build_key(client, build_id),
            model.infra_key(client, build_id),
            model.status_key(client, build_id),
        )
    )
    return build, model.read_build(build), model.read_infra(infra), status


def entity_keys(client: datastore.Client, build_ids) -> list[datastore.Key]:
    """The Build, BuildInfra and BuildStatus keys of each build."""
    keys = []
    for build_id in build_ids:
        keys += [
            model.build_key(client, build_id),
            model.infra_key(client, build_id),
            model.status_key(client, build_id),
        ]
    return keys


def snapshot(client: datastore.Client, build_ids) -> list:
    """Every property of every entity of the builds, to compare before and after."""
    return sorted((e.key.flat_path, dict(e)) for e in client.get_multi(entity_keys(client, build_ids)))
