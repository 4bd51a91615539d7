"""Figures: one measured run, the rows every figure becomes, and the CSV made of them."""

from __future__ import annotations

import collections
import csv
import dataclasses
import pathlib

from tools.bench.cpu import own_cpu
from tools.bench.targets import target_text, verdict

# The Datastore counters reported per build, and the RPC kinds whose summed seconds are reported.
PER_BUILD_COUNTS = (
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
)
RPC_KINDS = ("plain_lookup", "txn_lookup", "begin", "commit", "query", "rollback")


@dataclasses.dataclass
class Run:
    """One measured run of one kind over N builds."""

    seconds: float
    builds: int
    counts: collections.Counter
    fetch_calls: int
    cpu: dict[str, float]
    note: str = ""
    threads: int = 0  # a floor's thread count
    tries: dict[int, float] = dataclasses.field(default_factory=dict)  # a floor's seconds by thread count

    @property
    def rate(self) -> float:
        return self.builds / self.seconds if self.seconds > 0 else float("nan")


class Results:
    """Figures as (metric, n, value, unit) rows; the table, the plot and the CSV are made from them."""

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

    def add_run(self, kind: str, n: int, run: Run, floors: dict[str, Run], batches: int) -> None:
        """The figures of one run: time, throughput, CPU, its ratio to each floor, FetchTasks and Datastore work."""
        self.add(f"{kind}_seconds", n, run.seconds, "s")
        self.add(f"{kind}_builds_per_second", n, run.rate, "builds/s")
        used = own_cpu(run.cpu)
        self.add(f"{kind}_own_cpu_per_1000_builds", n, used * 1000 / n, "cpu s")
        for name, floor in floors.items():
            self.add(f"{kind}_{name}_floor_ratio", n, run.rate / floor.rate, "ratio")
            self.add(f"{kind}_{name}_floor_cpu_ratio", n, own_cpu(floor.cpu) / used if used else float("nan"), "ratio")
        if run.threads:
            self.add(f"{kind}_best_threads", n, run.threads, "threads")
        for threads, seconds in run.tries.items():
            self.add(f"{kind}_seconds_threads{threads}", n, seconds, "s")
        for name, seconds in run.cpu.items():
            self.add(f"{kind}_cpu_{name.replace(' ', '_')}", n, seconds, "cpu s")
        if not run.threads:  # the floors fetch nothing
            self.add(f"{kind}_fetch_calls", n, run.fetch_calls, "calls")
            self.add(f"{kind}_fetch_calls_per_1000_builds", n, run.fetch_calls * 1000 / n, "calls")
            self.add(f"{kind}_fetch_calls_per_batch", n, run.fetch_calls / batches, "calls")
        if run.counts:
            for name in PER_BUILD_COUNTS:
                self.add(f"{kind}_{name}_per_build", n, run.counts[name] / n, "per build")
            for name in RPC_KINDS:
                self.add(f"{kind}_{name}_rpc_seconds", n, run.counts[f"{name}_rpc_seconds"], "s summed over threads")
        if run.note:
            self.notes.append(f"{kind} N={n}: {run.note}")

    def write_csv(self, path: pathlib.Path) -> None:
        """One row per figure, with its target and whether it met it."""
        with open(path, "w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["metric", "n", "value", "unit", "target", "result"])
            for metric, n, value, unit in self.rows:
                writer.writerow([metric, n, f"{value:.6g}", unit, target_text(metric), verdict(metric, value)])
