"""The measured runs: the two floors, the in-process pipeline, and the full Pub/Sub + functions pipeline."""

from __future__ import annotations

import collections
import contextlib
import datetime
import pathlib
import time

from buildsync.remote.backend import BackendPool
from buildsync.stages.messages import SyncTrigger
from buildsync.stages.pipeline import run_pipeline
from buildsync.stages.sync import Syncer, SyncOptions

from tools.bench.cpu import CpuMeter
from tools.bench.environment import BenchEnvironment
from tools.bench.floor import FLOOR_THREADS, FLOORS, run_floor
from tools.bench.profiler import ThreadsProfiler
from tools.bench.results import Run
from tools.bench.seeding import BACKEND, still_due

# Seconds between looks at the sync function's log while a full run goes on.
FULL_POLL_SECONDS = 0.2


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


class Runs:
    """Each method seeds fresh builds, runs one kind over them, and returns the measured Run."""

    def __init__(self, env: BenchEnvironment, workers: int, full_timeout: float) -> None:
        self.env = env
        self.workers = workers
        self.full_timeout = full_timeout

    def warm_up(self, n: int) -> None:
        """One small untimed pass of each kind, so that neither the JVM's JIT nor the
        functions' first event (clients, settings, channels) is billed to the first size."""
        if n <= 0:
            return
        self.env.log(f"warming up with {n} builds (not reported)")
        self.floors_then_pipeline(n)
        if self.env.stack is not None:
            run = self.full(n)
            if run.note:
                self.env.log(f"  warm-up of the full pipeline: {run.note}")

    def floors_then_pipeline(self, n: int) -> dict[str, Run]:
        """Each floor with each thread count, then the in-process pipeline, on the same N seeded builds.

        The floors write the builds back unchanged, so they stay due for the
        next floor and for the pipeline. A floor's Run is its best thread count;
        its other counts are in `tries`.
        """
        self.env.fresh_builds(n)
        runs: dict[str, Run] = {}
        for kind in FLOORS:
            tries = [self.floor(kind, n, threads) for threads in FLOOR_THREADS]
            best = min(tries, key=lambda run: run.seconds)
            best.tries = {run.threads: run.seconds for run in tries}
            runs[kind] = best
            self.env.log(f"  {kind} floor: " + ", ".join(f"{t} threads {s:.2f}s" for t, s in best.tries.items()))
        runs["inprocess"] = self.in_process(n, seeded=True)
        return runs

    def floor(self, kind: str, n: int, threads: int) -> Run:
        client, counter = self.env.counting_client()
        planned_at = utc_now()
        with CpuMeter(self.env.process_groups()) as cpu:
            started = time.perf_counter()
            written = run_floor(kind, client, self.env.layout, planned_at, threads, self.env.transaction_begin)
            seconds = time.perf_counter() - started
        note = "" if written == n else f"{kind} floor wrote {written} of {n} builds"
        return Run(seconds, n, counter.reset(), 0, cpu.used, note, threads=threads)

    def in_process(self, n: int, profile_to: pathlib.Path | None = None, seeded: bool = False) -> Run:
        """The in-process pipeline over N due builds (`seeded`: they are there already)."""
        if not seeded:
            self.env.fresh_builds(n)
        self.env.server.backend.calls.clear()
        client, counter = self.env.counting_client()
        planned_at = utc_now()
        profiler = ThreadsProfiler() if profile_to else contextlib.nullcontext()
        with (
            contextlib.closing(BackendPool(deadline_seconds=60)) as backends,
            CpuMeter(self.env.process_groups()) as cpu,
        ):
            started = time.perf_counter()
            with profiler:
                options = SyncOptions(transaction_begin=self.env.transaction_begin)
                report = run_pipeline(
                    Syncer(client, self.env.settings, backends, options=options),
                    SyncTrigger(BACKEND),
                    planned_at=planned_at,
                    workers=self.workers,
                )
            seconds = time.perf_counter() - started
        counts = counter.reset()
        fetch_calls = len(self.env.server.backend.calls)
        notes = []
        if report.updated != n or report.failed:
            notes.append(f"report: {report.counts()}")
        left = still_due(client, self.env.layout, planned_at)
        if left:
            notes.append(f"{left} builds still due afterwards")
        if profile_to:
            self.env.log(profiler.report(profile_to))
        return Run(seconds, report.updated, counts, fetch_calls, cpu.used, "; ".join(notes))

    def full(self, n: int) -> Run:
        """A SyncTrigger published to the planner's topic, timed until the sync function has logged N updates."""
        self.env.fresh_builds(n)
        stack = self.env.stack
        sync_function = stack.functions["sync"]
        seen = {name: len(f.log_events()) for name, f in stack.functions.items()}
        timeout = self.full_timeout or max(120.0, n / 20)
        with CpuMeter(self.env.process_groups()) as cpu:
            started_wall = time.time()
            started = time.perf_counter()
            stack.publish(stack.topics.trigger, SyncTrigger().to_json())
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
                time.sleep(FULL_POLL_SECONDS)
        if last_event_time and updated >= n:
            # The last log line's own time, rather than when the poll saw it.
            logged = datetime.datetime.fromisoformat(last_event_time).timestamp() - started_wall
            if 0 < logged <= seconds:
                seconds = logged
        errors = [
            e
            for name, f in stack.functions.items()
            for e in f.log_events()[seen[name] :]
            if e.get("severity") in ("ERROR", "CRITICAL") or e.get("retry")
        ]
        if errors:
            note += f"; {len(errors)} error/retry log events, first: {errors[0].get('message')}"
        left = still_due(self.env.client(), self.env.layout, utc_now() - datetime.timedelta(seconds=1))
        if left:
            note += f"; {left} builds still due afterwards"
        cpu.used["function shard+planner"] = cpu.used.pop("function shard", 0) + cpu.used.pop("function planner", 0)
        return Run(
            seconds, updated, collections.Counter(), len(self.env.server.backend.calls), cpu.used, note.strip("; ")
        )
