"""Production latency: a delay proxy in front of the Datastore emulator adds D ms to every RPC.

The emulator answers in microseconds; Datastore in milliseconds. With D ms on
every answer, what limits the sync is how many RPCs it keeps in flight, so
this profile reports, for D in LATENCY_DELAYS_MS:

- the time one sync function instance takes for one 1000-build batch
  (`sync_batch`, as `handle_batch` runs it) against its group workers;
- the in-process pipeline's builds per second over 4 such batches against the
  batches it keeps in flight.

The builds are seeded once, in a project of their own; each run plans a day
later than the last and the TaskBackend raises every task's update_id, so
every run finds every build due and writes it, as a first sync would.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import time

from buildsync.proto import buildbucket_pb2 as pb
from buildsync.remote.backend import BackendPool
from buildsync.stages.messages import MAX_BATCH_SIZE, SyncBatch, SyncTrigger
from buildsync.stages.pipeline import DEFAULT_WORKERS, run_pipeline
from buildsync.stages.sync import DEFAULT_GROUP_WORKERS, Syncer, SyncOptions, sync_batch

from tools.bench.environment import BenchEnvironment
from tools.bench.results import Results
from tools.bench.runs import utc_now
from tools.bench.seeding import BACKEND, FIRST_BUILD_ID, build_ids
from tools.delay_proxy import DelayProxy

LATENCY_DELAYS_MS = (0, 10, 30)
# Always with the defaults, which the headline figures are of.
GROUP_WORKER_CHOICES = tuple(sorted({4, 8, 16, DEFAULT_GROUP_WORKERS}))
BATCHES_IN_FLIGHT_CHOICES = tuple(sorted({1, 2, 4, DEFAULT_WORKERS}))
LATENCY_PROJECT = "bench-latency"
LATENCY_BATCHES = 4
# Ids of their own, after every size the throughput runs seed.
LATENCY_FIRST_ID = FIRST_BUILD_ID + 10**9


@dataclasses.dataclass
class LatencyFigures:
    batch_seconds: dict[tuple[int, int], float]  # (D ms, group workers) -> seconds
    builds_per_second: dict[tuple[int, int], float]  # (D ms, batches in flight) -> builds/s


class LatencyProfile:
    def __init__(self, env: BenchEnvironment) -> None:
        self.env = env
        self.ids = build_ids(LATENCY_BATCHES * MAX_BATCH_SIZE, LATENCY_FIRST_ID)
        self._runs = 0

    def _next_run(self) -> datetime.datetime:
        """Makes every build due and every task newer again; returns the planned_at of the next run."""
        self._runs += 1
        for build_id in self.ids:
            self.env.server.backend.set_task(f"task-{build_id}", pb.STARTED, update_id=self._runs + 1, target=BACKEND)
        self.env.server.backend.calls.clear()
        return utc_now() + datetime.timedelta(days=self._runs)

    def measure(self) -> LatencyFigures:
        self.env.seed_more(self.ids, LATENCY_PROJECT)
        figures = LatencyFigures({}, {})
        settings = self.env.settings
        backend = settings.backend(BACKEND)
        batch_ids = tuple(self.ids[:MAX_BATCH_SIZE])
        for delay_ms in LATENCY_DELAYS_MS:
            with (
                DelayProxy(self.env.datastore_emulator.host, delay_ms / 1000) as proxy,
                contextlib.closing(BackendPool(deadline_seconds=60)) as backends,
            ):
                client, _ = self.env.counting_client(host=proxy.host)
                fetcher = backends.get(backend.target, backend.hostname)
                for group_workers in GROUP_WORKER_CHOICES:
                    batch = SyncBatch(BACKEND, LATENCY_PROJECT, batch_ids, self._next_run())
                    started = time.perf_counter()
                    options = SyncOptions(group_workers=group_workers, transaction_begin=self.env.transaction_begin)
                    report = sync_batch(client, fetcher, backend, batch, options)
                    seconds = time.perf_counter() - started
                    figures.batch_seconds[(delay_ms, group_workers)] = seconds
                    self.env.log(
                        f"  D={delay_ms} ms, {group_workers} group workers: one batch in {seconds:.2f}s"
                        + ("" if report.updated == len(batch_ids) else f" [report: {report.counts()}]")
                    )
                for workers in BATCHES_IN_FLIGHT_CHOICES:
                    planned_at = self._next_run()
                    started = time.perf_counter()
                    report = run_pipeline(
                        Syncer(
                            client,
                            settings,
                            backends,
                            options=SyncOptions(transaction_begin=self.env.transaction_begin),
                        ),
                        SyncTrigger(BACKEND, LATENCY_PROJECT),
                        planned_at=planned_at,
                        workers=workers,
                    )
                    rate = report.updated / (time.perf_counter() - started)
                    figures.builds_per_second[(delay_ms, workers)] = rate
                    self.env.log(
                        f"  D={delay_ms} ms, {workers} batches in flight: {rate:.0f} builds/s"
                        + ("" if report.updated == len(self.ids) else f" [report: {report.counts()}]")
                    )
                client.close()
        return figures


def add_latency(results: Results, figures: LatencyFigures) -> None:
    for (delay_ms, group_workers), seconds in figures.batch_seconds.items():
        results.add(f"latency_batch_seconds_d{delay_ms}_g{group_workers}", MAX_BATCH_SIZE, seconds, "s")
    for (delay_ms, workers), rate in figures.builds_per_second.items():
        results.add(
            f"latency_builds_per_second_d{delay_ms}_w{workers}", LATENCY_BATCHES * MAX_BATCH_SIZE, rate, "builds/s"
        )
    for delay_ms in LATENCY_DELAYS_MS:
        # What one sync function instance does with the defaults.
        seconds = figures.batch_seconds.get((delay_ms, DEFAULT_GROUP_WORKERS))
        if seconds is not None:
            results.add(f"latency_batch_seconds_d{delay_ms}", MAX_BATCH_SIZE, seconds, "s")
        rate = figures.builds_per_second.get((delay_ms, DEFAULT_WORKERS))
        if rate is not None:
            results.add(f"latency_builds_per_second_d{delay_ms}", LATENCY_BATCHES * MAX_BATCH_SIZE, rate, "builds/s")
