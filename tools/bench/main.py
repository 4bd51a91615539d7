"""The command: arguments, the order of the runs, and stopping everything on every way out."""

from __future__ import annotations

import argparse
import collections
import contextlib
import math
import os
import pathlib
import shutil
import signal
import statistics
import sys

from buildsync.stages.messages import MAX_BATCH_SIZE
from buildsync.stages.pipeline import DEFAULT_WORKERS

import tools.bench
from tools.bench.backlog import DEFAULT_HOLD_MINUTES, TRIGGER_INTERVAL_SECONDS, add_backlog, hold_seconds, run_backlog
from tools.bench.cost import add_message_bytes
from tools.bench.environment import BenchEnvironment
from tools.bench.floor import FLOORS
from tools.bench.latency import LatencyProfile, add_latency
from tools.bench.plot import plot
from tools.bench.processes import Supervisor, run_in_thread
from tools.bench.results import Results, Run
from tools.bench.runs import Runs
from tools.bench.seeding import Layout
from tools.bench.singles import cold_starts, memory
from tools.bench.table import print_scenarios, print_singles, print_table
from tools.emulators import DATASTORE_KINDS, EmulatorUnavailable

LABELS = {
    "tight": "tight floor",
    "contract": "contract floor",
    "inprocess": "in-process",
    "full": "full (Pub/Sub + functions)",
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=tools.bench.__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", default="1000,5000,20000", help="comma-separated build counts (default 1000,5000,20000)"
    )
    parser.add_argument("--out", default="bench-results", help="directory for benchmark.csv and sync_time.png")
    parser.add_argument("--projects", type=int, default=4, help="projects the builds are spread over (default 4)")
    parser.add_argument("--shards", type=int, default=4, help="shards per project (default 4)")
    parser.add_argument(
        "--workers", type=int, default=DEFAULT_WORKERS, help="pipeline workers (default: the pipeline's)"
    )
    parser.add_argument(
        "--emulator",
        choices=DATASTORE_KINDS,
        default="firestore",
        help="the Firestore emulator in Datastore mode (default: it locks pessimistically as production does; its "
        "transactions begin explicitly, BUILDSYNC_TRANSACTION_BEGIN=explicit) or the legacy Datastore emulator",
    )
    parser.add_argument("--skip-full", action="store_true", help="skip the Pub/Sub + functions pipeline")
    parser.add_argument("--skip-latency", action="store_true", help="skip the production-latency profile")
    parser.add_argument("--skip-backlog", action="store_true", help="skip the backlog scenario")
    parser.add_argument(
        "--backlog-hold-minutes",
        type=float,
        default=DEFAULT_HOLD_MINUTES,
        help="how long the backlog holds the sync stage back, in production minutes (default 5; more than the "
        "10-minute cut-off shows messages dropped as too old)",
    )
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


def median_run(runs: list[Run]) -> Run:
    """The median run by time; a timed-out run counts as slowest."""
    return sorted(runs, key=lambda r: (math.isnan(r.seconds), r.seconds))[len(runs) // 2]


def measure(args: argparse.Namespace, env: BenchEnvironment, supervisor: Supervisor, results: Results) -> dict:
    """Every run that needs the emulators; returns the memory figures."""
    log = supervisor.log
    runs_of = Runs(env, args.workers, args.full_timeout)
    runs_of.warm_up(args.warmup)
    for n in args.sizes:
        runs: dict[str, list[Run]] = collections.defaultdict(list)
        for repeat in range(args.repeats):
            # Interleaved, so that a burst of outside load hits each kind alike.
            log(f"N={n} run {repeat + 1}/{args.repeats}: the floors, then the in-process pipeline")
            measured = runs_of.floors_then_pipeline(n)
            if not args.skip_full:
                log(f"N={n} run {repeat + 1}/{args.repeats}: {LABELS['full']}")
                measured["full"] = runs_of.full(n)
            for kind, run in measured.items():
                runs[kind].append(run)
                note = f" [{run.note}]" if run.note else ""
                other = run.cpu.get("other processes", 0)
                log(f"  {LABELS[kind]}: {run.seconds:.2f}s = {run.rate:.0f} builds/s (others: {other:.1f} CPU s){note}")
        chosen = {kind: median_run(rs) for kind, rs in runs.items()}
        floors = {kind: chosen[kind] for kind in FLOORS}
        batches = env.layout.minimum_batches(n)
        for kind, run in chosen.items():
            results.add_run(kind, n, run, {} if kind in FLOORS else floors, batches)
            for index, r in enumerate(runs[kind], 1):
                results.add(f"{kind}_seconds_run{index}", n, r.seconds, "s")
            results.spreads[(kind, n)] = ", ".join(f"{r.seconds:.2f}" for r in runs[kind])
        summary = ", ".join(
            f"{LABELS[k]} {run.rate:.0f}/s"
            + ("" if k in FLOORS else "".join(f" ({run.rate / floors[f].rate:.2f} of {f})" for f in FLOORS))
            for k, run in chosen.items()
        )
        log(f"N={n} medians: {summary}")
    results.add("layout_shard_jobs", "", env.layout.projects * env.layout.shards, "shard jobs per trigger")
    add_message_bytes(results)
    if not args.skip_latency:
        log("latency profile: a delay proxy in front of the Datastore emulator")
        add_latency(results, LatencyProfile(env).measure())
    if not args.skip_backlog:
        held = hold_seconds(args.backlog_hold_minutes)
        log(f"backlog: the sync stage held {held:.0f}s under a trigger every {TRIGGER_INTERVAL_SECONDS:.0f}s")
        add_backlog(results, run_backlog(env, args.backlog_hold_minutes))
    if args.profile:
        n = max(args.sizes)
        log(f"N={n}: profiled in-process run (not reported)")
        runs_of.in_process(n, profile_to=pathlib.Path(args.out) / f"inprocess-{n}.prof")
    log(f"memory: sync_batch of {args.memory_batch} builds in a fresh process")
    figures = memory(env, supervisor, args.memory_batch)
    results.add("sync_batch_peak_rss_mib", args.memory_batch, figures["hwm_during_mib"], "MiB")
    results.add("sync_batch_rss_growth_mib", args.memory_batch, figures["hwm_growth_mib"], "MiB")
    results.add("sync_batch_ru_maxrss_mib", args.memory_batch, figures["rss_peak_mib"], "MiB")
    results.add("sync_batch_ru_maxrss_growth_mib", args.memory_batch, figures["rss_growth_mib"], "MiB")
    results.add("sync_batch_tracemalloc_peak_mib", args.memory_batch, figures["tracemalloc_peak_mib"], "MiB")
    return figures


def _terminate(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def _ignore_signals() -> None:
    # A second Ctrl-C must not cut the stopping short and leave a process behind.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out_dir = pathlib.Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    supervisor = Supervisor()
    log = supervisor.log
    original_sigint = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    results = Results()
    interrupted = False
    started: dict[str, int] = {}
    layout = Layout(args.projects, args.shards)
    with contextlib.ExitStack() as exit_stack:
        exit_stack.callback(log, "stopped the emulators, the TaskBackend and the functions")
        env = BenchEnvironment(
            layout,
            exit_stack,
            supervisor,
            task_count=max(args.sizes + [args.memory_batch]),
            datastore_kind=args.emulator,
        )
        try:
            env.start(full=not args.skip_full, pubsub=not args.skip_backlog)
            started.update(env.process_groups())
            exit_stack.callback(_ignore_signals)  # runs first when the stack unwinds
            figures = run_in_thread(lambda: measure(args, env, supervisor, results))
        except EmulatorUnavailable as error:
            log(f"cannot start an emulator: {error}")
            return 2
        except KeyboardInterrupt:
            _ignore_signals()
            started.update(env.process_groups())
            supervisor.kill_children()
            log("\ninterrupted; stopping everything this benchmark started")
            interrupted = True
        except BaseException:
            log(f"the benchmark failed; the functions' logs and the settings are kept in {env.workdir}")
            raise
    # Reached only without an error: the functions' logs are of no further use.
    shutil.rmtree(env.workdir, ignore_errors=True)
    signal.signal(signal.SIGINT, original_sigint)
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    supervisor.check_stopped(started)
    if interrupted:
        # Worker threads may still be blocked on the stopped emulator; don't wait for them.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    try:
        log("cold starts (with the emulators stopped)")
        colds = run_in_thread(lambda: cold_starts(supervisor, args.cold_start_runs))
    except KeyboardInterrupt:
        supervisor.kill_children()
        log("\ninterrupted")
        return 130
    for name, times in colds.items():
        results.add(f"cold_start_{name}", "", statistics.median(times), "s (median)")

    print()
    print_table(results, args.sizes)
    print_scenarios(results)
    print_singles(results, figures, args.memory_batch, colds)
    results.write_csv(out_dir / "benchmark.csv")
    print(f"\nCSV: {out_dir / 'benchmark.csv'}")
    if plot(results, args.sizes, out_dir / "sync_time.png", args.emulator):
        print(f"plot: {out_dir / 'sync_time.png'}")
    return 0
