"""The builds a benchmark run syncs: where they live (projects × shards) and how they are written (untimed)."""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import datetime
import math

from buildsync.stages.messages import MAX_BATCH_SIZE, ShardJob
from buildsync.stages.shard import due_builds_query
from google.cloud import datastore

from tools.new_builds import NewBuild, new_build_entities

PROJECT = "buildsync-bench"
BACKEND = "swarming://bench-swarm"
# Realistic Buildbucket build ids (they count down from near 2**63).
FIRST_BUILD_ID = 8_800_000_000_000_000_000
SEED_CHUNK_ENTITIES = 500


@dataclasses.dataclass(frozen=True)
class Layout:
    """N builds spread round-robin over `projects` projects, then over `shards` shards of each."""

    projects: int
    shards: int

    def project(self, index: int) -> str:
        return f"bench-{index % self.projects}"

    def shard(self, index: int) -> int:
        return (index // self.projects) % self.shards

    def project_names(self) -> list[str]:
        return [f"bench-{p}" for p in range(self.projects)]

    def shard_jobs(self, planned_at: datetime.datetime) -> list[ShardJob]:
        """The shard messages a trigger planned at `planned_at` makes for these builds."""
        return [
            ShardJob(BACKEND, project, shard, self.shards, planned_at)
            for project in self.project_names()
            for shard in range(self.shards)
        ]

    def minimum_batches(self, n: int) -> int:
        """Batches the shard stage must make of N builds: one or more per (project, shard), 1000 builds at most."""
        per_shard = collections.Counter((self.project(i), self.shard(i)) for i in range(n))
        return sum(math.ceil(count / MAX_BATCH_SIZE) for count in per_shard.values())


def build_ids(n: int, first: int = FIRST_BUILD_ID) -> range:
    return range(first, first + n)


def seed(
    client: datastore.Client,
    layout: Layout,
    n: int,
    due_at: datetime.datetime,
    first: int = FIRST_BUILD_ID,
    project: str | None = None,
) -> None:
    """N due builds (tasks at update_id 1), written with put_multi in chunks; not timed.

    With `project`, all of them go to that project's shard 0.
    """
    entities = []
    for index, build_id in enumerate(build_ids(n, first)):
        spec = NewBuild(
            build_id=build_id,
            project=project or layout.project(index),
            backend=BACKEND,
            task_id=f"task-{build_id}",
            update_time=due_at,
            shards=layout.shards,
            task_update_id=1,
        )
        entities += new_build_entities(client, spec, shard=0 if project else layout.shard(index))
    chunks = [entities[i : i + SEED_CHUNK_ENTITIES] for i in range(0, len(entities), SEED_CHUNK_ENTITIES)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(client.put_multi, chunks))


def still_due(client: datastore.Client, layout: Layout, planned_at: datetime.datetime) -> int:
    """How many builds a run planned at `planned_at` left due (0 when it synced them all)."""
    return sum(len(list(due_builds_query(client, job).fetch())) for job in layout.shard_jobs(planned_at))
