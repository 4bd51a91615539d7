"""Measure, on a Datastore emulator, the per-unit costs the capacity model assumes.

    python -m tools.capacity.probe [--emulator firestore|datastore] [--sizes 10000,20000,40000]
                                   [--out docs/bench/capacity.csv]

Three figures, each through a delay proxy adding D ms to every Datastore RPC
(D = 0 and 30) so that round trips weigh as in production:

1. the shard stage's keys-only query over one large shard (`shard.due_batches`,
   exactly what a shard job runs): seconds and query pages for K due builds,
   for each K in --sizes, hence keys per second;
2. the planner's distinct-projects query (`planner.projects_with_incomplete_builds`)
   over the same incomplete builds (K in one project plus PROBE_SMALL_PROJECTS
   small projects): does its time grow with the builds or with the projects?
3. one sync batch (`sync.sync_batch`, as the sync function runs it) of b builds
   for b in BATCH_SIZES, so that the model knows a small batch's fixed cost
   and each build's share, not only the 1000-build figure the benchmark reports;
4. the outbox sweep (`Completer.sweep`, as the planner runs it) over
   SWEEP_BUILDS ended builds whose effects a crash left undone: each build
   re-read whole, its BuildsV2PubSub published to a topic of the Pub/Sub
   emulator, its metric line written, its entry deleted.

The index-only builds of 1 and 2 are bare Build entities with the four
indexed properties the queries read (seeding is not timed); 3 uses whole
builds and the benchmark's TaskBackend, 4 also the Pub/Sub emulator. Writes the figures to --out (one row
each, as tools/bench writes benchmark.csv); tools.capacity reads them.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import datetime
import itertools
import os
import pathlib
import statistics
import sys
import time

from buildsync.ending.completion import Completer, Targets
from buildsync.ending.resultdb import prpc_finalizer
from buildsync.proto import buildbucket_pb2 as pb
from buildsync.remote.backend import BackendPool, TaskFetcher
from buildsync.rules import sync_time
from buildsync.stages.messages import MAX_BATCH_SIZE, ShardJob, SyncBatch
from buildsync.stages.planner import projects_with_incomplete_builds
from buildsync.stages.shard import due_batches
from buildsync.stages.sync import SyncOptions, sync_batch
from buildsync.store import model
from google.cloud import datastore

from tools.bench.datastore_calls import counting_client
from tools.bench.environment import BenchEnvironment
from tools.bench.processes import Supervisor, run_in_thread
from tools.bench.results import Results
from tools.bench.seeding import BACKEND, FIRST_BUILD_ID, SEED_CHUNK_ENTITIES, Layout
from tools.delay_proxy import DelayProxy
from tools.emulators import DATASTORE_KINDS, EmulatorUnavailable, pubsub_clients
from tools.stack import REPO

DELAYS_MS = (0, 30)
BIG_PROJECT = "probe-big"
# Small projects beside the big one, so that the distinct query has more than one answer.
PROBE_SMALL_PROJECTS = 63
BUILDS_PER_SMALL_PROJECT = 10
BATCH_SIZES = (25, 100, 250, 1000)
BATCH_REPEATS = 3
BATCH_PROJECT = "probe-batch"
# Ids of their own, clear of the index-only builds.
BATCH_FIRST_ID = FIRST_BUILD_ID + 10**9
SWEEP_BUILDS = 2000
SWEEP_PROJECT = "probe-sweep"
SWEEP_FIRST_ID = FIRST_BUILD_ID + 2 * 10**9
DEFAULT_OUT = REPO / "docs" / "bench" / "capacity.csv"


def bare_build(client: datastore.Client, build_id: int, key: sync_time.SyncTimeKey) -> datastore.Entity:
    """A Build with only what the shard and planner queries read: enough for an index-only probe."""
    entity = datastore.Entity(client.key(model.BUILD_KIND, build_id))
    entity.update(
        {
            "incomplete": True,
            "backend_target": key.backend,
            "project": key.project,
            "next_backend_sync_time": str(key),
        }
    )
    return entity


def seed_bare(client: datastore.Client, ids: range, key: sync_time.SyncTimeKey) -> None:
    """Bare builds with `ids`, all with the sync-time `key` (so in one shard, due alike); not timed."""
    entities = [bare_build(client, build_id, key) for build_id in ids]
    chunks = [entities[i : i + SEED_CHUNK_ENTITIES] for i in range(0, len(entities), SEED_CHUNK_ENTITIES)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(client.put_multi, chunks))


def time_shard_query(client: datastore.Client, job: ShardJob) -> tuple[float, int]:
    """Seconds to run one shard job's query to the end, and the keys it found."""
    started = time.perf_counter()
    keys = sum(len(batch.build_ids) for batch in due_batches(client, job))
    return time.perf_counter() - started, keys


def time_distinct(client: datastore.Client) -> tuple[float, int]:
    started = time.perf_counter()
    projects = projects_with_incomplete_builds(client, BACKEND)
    return time.perf_counter() - started, len(projects)


def probe_queries(env: BenchEnvironment, sizes: list[int], results: Results) -> None:
    """Figures 1 and 2: grow one shard to each size, then time both queries at each delay."""
    client = env.client()
    due_unix = int(time.time()) - 3600
    first = FIRST_BUILD_ID
    for index in range(PROBE_SMALL_PROJECTS):
        ids = range(first, first + BUILDS_PER_SMALL_PROJECT)
        seed_bare(client, ids, sync_time.SyncTimeKey(BACKEND, f"probe-small-{index}", 0, due_unix))
        first = ids.stop
    seeded = 0
    for size in sorted(sizes):
        started = time.perf_counter()
        seed_bare(client, range(first + seeded, first + size), sync_time.SyncTimeKey(BACKEND, BIG_PROJECT, 0, due_unix))
        env.log(f"seeded {size - seeded} bare builds in {time.perf_counter() - started:.1f}s (not timed)")
        seeded = size
        job = ShardJob(BACKEND, BIG_PROJECT, 0, 1, datetime.datetime.now(datetime.timezone.utc))
        time_shard_query(client, job)  # untimed: the emulator's first query after writes is slower
        incomplete = size + PROBE_SMALL_PROJECTS * BUILDS_PER_SMALL_PROJECT
        for delay_ms in DELAYS_MS:
            with DelayProxy(env.datastore_emulator.host, delay_ms / 1000) as proxy:
                counted, counter = counting_client(env.datastore_emulator.project, proxy.host)
                seconds, keys = time_shard_query(counted, job)
                pages = counter.reset()["query_rpcs"]
                distinct_seconds, projects = time_distinct(counted)
                counted.close()
            results.add(f"shard_query_seconds_d{delay_ms}", size, seconds, "s")
            results.add(f"shard_query_keys_per_second_d{delay_ms}", size, keys / seconds, "keys/s")
            results.add(f"shard_query_pages_d{delay_ms}", size, pages, "RunQuery calls")
            results.add(f"distinct_query_seconds_d{delay_ms}", incomplete, distinct_seconds, "s")
            results.add(f"distinct_query_projects_d{delay_ms}", incomplete, projects, "projects")
            env.log(
                f"  K={size}, D={delay_ms} ms: shard query {keys} keys in {seconds:.2f}s ({keys / seconds:.0f} keys/s, "
                f"{pages} pages); distinct projects over {incomplete} builds: {projects} in {distinct_seconds:.3f}s"
            )
    client.close()


def time_batch(env: BenchEnvironment, client: datastore.Client, fetcher: TaskFetcher, ids: range, run: int) -> float:
    """One sync batch of `ids` as the sync function runs it; run `run` (1, 2, ...) makes each due with a newer task."""
    for build_id in ids:
        env.server.backend.set_task(f"task-{build_id}", pb.STARTED, update_id=run + 1, target=BACKEND)
    planned_at = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=run)
    batch = SyncBatch(BACKEND, BATCH_PROJECT, tuple(ids), planned_at)
    started = time.perf_counter()
    options = SyncOptions(transaction_begin=env.transaction_begin)
    report = sync_batch(client, fetcher, env.settings.backend(BACKEND), batch, options)
    seconds = time.perf_counter() - started
    if report.updated != len(ids):
        env.log(f"  [batch of {len(ids)}: {report.counts()}]")
    return seconds


def probe_batches(env: BenchEnvironment, results: Results) -> None:
    """Figure 3: one batch of each size at D = 30 ms, the median of BATCH_REPEATS."""
    ids = range(BATCH_FIRST_ID, BATCH_FIRST_ID + max(BATCH_SIZES))
    env.seed_more(ids, BATCH_PROJECT)
    delay_ms = DELAYS_MS[-1]
    runs = itertools.count(1)
    with (
        DelayProxy(env.datastore_emulator.host, delay_ms / 1000) as proxy,
        contextlib.closing(BackendPool(deadline_seconds=60)) as backends,
    ):
        client, _ = counting_client(env.datastore_emulator.project, proxy.host)
        fetcher = backends.get(BACKEND, env.server.hostname)
        for size in BATCH_SIZES:
            times = [time_batch(env, client, fetcher, ids[:size], next(runs)) for _ in range(BATCH_REPEATS)]
            seconds = statistics.median(times)
            results.add(f"batch_seconds_d{delay_ms}", size, seconds, "s")
            env.log(f"  D={delay_ms} ms: one batch of {size} builds in {seconds:.2f}s (runs: {_spread(times)})")
        client.close()


def probe_sweep(env: BenchEnvironment, results: Results) -> None:
    """Figure 4: ended builds with their effects left, then one sweep of them at D = 30 ms."""
    ids = range(SWEEP_FIRST_ID, SWEEP_FIRST_ID + SWEEP_BUILDS)
    env.seed_more(ids, SWEEP_PROJECT)
    for build_id in ids:
        env.server.backend.set_task(f"task-{build_id}", pb.SUCCESS, update_id=3, target=BACKEND)
    publisher = pubsub_clients(env.pubsub_emulator.host).publisher
    topic = publisher.create_topic(name=publisher.topic_path(env.datastore_emulator.project, "probe-builds")).name
    targets = Targets(builds_topic=topic)
    delay_ms = DELAYS_MS[-1]
    with (
        DelayProxy(env.datastore_emulator.host, delay_ms / 1000) as proxy,
        contextlib.closing(BackendPool(deadline_seconds=60)) as backends,
    ):
        client, _ = counting_client(env.datastore_emulator.project, proxy.host)
        options = SyncOptions(targets=targets, transaction_begin=env.transaction_begin)
        fetcher = backends.get(BACKEND, env.server.hostname)
        now = datetime.datetime.now(datetime.timezone.utc)
        for start in range(0, SWEEP_BUILDS, MAX_BATCH_SIZE):
            batch = SyncBatch(BACKEND, SWEEP_PROJECT, tuple(ids[start : start + MAX_BATCH_SIZE]), now)
            sync_batch(client, fetcher, env.settings.backend(BACKEND), batch, options)
        completer = Completer(client, targets, prpc_finalizer("resultdb.invalid"), publisher)
        started = time.perf_counter()
        swept = completer.sweep(now + datetime.timedelta(minutes=2), min_age=datetime.timedelta(0))
        seconds = time.perf_counter() - started
        client.close()
    publisher.stop()
    results.add(f"sweep_builds_per_second_d{delay_ms}", swept, swept / seconds, "builds/s")
    env.log(f"  D={delay_ms} ms: one sweep did the effects of {swept} ended builds in {seconds:.1f}s")


def _spread(times: list[float]) -> str:
    return ", ".join(f"{t:.2f}" for t in times)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--emulator", choices=DATASTORE_KINDS, default="firestore", help="default: firestore")
    parser.add_argument("--sizes", default="10000,20000,40000", help="due builds in the large shard")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help=f"the CSV (default {DEFAULT_OUT.relative_to(REPO)})")
    args = parser.parse_args(argv)
    args.sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    if not args.sizes or min(args.sizes) <= 0:
        parser.error("--sizes needs positive build counts")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    supervisor = Supervisor()
    results = Results()
    with contextlib.ExitStack() as exit_stack:
        env = BenchEnvironment(Layout(1, 1), exit_stack, supervisor, task_count=0, datastore_kind=args.emulator)
        try:
            env.start(full=False, pubsub=True)
        except EmulatorUnavailable as error:
            supervisor.log(f"cannot start an emulator: {error}")
            return 2
        run_in_thread(lambda: probe_queries(env, args.sizes, results))
        run_in_thread(lambda: probe_batches(env, results))
        run_in_thread(lambda: probe_sweep(env, results))
    results.add("probe_emulator", args.emulator, 1, "flag")
    # Two cores shared with other work: the load says how much the figures were crowded.
    results.add("probe_load_average_1min", "", os.getloadavg()[0], "runnable processes")
    results.write_csv(pathlib.Path(args.out))
    print(f"CSV: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
