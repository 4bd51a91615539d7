"""The floor: the least Datastore work the same builds need, on the same emulator in the same run.

It runs the core's own shard query (buildsync.shard.due_batches), reads
Build+BuildInfra in chunks of 1000 keys, and writes the same entities back
unchanged 25 builds to a transaction, with the pipeline's concurrency; none
of the sync's decoding or deciding.
"""

from __future__ import annotations

import collections
import concurrent.futures
import datetime

from buildsync import model
from buildsync.shard import due_batches
from buildsync.sync import BUILDS_PER_TRANSACTION
from google.cloud import datastore

from tools.bench.seeding import Layout

READ_CHUNK_KEYS = 1000


def run_floor(
    client: datastore.Client, layout: Layout, planned_at: datetime.datetime, workers: int, group_workers: int
) -> int:
    """Shard queries side by side, `workers` batches at once, `group_workers` transactions per batch.

    Returns the number of builds written back.
    """

    def write_group(entities: list[datastore.Entity]) -> int:
        with client.transaction():
            client.put_multi(entities)
        return len(entities)

    def do_batch(ids: tuple[int, ...]) -> int:
        keys = [k for i in ids for k in (model.build_key(client, i), model.infra_key(client, i))]
        found: dict[int, list[datastore.Entity]] = collections.defaultdict(list)
        for start in range(0, len(keys), READ_CHUNK_KEYS):
            for entity in client.get_multi(keys[start : start + READ_CHUNK_KEYS]):
                found[model.build_id_of(entity.key)].append(entity)
        groups = [
            [e for i in ids[s : s + BUILDS_PER_TRANSACTION] for e in found[i]]
            for s in range(0, len(ids), BUILDS_PER_TRANSACTION)
        ]
        with concurrent.futures.ThreadPoolExecutor(max_workers=group_workers) as pool:
            written = sum(pool.map(write_group, groups))
        return written // 2

    jobs = layout.shard_jobs(planned_at)
    with (
        concurrent.futures.ThreadPoolExecutor(max_workers=workers) as batch_pool,
        concurrent.futures.ThreadPoolExecutor(max_workers=min(len(jobs), workers)) as query_pool,
    ):

        def query_one(job) -> list[concurrent.futures.Future[int]]:
            return [batch_pool.submit(do_batch, batch.build_ids) for batch in due_batches(client, job)]

        batch_futures = [f for q in [query_pool.submit(query_one, job) for job in jobs] for f in q.result()]
        return sum(f.result() for f in batch_futures)
