"""The printed table: one column per size, each row's target taken from TARGETS by its metric."""

from __future__ import annotations

import math
import statistics
import sys
from typing import TextIO

from tools.bench.latency import BATCHES_IN_FLIGHT_CHOICES, GROUP_WORKER_CHOICES, LATENCY_DELAYS_MS
from tools.bench.results import Results
from tools.bench.targets import target_text, verdict

# (label, metric, format)
TABLE_ROWS = [
    ("in-process  builds/s", "inprocess_builds_per_second", "{:.0f}"),
    ("            seconds", "inprocess_seconds", "{:.2f}"),
    ("            / tight floor", "inprocess_tight_floor_ratio", "{:.2f}"),
    ("            / contract floor", "inprocess_contract_floor_ratio", "{:.2f}"),
    ("full        builds/s", "full_builds_per_second", "{:.0f}"),
    ("            seconds", "full_seconds", "{:.2f}"),
    ("            / tight floor", "full_tight_floor_ratio", "{:.2f}"),
    ("            / contract floor", "full_contract_floor_ratio", "{:.2f}"),
    ("tight floor builds/s", "tight_builds_per_second", "{:.0f}"),
    ("            seconds (best)", "tight_seconds", "{:.2f}"),
    ("            best threads", "tight_best_threads", "{:.0f}"),
    ("contract floor builds/s", "contract_builds_per_second", "{:.0f}"),
    ("            seconds (best)", "contract_seconds", "{:.2f}"),
    ("            best threads", "contract_best_threads", "{:.0f}"),
    ("own CPU s / 1000 builds: in-process", "inprocess_own_cpu_per_1000_builds", "{:.2f}"),
    ("  full", "full_own_cpu_per_1000_builds", "{:.2f}"),
    ("  tight floor", "tight_own_cpu_per_1000_builds", "{:.2f}"),
    ("  contract floor", "contract_own_cpu_per_1000_builds", "{:.2f}"),
    ("contract floor CPU / in-process CPU", "inprocess_contract_floor_cpu_ratio", "{:.2f}"),
    ("per build (in-process): entity reads", "inprocess_entity_reads_per_build", "{:.2f}"),
    ("  entity writes", "inprocess_entity_writes_per_build", "{:.2f}"),
    ("  lookup RPCs", "inprocess_lookup_rpcs_per_build", "{:.3f}"),
    ("  queries (RPCs)", "inprocess_query_rpcs_per_build", "{:.4f}"),
    ("  transactions", "inprocess_transactions_per_build", "{:.3f}"),
    ("  commits", "inprocess_commit_rpcs_per_build", "{:.3f}"),
    ("  of which inside transactions", "inprocess_txn_entity_reads_per_build", "{:.2f}"),
    ("per build (tight floor): entity reads", "tight_entity_reads_per_build", "{:.2f}"),
    ("  entity writes", "tight_entity_writes_per_build", "{:.2f}"),
    ("per build (contract floor): entity reads", "contract_entity_reads_per_build", "{:.2f}"),
    ("  transactions", "contract_transactions_per_build", "{:.3f}"),
    ("FetchTasks calls / 1000 builds (in-process)", "inprocess_fetch_calls_per_1000_builds", "{:.1f}"),
    ("FetchTasks calls / 1000 builds (full)", "full_fetch_calls_per_1000_builds", "{:.1f}"),
    ("FetchTasks calls / minimum batches (in-proc)", "inprocess_fetch_calls_per_batch", "{:.2f}"),
    ("FetchTasks calls / minimum batches (full)", "full_fetch_calls_per_batch", "{:.2f}"),
    ("RPC s in-process (sum over threads): lookup", "inprocess_plain_lookup_rpc_seconds", "{:.1f}"),
    ("  lookup in transactions", "inprocess_txn_lookup_rpc_seconds", "{:.1f}"),
    ("  begin transaction", "inprocess_begin_rpc_seconds", "{:.1f}"),
    ("  commit", "inprocess_commit_rpc_seconds", "{:.1f}"),
    ("  query", "inprocess_query_rpc_seconds", "{:.1f}"),
    ("RPC s contract floor: lookup", "contract_plain_lookup_rpc_seconds", "{:.1f}"),
    ("  lookup in transactions", "contract_txn_lookup_rpc_seconds", "{:.1f}"),
    ("  commit", "contract_commit_rpc_seconds", "{:.1f}"),
    ("CPU s in-process: benchmark process", "inprocess_cpu_benchmark_process", "{:.1f}"),
    ("  datastore emulator", "inprocess_cpu_datastore_emulator", "{:.1f}"),
    ("CPU s contract floor: benchmark process", "contract_cpu_benchmark_process", "{:.1f}"),
    ("  datastore emulator", "contract_cpu_datastore_emulator", "{:.1f}"),
    ("CPU s full: function sync", "full_cpu_function_sync", "{:.1f}"),
    ("  function shard + planner", "full_cpu_function_shard+planner", "{:.1f}"),
    ("  datastore emulator", "full_cpu_datastore_emulator", "{:.1f}"),
    ("  pubsub emulator", "full_cpu_pubsub_emulator", "{:.1f}"),
    ("CPU s other processes (noise): in-process", "inprocess_cpu_other_processes", "{:.1f}"),
    ("  contract floor", "contract_cpu_other_processes", "{:.1f}"),
    ("  full", "full_cpu_other_processes", "{:.1f}"),
]
LABEL_WIDTH = 46


def _cell(metric: str, value: float | None, fmt: str) -> str:
    if value is None or math.isnan(value):
        return "-"
    return fmt.format(value) + ("!" if verdict(metric, value) == "MISSED" else "")


def print_table(results: Results, sizes: list[int], out: TextIO = sys.stdout) -> None:
    header = f"{'':<{LABEL_WIDTH}}" + "".join(f"{'N=' + str(n):>11}" for n in sizes) + f"{'target':>10}"
    print(header, file=out)
    print("-" * len(header), file=out)
    for label, metric, fmt in TABLE_ROWS:
        values = [results.get(metric, n) for n in sizes]
        if all(v is None for v in values):
            continue
        cells = "".join(f"{_cell(metric, v, fmt):>11}" for v in values)
        print(f"{label:<{LABEL_WIDTH}}{cells}{target_text(metric):>10}", file=out)
    print("(! = target missed; throughput and CPU rows are from the median run of each kind)", file=out)
    if results.spreads:
        print("\nseconds of every run (median reported):", file=out)
        for (kind, n), spread in results.spreads.items():
            print(f"  N={n:<7} {kind:<10} {spread}", file=out)


def print_scenarios(results: Results, out: TextIO = sys.stdout) -> None:
    """The latency profile (one batch, and the pipeline, against D) and the backlog scenario."""
    batch = {
        d: [results.get(f"latency_batch_seconds_d{d}_g{g}", 1000) for g in GROUP_WORKER_CHOICES]
        for d in LATENCY_DELAYS_MS
    }
    if any(v is not None for values in batch.values() for v in values):
        print("\nlatency: seconds for one 1000-build batch (one sync instance), by group workers", file=out)
        print(f"{'':<12}" + "".join(f"{g:>8}" for g in GROUP_WORKER_CHOICES), file=out)
        for d, values in batch.items():
            print(f"{f'D={d} ms':<12}" + "".join(f"{_cell('', v, '{:.2f}'):>8}" for v in values), file=out)
        print(
            f"  target at D=30 with the defaults: {target_text('latency_batch_seconds_d30')} s: "
            f"{verdict('latency_batch_seconds_d30', results.get('latency_batch_seconds_d30', 1000))}",
            file=out,
        )
        print("latency: in-process builds/s over 4 such batches, by batches in flight", file=out)
        print(f"{'':<12}" + "".join(f"{w:>8}" for w in BATCHES_IN_FLIGHT_CHOICES), file=out)
        for d in LATENCY_DELAYS_MS:
            rates = [results.get(f"latency_builds_per_second_d{d}_w{w}", 4000) for w in BATCHES_IN_FLIGHT_CHOICES]
            print(f"{f'D={d} ms':<12}" + "".join(f"{_cell('', v, '{:.0f}'):>8}" for v in rates), file=out)
    backlog = [(metric, n, value, unit) for metric, n, value, unit in results.rows if metric.startswith("backlog_")]
    if backlog:
        print("\nbacklog (the sync stage held back while triggers keep coming):", file=out)
        for metric, _, value, unit in backlog:
            judged = verdict(metric, value)
            print(
                f"  {metric.removeprefix('backlog_'):<36}{value:>10.3g}  {unit}"
                + (f"   target {target_text(metric)}: {judged}" if judged else ""),
                file=out,
            )


def print_singles(
    results: Results, memory: dict | None, memory_n: int, colds: dict | None, out: TextIO = sys.stdout
) -> None:
    """The once-per-run figures (memory of one batch, cold starts) and the notes of every run."""
    if memory:
        m = memory
        print(
            f"\nsync_batch of one {memory_n}-build batch in a fresh process ({m['seconds']:.2f}s, "
            f"target {target_text('sync_batch_peak_rss_mib')} MiB: "
            f"{verdict('sync_batch_peak_rss_mib', m['hwm_during_mib'])}):\n"
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
            metric = f"cold_start_{name}"
            print(
                f"  {name:<8} median {median:.2f}s  ({spread})   "
                f"target {target_text(metric)} s: {verdict(metric, median)}",
                file=out,
            )
    for note in results.notes:
        print(f"NOTE {note}", file=out)
