"""Writing builds into Datastore the way Buildbucket would, for the integration tests."""

from __future__ import annotations

import datetime

from buildsync.proto import buildbucket_pb2 as pb
from buildsync.store import model
from google.cloud import datastore

from tests.harness import BACKEND, HUNG, LONG_AGO
from tools.new_builds import NewBuild, new_build_entities
from tools.task_backend import FakeTaskBackend


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


def put_healthy_and_hung_builds(client: datastore.Client, healthy: FakeTaskBackend) -> tuple[list[int], list[int]]:
    """Due builds of the isolation tests: 8 on BACKEND, whose tasks have failed (so the sync ends them), and 16
    on HUNG; one build a project and shard of 4, so each is a batch of its own. Returns both lists of ids."""
    healthy_ids, hung_ids = list(range(1, 9)), list(range(101, 117))
    for build_id in healthy_ids:
        project, shard = f"g{build_id % 2}", (build_id // 2) % 4
        put_build(client, build_id, project=project, updated=LONG_AGO, shard=shard, shards=4)
        healthy.set_task(f"task-{build_id}", pb.FAILURE, 2)
    for build_id in hung_ids:
        project, shard = f"h{build_id % 4}", (build_id // 4) % 4
        put_build(client, build_id, project=project, backend=HUNG, updated=LONG_AGO, shard=shard, shards=4)
    return healthy_ids, hung_ids
