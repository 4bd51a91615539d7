"""Benchmark the sync: throughput against a Datastore floor, Datastore work per build, memory, cold start.

    python -m tools.benchmark [--sizes 1000,5000,20000] [--out bench-results]

It starts its own Datastore and Pub/Sub emulators, a TaskBackend that answers
at once, and (for the full pipeline) the three functions under
functions-framework, and stops all of them at the end, on an error and on
Ctrl-C. For each N it seeds N due builds over --projects projects and --shards
shards (seeding is not timed; the Datastore emulator is reset before each
seeding) and measures:

1. the in-process pipeline (buildsync.pipeline.run_pipeline), every task with a
   newer update_id so that every build is written;
2. the full pipeline: a SyncTrigger published to the planner's topic, through
   Pub/Sub push into the planner, shard and sync functions, until the sync
   function's "synced batch" log events add up to N updated builds;
3. the floor: the least Datastore work the same builds need on the same
   emulator: the keys-only shard queries, get_multi of Build+BuildInfra in
   chunks of 1000 keys, and 25-build transactions that write the same
   entities back unchanged, with the pipeline's concurrency;
4. Datastore operations per build (counted on the client's API object) and
   FetchTasks calls per 1000 builds.

Each kind runs --repeats times per size, interleaved, and the median run is
reported: the emulators share two cores with whatever else the machine runs,
and the table shows how much CPU other processes took during each run. CPU
seconds of this process, each emulator and each function, and the wall time
of each kind of Datastore RPC (summed over threads), tell whether a run was
Python-bound or emulator-bound; --profile adds a cProfile of every thread of
an extra in-process run of the largest size.

Once per run: the peak memory of `sync_batch` on one 1000-build batch in a
fresh process (tools/bench_memory.py), and each function's cold start (the
median of --cold-start-runs imports of its main.py in a fresh interpreter).

Prints a table, writes OUTDIR/benchmark.csv (one row per figure) and
OUTDIR/sync_time.png (needs matplotlib: pip install -r requirements-bench.txt).
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import contextlib
import cProfile
import csv
import dataclasses
import datetime
import io
import json
import math
import os
import pathlib
import pstats
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from buildsync import model, sync_time
from buildsync.backend import BackendPool
from buildsync.messages import MAX_BATCH_SIZE, SyncTrigger
from buildsync.pipeline import DEFAULT_WORKERS, run_pipeline
from buildsync.proto import buildbucket_pb2 as pb
from buildsync.settings import parse_settings
from buildsync.sync import BUILDS_PER_TRANSACTION, DEFAULT_GROUP_WORKERS
from google.cloud import datastore
from google.cloud.datastore.query import PropertyFilter

from tools.emulators import Emulator, EmulatorUnavailable
from tools.stack import FUNCTIONS, REPO, LocalStack
from tools.task_backend import TaskBackendServer

PROJECT = "buildsync-bench"
BACKEND = "swarming://bench-swarm"
# Realistic Buildbucket build ids (they count down from near 2**63).
FIRST_BUILD_ID = 8_800_000_000_000_000_000
SEED_CHUNK_ENTITIES = 500
FLOOR_READ_CHUNK_KEYS = 1000
CLK_TCK = os.sysconf("SC_CLK_TCK")

# Targets from the brief: (metric, comparison, bound).
TARGETS = {
    "inprocess_floor_ratio": (">=", 0.8),
    "full_floor_ratio": (">=", 0.5),
    "entity_reads_per_build": ("<=", 4.0),
    "fetch_calls_per_1000_builds": ("<=", 1.0),
    "sync_batch_rss_growth_mib": ("<", 256.0),
    "sync_batch_peak_rss_mib": ("<", 256.0),
    "cold_start_seconds": ("<", 1.5),
}


def meets(metric: str, value: float | None) -> str:
    if metric not in TARGETS or value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    op, bound = TARGETS[metric]
    ok = {">=": value >= bound, "<=": value <= bound, "<": value < bound}[op]
    return "ok" if ok else "MISSED"


def target_key(metric: str) -> str:
    """The TARGETS entry a CSV metric is judged by ("" for none)."""
    if metric.startswith("cold_start_"):
        return "cold_start_seconds"
    if metric in ("inprocess_entity_reads_per_build",):
        return "entity_reads_per_build"
    if metric.endswith("_fetch_calls_per_1000_builds") and metric != "floor_fetch_calls_per_1000_builds":
        return "fetch_calls_per_1000_builds"
    return metric if metric in TARGETS else ""


def target_text(metric: str) -> str:
    if metric not in TARGETS:
        return ""
    op, bound = TARGETS[metric]
    return f"{op} {bound:g}"


# --- counting the Datastore work ------------------------------------------------


def _field(request, name):
    return request.get(name) if isinstance(request, dict) else getattr(request, name)


class CountingDatastoreApi:
    """Wraps a client's API object: counts RPCs, keys looked up and mutations, and times each kind of RPC.

    The `*_rpc_seconds` counters add up the wall time of the calls over all
    threads, so with 16 threads they can exceed the run's wall time; compare
    them with each other and with the floor's.
    """

    def __init__(self, api) -> None:
        self._api = api
        self._lock = threading.Lock()
        self.counts: collections.Counter[str] = collections.Counter()

    def _add(self, **amounts: float) -> None:
        with self._lock:
            self.counts.update(amounts)

    def reset(self) -> collections.Counter[str]:
        with self._lock:
            counts, self.counts = self.counts, collections.Counter()
        return counts

    def _timed(self, method: str, request, kwargs):
        started = time.perf_counter()
        response = getattr(self._api, method)(request=request, **kwargs)
        return response, time.perf_counter() - started

    def lookup(self, request, **kwargs):
        response, seconds = self._timed("lookup", request, kwargs)
        options = _field(request, "read_options")
        # In a transaction: its id, or (begin_later) the request that begins it.
        in_transaction = options is not None and ("transaction" in options or "new_transaction" in options)
        keys = len(_field(request, "keys"))
        where = "txn" if in_transaction else "plain"
        begins = int(options is not None and "new_transaction" in options)
        self._add(
            **{
                "lookup_rpcs": 1,
                "entity_reads": keys,
                "entities_found": len(response.found),
                f"{where}_entity_reads": keys,
                f"{where}_lookup_rpc_seconds": seconds,
                "transactions": begins,
            }
        )
        return response

    def run_query(self, request, **kwargs):
        response, seconds = self._timed("run_query", request, kwargs)
        self._add(query_rpcs=1, query_results=len(response.batch.entity_results), query_rpc_seconds=seconds)
        return response

    def run_aggregation_query(self, request, **kwargs):
        response, seconds = self._timed("run_aggregation_query", request, kwargs)
        self._add(query_rpcs=1, query_rpc_seconds=seconds)
        return response

    def begin_transaction(self, request, **kwargs):
        response, seconds = self._timed("begin_transaction", request, kwargs)
        self._add(transactions=1, begin_rpcs=1, begin_rpc_seconds=seconds)
        return response

    def commit(self, request, **kwargs):
        response, seconds = self._timed("commit", request, kwargs)
        self._add(commit_rpcs=1, entity_writes=len(_field(request, "mutations")), commit_rpc_seconds=seconds)
        return response

    def rollback(self, request, **kwargs):
        response, seconds = self._timed("rollback", request, kwargs)
        self._add(rollbacks=1, rollback_rpc_seconds=seconds)
        return response

    def __getattr__(self, name):
        return getattr(self._api, name)


def counting_client() -> tuple[datastore.Client, CountingDatastoreApi]:
    client = datastore.Client(project=PROJECT)
    api = CountingDatastoreApi(client._datastore_api)
    client._datastore_api_internal = api
    return client, api


# --- CPU attribution --------------------------------------------------------------


def proc_stats():
    """(pid, the fields of /proc/PID/stat after the command name) of every live process."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                yield int(entry), stat.read().rpartition(")")[2].split()
        except OSError:
            continue


def group_cpu_seconds(pgids: dict[str, int]) -> dict[str, float]:
    """CPU seconds (user+system) used so far by the live processes of each process group."""
    by_pgid = {pgid: 0 for pgid in pgids.values()}
    for _, fields in proc_stats():
        pgrp = int(fields[2])
        if pgrp in by_pgid:
            by_pgid[pgrp] += int(fields[11]) + int(fields[12])
    return {name: by_pgid[pgid] / CLK_TCK for name, pgid in pgids.items()}


def self_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def machine_busy_seconds() -> float:
    """CPU seconds every process on the machine has used (the first line of /proc/stat)."""
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


class CpuMeter:
    """CPU used by this process, by named process groups, and by everything else, between start and stop."""

    def __init__(self, pgids: dict[str, int]) -> None:
        self.pgids = pgids

    def __enter__(self) -> CpuMeter:
        self._self = self_cpu_seconds()
        self._groups = group_cpu_seconds(self.pgids)
        self._machine = machine_busy_seconds()
        self.used: dict[str, float] = {}
        return self

    def __exit__(self, *exc) -> None:
        groups = group_cpu_seconds(self.pgids)
        machine = machine_busy_seconds() - self._machine
        self.used = {name: groups[name] - self._groups[name] for name in groups}
        self.used["benchmark process"] = self_cpu_seconds() - self._self
        # Other work on the machine competes for the same cores and skews the figures.
        self.used["other processes"] = max(0.0, machine - sum(self.used.values()))


# --- seeding ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Layout:
    projects: int
    shards: int

    def project(self, index: int) -> str:
        return f"bench-{index % self.projects}"

    def shard(self, index: int) -> int:
        return (index // self.projects) % self.shards

    def project_names(self) -> list[str]:
        return [f"bench-{p}" for p in range(self.projects)]


def minimum_batches(layout: Layout, n: int) -> int:
    """Batches the shard stage must make of N builds: one or more per (project, shard), 1000 builds at most."""
    per_shard = collections.Counter((layout.project(i), layout.shard(i)) for i in range(n))
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
    """N due builds (tasks at update_id 1), written with put_multi in chunks; not timed."""
    entities = []
    for index, build_id in enumerate(build_ids(n, first)):
        spec = model.NewBuild(
            build_id=build_id,
            project=project or layout.project(index),
            backend=BACKEND,
            task_id=f"task-{build_id}",
            update_time=due_at,
            shards=layout.shards,
            task_update_id=1,
        )
        entities += model.new_build_entities(client, spec, shard=0 if project else layout.shard(index))
    chunks = [entities[i : i + SEED_CHUNK_ENTITIES] for i in range(0, len(entities), SEED_CHUNK_ENTITIES)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(client.put_multi, chunks))


def due_query(client: datastore.Client, project: str, shard: int, planned_at: datetime.datetime) -> datastore.Query:
    """The shard stage's keys-only query, written out here so the floor does not depend on the core."""
    lower, upper = sync_time.shard_range(BACKEND, project, shard, planned_at)
    query = client.query(kind=model.BUILD_KIND)
    query.add_filter(filter=PropertyFilter("incomplete", "=", True))
    query.add_filter(filter=PropertyFilter("backend_target", "=", BACKEND))
    query.add_filter(filter=PropertyFilter("project", "=", project))
    query.add_filter(filter=PropertyFilter("next_backend_sync_time", ">", lower))
    query.add_filter(filter=PropertyFilter("next_backend_sync_time", "<", upper))
    query.keys_only()
    return query


def still_due(client: datastore.Client, layout: Layout, planned_at: datetime.datetime) -> int:
    """How many builds a run planned at `planned_at` left due (0 when it synced them all)."""
    return sum(
        len(list(due_query(client, project, shard, planned_at).fetch()))
        for project in layout.project_names()
        for shard in range(layout.shards)
    )


# --- the three runs -----------------------------------------------------------------


@dataclasses.dataclass
class Run:
    seconds: float
    builds: int
    counts: collections.Counter
    fetch_calls: int
    cpu: dict[str, float]
    note: str = ""

    @property
    def rate(self) -> float:
        return self.builds / self.seconds if self.seconds > 0 else float("nan")


def run_floor(
    client: datastore.Client, layout: Layout, planned_at: datetime.datetime, workers: int, group_workers: int
) -> int:
    """The least Datastore work: query, read in 1000-key chunks, write back unchanged 25 builds a transaction.

    Same shape and concurrency as the pipeline (shard queries side by side,
    `workers` batches of up to 1000 builds at once, `group_workers`
    transactions per batch), none of its decoding or deciding. Returns builds written.
    """

    def write_group(entities: list[datastore.Entity]) -> int:
        with client.transaction():
            client.put_multi(entities)
        return len(entities)

    def do_batch(ids: list[int]) -> int:
        keys = [k for i in ids for k in (model.build_key(client, i), model.infra_key(client, i))]
        found: dict[int, list[datastore.Entity]] = collections.defaultdict(list)
        for start in range(0, len(keys), FLOOR_READ_CHUNK_KEYS):
            for entity in client.get_multi(keys[start : start + FLOOR_READ_CHUNK_KEYS]):
                found[model.build_id_of(entity.key)].append(entity)
        groups = [
            [e for i in ids[s : s + BUILDS_PER_TRANSACTION] for e in found[i]]
            for s in range(0, len(ids), BUILDS_PER_TRANSACTION)
        ]
        with concurrent.futures.ThreadPoolExecutor(max_workers=group_workers) as pool:
            written = sum(pool.map(write_group, groups))
        return written // 2

    jobs = [(project, shard) for project in layout.project_names() for shard in range(layout.shards)]
    with (
        concurrent.futures.ThreadPoolExecutor(max_workers=workers) as batch_pool,
        concurrent.futures.ThreadPoolExecutor(max_workers=min(len(jobs), workers)) as query_pool,
    ):

        def query_one(job: tuple[str, int]) -> list[concurrent.futures.Future[int]]:
            submitted, ids = [], []
            for entity in due_query(client, *job, planned_at).fetch():
                ids.append(entity.key.id)
                if len(ids) == MAX_BATCH_SIZE:
                    submitted.append(batch_pool.submit(do_batch, ids))
                    ids = []
            if ids:
                submitted.append(batch_pool.submit(do_batch, ids))
            return submitted

        batch_futures = [f for q in [query_pool.submit(query_one, job) for job in jobs] for f in q.result()]
        return sum(f.result() for f in batch_futures)


class ThreadsProfiler:
    """cProfile for every thread started while it is active (the pipeline's work is all in pool threads).

    Times are per thread and add up over threads, so with 16 threads mostly
    waiting on RPCs the cumulative times exceed the wall time; tottime of the
    non-waiting functions is the Python CPU cost.
    """

    def __init__(self) -> None:
        self._profiles: list[cProfile.Profile] = []
        self._lock = threading.Lock()

    def _start_in_thread(self, frame, event, arg) -> None:
        sys.setprofile(None)
        profile = cProfile.Profile()
        with self._lock:
            self._profiles.append(profile)
        profile.enable()

    def __enter__(self) -> ThreadsProfiler:
        threading.setprofile(self._start_in_thread)
        self._main = cProfile.Profile()
        self._main.enable()
        return self

    def __exit__(self, *exc) -> None:
        self._main.disable()
        threading.setprofile(None)

    def stats(self) -> pstats.Stats:
        stats = pstats.Stats(self._main)
        for profile in self._profiles:
            profile.create_stats()
            if profile.stats:
                stats.add(profile)
        return stats


class Bench:
    """Everything started for one benchmark run, and the runs themselves."""

    def __init__(self, args: argparse.Namespace, stack_exit: contextlib.ExitStack) -> None:
        self.args = args
        self.exit = stack_exit
        self.layout = Layout(args.projects, args.shards)
        self.workdir = pathlib.Path(tempfile.mkdtemp(prefix="buildsync-bench-"))
        self.datastore_emulator: Emulator | None = None
        self.pubsub_emulator: Emulator | None = None
        self.server: TaskBackendServer | None = None
        self.stack: LocalStack | None = None

    # Start-up: each thing is registered for stopping before it is started.

    def start(self, full: bool) -> None:
        self.datastore_emulator = Emulator("datastore", PROJECT)
        self.exit.callback(self.datastore_emulator.stop)
        emulators = [self.datastore_emulator]
        if full:
            self.pubsub_emulator = Emulator("pubsub", PROJECT)
            self.exit.callback(self.pubsub_emulator.stop)
            emulators.append(self.pubsub_emulator)
        log("starting the emulators: " + ", ".join(e.kind for e in emulators))
        for emulator in emulators:  # in the main thread, so that Ctrl-C finds every process registered
            emulator.start()
        os.environ.update(DATASTORE_EMULATOR_HOST=self.datastore_emulator.host, GOOGLE_CLOUD_PROJECT=PROJECT)
        self.server = TaskBackendServer()
        self.exit.callback(self.server.stop)
        self.server.start()
        for build_id in build_ids(max(self.args.sizes + [self.args.memory_batch])):
            self.server.backend.set_task(f"task-{build_id}", pb.STARTED, update_id=2, target=BACKEND)
        self.settings_path = self.workdir / "settings.cfg"
        self.settings_path.write_text(
            f'backends {{\n  target: "{BACKEND}"\n  hostname: "{self.server.hostname}"\n'
            f"  full_mode {{ build_sync_setting {{ shards: {self.layout.shards} }} }}\n}}\n"
        )
        self.settings = parse_settings(self.settings_path.read_text(), "text")
        if full:
            log("starting the planner, shard and sync functions")
            self.stack = LocalStack(
                PROJECT,
                self.datastore_emulator.host,
                self.pubsub_emulator.host,
                self.settings_path,
                log_dir=self.workdir,
            )
            self.exit.callback(self.stack.stop)
            self.stack.start()

    def started_groups(self) -> dict[str, int]:
        """Process groups of what this run started and is still running (each was started in a new session)."""
        groups = {}
        for name, thing in (("datastore emulator", self.datastore_emulator), ("pubsub emulator", self.pubsub_emulator)):
            if thing is not None and thing._process is not None:
                groups[name] = thing._process.pid
        if self.stack is not None:
            groups.update(
                {f"function {n}": f._process.pid for n, f in self.stack.functions.items() if f._process is not None}
            )
        return groups

    def pgids(self) -> dict[str, int]:
        groups = {"datastore emulator": self.datastore_emulator._process.pid}
        if self.pubsub_emulator is not None:
            groups["pubsub emulator"] = self.pubsub_emulator._process.pid
        if self.stack is not None:
            groups.update({f"function {n}": f._process.pid for n, f in self.stack.functions.items()})
        return groups

    def fresh_builds(self, n: int) -> datetime.datetime:
        """Empties Datastore and seeds N due builds; returns when they became due."""
        self.datastore_emulator.reset()
        due_at = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)
        client = datastore.Client(project=PROJECT)
        started = time.perf_counter()
        seed(client, self.layout, n, due_at)
        log(f"  seeded {n} builds ({3 * n} entities) in {time.perf_counter() - started:.1f}s (not timed)")
        self.server.backend.calls.clear()
        return due_at

    # The measured runs.

    def warm_up(self) -> None:
        """One small untimed pass of each kind, so that neither the JVM's JIT nor the
        functions' first event (clients, settings, channels) is billed to the first size."""
        n = self.args.warmup
        if n <= 0:
            return
        log(f"warming up with {n} builds (not reported)")
        self.fresh_builds(n)
        client = datastore.Client(project=PROJECT)
        run_floor(client, self.layout, utc_now(), self.args.workers, DEFAULT_GROUP_WORKERS)
        self.fresh_builds(n)
        with contextlib.closing(BackendPool(deadline_seconds=60)) as backends:
            run_pipeline(client, self.settings, backends, SyncTrigger(BACKEND), workers=self.args.workers)
        if self.stack is not None:
            run = self.full(n)
            if run.note:
                log(f"  warm-up of the full pipeline: {run.note}")

    def floor(self, n: int) -> Run:
        self.fresh_builds(n)
        client, api = counting_client()
        planned_at = utc_now()
        with CpuMeter(self.pgids()) as cpu:
            started = time.perf_counter()
            written = run_floor(client, self.layout, planned_at, self.args.workers, DEFAULT_GROUP_WORKERS)
            seconds = time.perf_counter() - started
        note = "" if written == n else f"floor wrote {written} of {n} builds"
        return Run(seconds, n, api.reset(), 0, cpu.used, note)

    def in_process(self, n: int, profile_to: pathlib.Path | None = None) -> Run:
        self.fresh_builds(n)
        client, api = counting_client()
        planned_at = utc_now()
        profiler = ThreadsProfiler() if profile_to else contextlib.nullcontext()
        with contextlib.closing(BackendPool(deadline_seconds=60)) as backends, CpuMeter(self.pgids()) as cpu:
            started = time.perf_counter()
            with profiler:
                report = run_pipeline(
                    client,
                    self.settings,
                    backends,
                    SyncTrigger(BACKEND),
                    planned_at=planned_at,
                    workers=self.args.workers,
                )
            seconds = time.perf_counter() - started
        counts = api.reset()
        fetch_calls = len(self.server.backend.calls)
        notes = []
        if report.updated != n or report.failed:
            notes.append(f"report: {report.counts()}")
        left = still_due(client, self.layout, planned_at)
        if left:
            notes.append(f"{left} builds still due afterwards")
        if profile_to:
            stats = profiler.stats()
            stats.dump_stats(profile_to)
            for order in ("tottime", "cumulative"):
                text = io.StringIO()
                stats.stream = text
                stats.sort_stats(order).print_stats(30)
                heading = f"  cProfile of the in-process run, every Python thread, by {order} ({profile_to}):"
                log(f"{heading}\n{text.getvalue()}")
        return Run(seconds, report.updated, counts, fetch_calls, cpu.used, "; ".join(notes))

    def full(self, n: int) -> Run:
        self.fresh_builds(n)
        sync_function = self.stack.functions["sync"]
        seen = {name: len(f.log_events()) for name, f in self.stack.functions.items()}
        timeout = self.args.full_timeout or max(120.0, n / 20)
        with CpuMeter(self.pgids()) as cpu:
            started_wall = time.time()
            started = time.perf_counter()
            self.stack.publish(self.stack.topics.trigger, SyncTrigger().to_json())
            deadline = started + timeout
            updated, last_event_time, note = 0, None, ""
            while True:
                events = [e for e in sync_function.log_events()[seen["sync"] :] if e.get("message") == "synced batch"]
                updated = sum(e.get("updated", 0) for e in events)
                if events:
                    last_event_time = events[-1].get("time")
                if updated >= n:
                    seconds = time.perf_counter() - started
                    break
                if time.perf_counter() > deadline:
                    seconds = float("nan")
                    note = f"timed out after {timeout:.0f}s with {updated} of {n} builds updated"
                    break
                time.sleep(0.2)
        if last_event_time and updated >= n:
            # The last log line's own time, rather than when the poll saw it.
            logged = datetime.datetime.fromisoformat(last_event_time).timestamp() - started_wall
            if 0 < logged <= seconds:
                seconds = logged
        errors = [
            e
            for name, f in self.stack.functions.items()
            for e in f.log_events()[seen[name] :]
            if e.get("severity") in ("ERROR", "CRITICAL") or e.get("retry")
        ]
        if errors:
            note += f"; {len(errors)} error/retry log events, first: {errors[0].get('message')}"
        left = still_due(datastore.Client(project=PROJECT), self.layout, utc_now() - datetime.timedelta(seconds=1))
        if left:
            note += f"; {left} builds still due afterwards"
        return Run(seconds, updated, collections.Counter(), len(self.server.backend.calls), cpu.used, note.strip("; "))

    def memory(self) -> dict[str, float]:
        """sync_batch of one batch in a fresh process: RSS growth, then tracemalloc peak (each on fresh builds)."""
        n = self.args.memory_batch
        results = {}
        for mode in ("rss", "tracemalloc"):
            self.datastore_emulator.reset()
            due_at = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)
            seed(datastore.Client(project=PROJECT), self.layout, n, due_at, project="bench-memory")
            command = [
                sys.executable,
                "-m",
                "tools.bench_memory",
                f"--backend-host={self.server.hostname}",
                f"--backend={BACKEND}",
                "--project=bench-memory",
                f"--first-id={FIRST_BUILD_ID}",
                f"--count={n}",
                f"--planned-at={utc_now().isoformat()}",
            ]
            if mode == "tracemalloc":
                command.append("--tracemalloc")
            stdout, stderr, returncode = run_child(command, timeout=600)
            if returncode != 0:
                raise RuntimeError(f"tools.bench_memory failed:\n{stderr[-3000:]}")
            result = json.loads(stdout.strip().splitlines()[-1])
            if result["counts"]["updated"] != n:
                log(f"  warning: the memory run updated {result['counts']['updated']} of {n} builds")
            if mode == "rss":
                results.update(
                    rss_after_imports_mib=result["after_imports_mib"],
                    rss_baseline_mib=result["baseline_mib"],
                    rss_peak_mib=result["peak_mib"],
                    rss_growth_mib=result["peak_mib"] - result["baseline_mib"],
                    hwm_growth_mib=result["hwm_during_mib"] - result["rss_before_mib"],
                    rss_before_mib=result["rss_before_mib"],
                    hwm_during_mib=result["hwm_during_mib"],
                    seconds=result["seconds"],
                )
            else:
                results["tracemalloc_peak_mib"] = result["tracemalloc_peak_mib"]
        return results


# Child processes running now, killed if the benchmark is interrupted; once
# stopping, no new one starts (the worker thread may still be running).
_CHILDREN: set[subprocess.Popen] = set()
_CHILDREN_LOCK = threading.Lock()
_STOPPING = threading.Event()


def run_child(command: list[str], timeout: float) -> tuple[str, str, int]:
    with _CHILDREN_LOCK:
        if _STOPPING.is_set():
            raise RuntimeError("the benchmark is stopping")
        process = subprocess.Popen(
            command, cwd=REPO, env=python_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        _CHILDREN.add(process)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        with _CHILDREN_LOCK:
            _CHILDREN.discard(process)
    return stdout, stderr, process.returncode


def kill_children() -> None:
    with _CHILDREN_LOCK:
        _STOPPING.set()
        for process in list(_CHILDREN):
            if process.poll() is None:
                process.kill()


def python_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "shared"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def cold_starts(runs: int) -> dict[str, list[float]]:
    """Seconds to import each function's main.py in a fresh interpreter (one untimed run first, for .pyc files)."""
    times: dict[str, list[float]] = {}
    for name in FUNCTIONS:
        code = f"import sys; sys.path.insert(0, 'functions/{name}'); import main"
        command = [sys.executable, "-c", code]
        times[name] = []
        for attempt in range(runs + 1):
            started = time.perf_counter()
            _, stderr, returncode = run_child(command, timeout=120)
            if returncode != 0:
                raise RuntimeError(f"importing functions/{name}/main.py failed:\n{stderr[-3000:]}")
            if attempt:
                times[name].append(time.perf_counter() - started)
    return times


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def log(message: str) -> None:
    if _STOPPING.is_set() and threading.current_thread() is not threading.main_thread():
        return  # the interrupted worker thread's last words would only confuse
    print(message, file=sys.stderr, flush=True)


# --- output -------------------------------------------------------------------------


class Results:
    """Figures as (metric, n, value, unit) rows; the table and the CSV are made from them."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, int | str, float, str]] = []
        self.notes: list[str] = []
        self.spreads: dict[tuple[str, int], str] = {}

    def add(self, metric: str, n: int | str, value: float, unit: str) -> None:
        self.rows.append((metric, n, value, unit))

    def get(self, metric: str, n: int | str) -> float | None:
        for m, size, value, _ in self.rows:
            if m == metric and size == n:
                return value
        return None

    def write_csv(self, path: pathlib.Path) -> None:
        with open(path, "w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["metric", "n", "value", "unit", "target", "result"])
            for metric, n, value, unit in self.rows:
                key = target_key(metric)
                writer.writerow([metric, n, f"{value:.6g}", unit, target_text(key), meets(key, value)])


def add_run(results: Results, kind: str, n: int, run: Run, floor: Run | None, batches: int) -> None:
    results.add(f"{kind}_seconds", n, run.seconds, "s")
    results.add(f"{kind}_builds_per_second", n, run.rate, "builds/s")
    # CPU of everything the run itself used (this process with the TaskBackend,
    # the emulators, the functions), not of other work on the machine.
    own_cpu = sum(seconds for name, seconds in run.cpu.items() if name != "other processes")
    results.add(f"{kind}_own_cpu_per_1000_builds", n, own_cpu * 1000 / n, "cpu s")
    if floor is not None and kind != "floor":
        results.add(f"{kind}_floor_ratio", n, run.rate / floor.rate, "ratio")
        floor_cpu = sum(seconds for name, seconds in floor.cpu.items() if name != "other processes")
        results.add(f"{kind}_floor_cpu_ratio", n, floor_cpu / own_cpu if own_cpu else float("nan"), "ratio")
    for name, seconds in run.cpu.items():
        results.add(f"{kind}_cpu_{name.replace(' ', '_')}", n, seconds, "cpu s")
    if kind != "floor":
        results.add(f"{kind}_fetch_calls", n, run.fetch_calls, "calls")
        results.add(f"{kind}_fetch_calls_per_1000_builds", n, run.fetch_calls * 1000 / n, "calls")
        results.add(f"{kind}_fetch_calls_per_batch", n, run.fetch_calls / batches, "calls")
    if run.counts:
        for name in (
            "entity_reads",
            "plain_entity_reads",
            "txn_entity_reads",
            "entity_writes",
            "query_rpcs",
            "query_results",
            "lookup_rpcs",
            "transactions",
            "begin_rpcs",
            "commit_rpcs",
            "rollbacks",
        ):
            results.add(f"{kind}_{name}_per_build", n, run.counts[name] / n, "per build")
        for name in ("plain_lookup", "txn_lookup", "begin", "commit", "query", "rollback"):
            results.add(f"{kind}_{name}_rpc_seconds", n, run.counts[f"{name}_rpc_seconds"], "s summed over threads")
    if run.note:
        results.notes.append(f"{kind} N={n}: {run.note}")


TABLE_ROWS = [
    # (label, metric, format, target key)
    ("in-process  builds/s", "inprocess_builds_per_second", "{:.0f}", None),
    ("            seconds", "inprocess_seconds", "{:.2f}", None),
    ("            / floor", "inprocess_floor_ratio", "{:.2f}", "inprocess_floor_ratio"),
    ("full        builds/s", "full_builds_per_second", "{:.0f}", None),
    ("            seconds", "full_seconds", "{:.2f}", None),
    ("            / floor", "full_floor_ratio", "{:.2f}", "full_floor_ratio"),
    ("floor       builds/s", "floor_builds_per_second", "{:.0f}", None),
    ("            seconds", "floor_seconds", "{:.2f}", None),
    ("own CPU s / 1000 builds: in-process", "inprocess_own_cpu_per_1000_builds", "{:.2f}", None),
    ("  full", "full_own_cpu_per_1000_builds", "{:.2f}", None),
    ("  floor", "floor_own_cpu_per_1000_builds", "{:.2f}", None),
    ("floor CPU / pipeline CPU (noise-free): in-proc", "inprocess_floor_cpu_ratio", "{:.2f}", None),
    ("  full", "full_floor_cpu_ratio", "{:.2f}", None),
    ("per build (in-process): entity reads", "inprocess_entity_reads_per_build", "{:.2f}", "entity_reads_per_build"),
    ("  entity writes", "inprocess_entity_writes_per_build", "{:.2f}", None),
    ("  lookup RPCs", "inprocess_lookup_rpcs_per_build", "{:.3f}", None),
    ("  queries (RPCs)", "inprocess_query_rpcs_per_build", "{:.4f}", None),
    ("  transactions", "inprocess_transactions_per_build", "{:.3f}", None),
    ("  commits", "inprocess_commit_rpcs_per_build", "{:.3f}", None),
    ("  of which inside transactions", "inprocess_txn_entity_reads_per_build", "{:.2f}", None),
    ("per build (floor): entity reads", "floor_entity_reads_per_build", "{:.2f}", None),
    ("  entity writes", "floor_entity_writes_per_build", "{:.2f}", None),
    ("  transactions", "floor_transactions_per_build", "{:.3f}", None),
    (
        "FetchTasks calls / 1000 builds (in-process)",
        "inprocess_fetch_calls_per_1000_builds",
        "{:.1f}",
        "fetch_calls_per_1000_builds",
    ),
    (
        "FetchTasks calls / 1000 builds (full)",
        "full_fetch_calls_per_1000_builds",
        "{:.1f}",
        "fetch_calls_per_1000_builds",
    ),
    ("FetchTasks calls / minimum batches (in-proc)", "inprocess_fetch_calls_per_batch", "{:.2f}", None),
    ("FetchTasks calls / minimum batches (full)", "full_fetch_calls_per_batch", "{:.2f}", None),
    ("RPC s in-process (sum over threads): lookup", "inprocess_plain_lookup_rpc_seconds", "{:.1f}", None),
    ("  lookup in transactions", "inprocess_txn_lookup_rpc_seconds", "{:.1f}", None),
    ("  begin transaction", "inprocess_begin_rpc_seconds", "{:.1f}", None),
    ("  commit", "inprocess_commit_rpc_seconds", "{:.1f}", None),
    ("  query", "inprocess_query_rpc_seconds", "{:.1f}", None),
    ("RPC s floor (sum over threads): lookup", "floor_plain_lookup_rpc_seconds", "{:.1f}", None),
    ("  begin transaction", "floor_begin_rpc_seconds", "{:.1f}", None),
    ("  commit", "floor_commit_rpc_seconds", "{:.1f}", None),
    ("  query", "floor_query_rpc_seconds", "{:.1f}", None),
    ("CPU s in-process: benchmark process", "inprocess_cpu_benchmark_process", "{:.1f}", None),
    ("  datastore emulator", "inprocess_cpu_datastore_emulator", "{:.1f}", None),
    ("CPU s floor: benchmark process", "floor_cpu_benchmark_process", "{:.1f}", None),
    ("  datastore emulator", "floor_cpu_datastore_emulator", "{:.1f}", None),
    ("CPU s full: function sync", "full_cpu_function_sync", "{:.1f}", None),
    ("  function shard + planner", "full_cpu_function_shard+planner", "{:.1f}", None),
    ("  datastore emulator", "full_cpu_datastore_emulator", "{:.1f}", None),
    ("  pubsub emulator", "full_cpu_pubsub_emulator", "{:.1f}", None),
    ("CPU s other processes (noise): in-process", "inprocess_cpu_other_processes", "{:.1f}", None),
    ("  floor", "floor_cpu_other_processes", "{:.1f}", None),
    ("  full", "full_cpu_other_processes", "{:.1f}", None),
]


def print_table(results: Results, sizes: list[int], out=sys.stdout) -> None:
    width = 46
    header = f"{'':<{width}}" + "".join(f"{'N=' + str(n):>11}" for n in sizes) + f"{'target':>10}"
    print(header, file=out)
    print("-" * len(header), file=out)
    for label, metric, fmt, target_key in TABLE_ROWS:
        values = [results.get(metric, n) for n in sizes]
        if all(v is None for v in values):
            continue
        cells = []
        for v in values:
            text = "-" if v is None or (isinstance(v, float) and math.isnan(v)) else fmt.format(v)
            if target_key and meets(target_key, v) == "MISSED":
                text += "!"
            cells.append(f"{text:>11}")
        print(f"{label:<{width}}" + "".join(cells) + f"{target_text(target_key) if target_key else '':>10}", file=out)
    print("(! = target missed; throughput and CPU rows are from the median run of each kind)", file=out)
    if results.spreads:
        print("\nseconds of every run (median reported):", file=out)
        for (kind, n), spread in results.spreads.items():
            print(f"  N={n:<7} {kind:<10} {spread}", file=out)


def print_singles(results: Results, memory: dict | None, colds: dict | None, out=sys.stdout) -> None:
    if memory:
        m = memory
        print(
            f"\nsync_batch of one {results.memory_n}-build batch in a fresh process ({m['seconds']:.2f}s, "
            f"target < 256 MiB: {meets('sync_batch_peak_rss_mib', m['hwm_during_mib'])}):\n"
            f"  RSS just before the sync {m['rss_before_mib']:.1f} MiB (imports, clients, channels), "
            f"peak during it {m['hwm_during_mib']:.1f} MiB: the sync's own +{m['hwm_growth_mib']:.1f} MiB\n"
            "  tracemalloc peak (Python objects only; misses protobuf's and gRPC's C memory) "
            f"{m['tracemalloc_peak_mib']:.1f} MiB\n"
            f"  ru_maxrss: after imports {m['rss_after_imports_mib']:.1f} MiB, peak {m['rss_peak_mib']:.1f} MiB "
            f"(+{m['rss_growth_mib']:.1f}); not used: on Linux it keeps the high-water mark of the forked parent",
            file=out,
        )
    if colds:
        print("\ncold start (import functions/NAME/main.py in a fresh interpreter):", file=out)
        for name, times in colds.items():
            median = statistics.median(times)
            spread = ", ".join(f"{t:.2f}" for t in times)
            print(
                f"  {name:<8} median {median:.2f}s  ({spread})   target < 1.5 s: {meets('cold_start_seconds', median)}",
                file=out,
            )
    for note in results.notes:
        print(f"NOTE {note}", file=out)


def plot(results: Results, sizes: list[int], path: pathlib.Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"plot: SKIPPED, matplotlib is not installed (pip install -r requirements-bench.txt); no {path}")
        return False
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    for kind, label, style in (
        ("inprocess", "in-process pipeline", "o-"),
        ("full", "Pub/Sub + functions", "s-"),
        ("floor", "Datastore floor", "^--"),
    ):
        points = [(n, results.get(f"{kind}_seconds", n), results.get(f"{kind}_builds_per_second", n)) for n in sizes]
        points = [p for p in points if p[1] is not None and not math.isnan(p[1])]
        if not points:
            continue
        left.plot([p[0] for p in points], [p[1] for p in points], style, label=label)
        right.plot([p[0] for p in points], [p[2] for p in points], style, label=label)
    left.set(xlabel="due builds N", ylabel="sync time (s)", title="Sync time against N")
    right.set(xlabel="due builds N", ylabel="builds / second", title="Throughput")
    for axes in (left, right):
        axes.set_xscale("log")
        axes.grid(True, which="both", alpha=0.3)
        axes.legend()
    left.set_yscale("log")
    right.set_ylim(bottom=0)
    fig.suptitle(f"buildsync on the Datastore emulator ({os.cpu_count()} cores)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# --- main ---------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", default="1000,5000,20000", help="comma-separated build counts (default 1000,5000,20000)"
    )
    parser.add_argument("--out", default="bench-results", help="directory for benchmark.csv and sync_time.png")
    parser.add_argument("--projects", type=int, default=4, help="projects the builds are spread over (default 4)")
    parser.add_argument("--shards", type=int, default=4, help="shards per project (default 4)")
    parser.add_argument(
        "--workers", type=int, default=DEFAULT_WORKERS, help="pipeline workers (default: the pipeline's)"
    )
    parser.add_argument("--skip-full", action="store_true", help="skip the Pub/Sub + functions pipeline")
    parser.add_argument(
        "--full-timeout", type=float, default=0, help="seconds to wait for a full run (default max(120, N/20))"
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="runs of each kind per size; the median is reported (default 3)"
    )
    parser.add_argument("--warmup", type=int, default=500, help="builds for an untimed warm-up pass (0: none)")
    parser.add_argument("--memory-batch", type=int, default=MAX_BATCH_SIZE, help="builds in the memory run's batch")
    parser.add_argument("--cold-start-runs", type=int, default=3, help="timed imports per function (default 3)")
    parser.add_argument(
        "--profile", action="store_true", help="also cProfile an extra in-process run of the largest size"
    )
    args = parser.parse_args(argv)
    args.sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    if not args.sizes or min(args.sizes) <= 0:
        parser.error("--sizes needs positive build counts")
    return args


def measure(args: argparse.Namespace, bench: Bench, results: Results, out_dir: pathlib.Path) -> dict:
    """Every run that needs the emulators; returns the memory figures."""
    bench.warm_up()
    kinds = ["floor", "inprocess"] + ([] if args.skip_full else ["full"])
    labels = {"floor": "floor", "inprocess": "in-process", "full": "full (Pub/Sub + functions)"}
    for n in args.sizes:
        runs: dict[str, list[Run]] = {kind: [] for kind in kinds}
        for repeat in range(args.repeats):
            for kind in kinds:  # interleaved, so that a burst of outside load hits each kind alike
                log(f"N={n} run {repeat + 1}/{args.repeats}: {labels[kind]}")
                run = {"floor": bench.floor, "inprocess": bench.in_process, "full": bench.full}[kind](n)
                runs[kind].append(run)
                note = f" [{run.note}]" if run.note else ""
                other = run.cpu.get("other processes", 0)
                log(f"  {run.seconds:.2f}s = {run.rate:.0f} builds/s (other processes used {other:.1f} CPU s){note}")
        # The median run of each kind (by time) stands for it; a timed-out run counts as slowest.
        chosen = {
            kind: sorted(rs, key=lambda r: (math.isnan(r.seconds), r.seconds))[len(rs) // 2]
            for kind, rs in runs.items()
        }
        batches = minimum_batches(bench.layout, n)
        for kind in kinds:
            run = chosen[kind]
            if kind == "full":
                run.cpu["function shard+planner"] = run.cpu.pop("function shard", 0) + run.cpu.pop(
                    "function planner", 0
                )
            add_run(results, kind, n, run, chosen["floor"] if kind != "floor" else None, batches)
            for index, r in enumerate(runs[kind], 1):
                results.add(f"{kind}_seconds_run{index}", n, r.seconds, "s")
            results.spreads[(kind, n)] = ", ".join(f"{r.seconds:.2f}" for r in runs[kind])
        summary = ", ".join(
            f"{labels[k]} {chosen[k].rate:.0f}/s"
            + ("" if k == "floor" else f" ({chosen[k].rate / chosen['floor'].rate:.2f} of floor)")
            for k in kinds
        )
        log(f"N={n} medians: {summary}")
    if args.profile:
        n = max(args.sizes)
        log(f"N={n}: profiled in-process run (not reported)")
        bench.in_process(n, profile_to=out_dir / f"inprocess-{n}.prof")
    log(f"memory: sync_batch of {args.memory_batch} builds in a fresh process")
    memory = bench.memory()
    results.add("sync_batch_peak_rss_mib", args.memory_batch, memory["hwm_during_mib"], "MiB")
    results.add("sync_batch_rss_growth_mib", args.memory_batch, memory["hwm_growth_mib"], "MiB")
    results.add("sync_batch_ru_maxrss_mib", args.memory_batch, memory["rss_peak_mib"], "MiB")
    results.add("sync_batch_ru_maxrss_growth_mib", args.memory_batch, memory["rss_growth_mib"], "MiB")
    results.add("sync_batch_tracemalloc_peak_mib", args.memory_batch, memory["tracemalloc_peak_mib"], "MiB")
    return memory


def check_stopped(groups: dict[str, int]) -> bool:
    """Says whether any process of the groups this run started is still alive."""
    deadline = time.monotonic() + 10
    while True:
        left = {name: pgid for name, pgid in groups.items() if live_members(pgid)}
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    if left:
        log(
            "WARNING: still running after the stop: "
            + ", ".join(f"{n} (process group {p}: pids {live_members(p)})" for n, p in left.items())
        )
        return False
    log(f"checked: none of the {len(groups)} process groups this run started is still running")
    return True


def live_members(pgid: int) -> list[int]:
    return [pid for pid, fields in proc_stats() if int(fields[2]) == pgid and fields[0] != "Z"]


def run_in_thread(work):
    """Runs `work` in a worker thread while the main thread waits, so that Ctrl-C
    and SIGTERM reach the main thread at once instead of waiting for thread pools."""
    outcome: dict = {}

    def target() -> None:
        try:
            outcome["value"] = work()
        except BaseException as error:  # re-raised in the main thread
            outcome["error"] = error

    thread = threading.Thread(target=target, name="benchmark", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(0.5)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out_dir = pathlib.Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)

    def terminate(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    def ignore_signals() -> None:
        # A second Ctrl-C must not cut the stopping short and leave a process behind.
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)

    original_sigint = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGHUP, terminate)
    results = Results()
    results.memory_n = args.memory_batch
    interrupted = False
    started: dict[str, int] = {}
    with contextlib.ExitStack() as stack_exit:
        stack_exit.callback(log, "stopped the emulators, the TaskBackend and the functions")
        bench = Bench(args, stack_exit)
        try:
            bench.start(full=not args.skip_full)
            started.update(bench.started_groups())
            stack_exit.callback(ignore_signals)  # runs first when the stack unwinds
            memory = run_in_thread(lambda: measure(args, bench, results, out_dir))
        except EmulatorUnavailable as error:
            log(f"cannot start an emulator: {error}")
            return 2
        except KeyboardInterrupt:
            ignore_signals()
            started.update(bench.started_groups())
            kill_children()
            log("\ninterrupted; stopping everything this benchmark started")
            interrupted = True
        except BaseException:
            log(f"the benchmark failed; the functions' logs and the settings are kept in {bench.workdir}")
            raise
    # Reached only without an error: the functions' logs are of no further use.
    shutil.rmtree(bench.workdir, ignore_errors=True)
    signal.signal(signal.SIGINT, original_sigint)
    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGHUP, terminate)
    check_stopped(started)
    if interrupted:
        # Worker threads may still be blocked on the stopped emulator; don't wait for them.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    try:
        log("cold starts (with the emulators stopped)")
        colds = run_in_thread(lambda: cold_starts(args.cold_start_runs))
    except KeyboardInterrupt:
        kill_children()
        log("\ninterrupted")
        return 130
    for name, times in colds.items():
        results.add(f"cold_start_{name}", "", statistics.median(times), "s (median)")

    print()
    print_table(results, args.sizes)
    print_singles(results, memory, colds)
    results.write_csv(out_dir / "benchmark.csv")
    print(f"\nCSV: {out_dir / 'benchmark.csv'}")
    if plot(results, args.sizes, out_dir / "sync_time.png"):
        print(f"plot: {out_dir / 'sync_time.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
