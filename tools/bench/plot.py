"""The plot: sync time and throughput against N, the latency profile, and the backlog (needs matplotlib)."""

from __future__ import annotations

import math
import os
import pathlib

from tools.bench.latency import GROUP_WORKER_CHOICES, LATENCY_DELAYS_MS
from tools.bench.results import Results

KINDS = (
    ("inprocess", "in-process pipeline", "o-"),
    ("full", "Pub/Sub + functions", "s-"),
    ("tight", "tight floor", "^--"),
    ("contract", "contract floor", "v--"),
)
BACKLOG_BARS = (
    ("backlog_task_fetches_per_build", "task fetches\nper build"),
    ("backlog_datastore_ops_per_build", "Datastore ops\nper build"),
    ("backlog_dropped_sync_messages", "sync messages\ndropped"),
    ("backlog_dropped_shard_messages", "shard messages\ndropped"),
)


def _present(value: float | None) -> bool:
    return value is not None and not math.isnan(value)


def plot(results: Results, sizes: list[int], path: pathlib.Path, emulator: str = "datastore") -> bool:
    """Writes the PNG; says so and returns False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"plot: SKIPPED, matplotlib is not installed (pip install -r requirements-bench.txt); no {path}")
        return False
    fig, ((left, right), (latency, backlog)) = plt.subplots(2, 2, figsize=(11, 9))
    for kind, label, style in KINDS:
        points = [(n, results.get(f"{kind}_seconds", n), results.get(f"{kind}_builds_per_second", n)) for n in sizes]
        points = [p for p in points if _present(p[1])]
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
    for delay_ms in LATENCY_DELAYS_MS:
        points = [(g, results.get(f"latency_batch_seconds_d{delay_ms}_g{g}", 1000)) for g in GROUP_WORKER_CHOICES]
        points = [p for p in points if _present(p[1])]
        if points:
            latency.plot([p[0] for p in points], [p[1] for p in points], "o-", label=f"D = {delay_ms} ms per RPC")
    latency.axhline(2.0, color="grey", linestyle=":", label="target at D = 30 ms")
    latency.set(xlabel="group workers", ylabel="seconds", title="One 1000-build batch, one sync instance")
    latency.set_xscale("log", base=2)
    latency.grid(True, alpha=0.3)
    latency.legend()
    bars = [(label, results.get(metric, n)) for metric, label in BACKLOG_BARS for n in {r[1] for r in results.rows}]
    bars = [(label, value) for label, value in bars if _present(value)]
    if bars:
        backlog.bar([b[0] for b in bars], [b[1] for b in bars])
        for index, (_, value) in enumerate(bars):
            backlog.annotate(f"{value:.3g}", (index, value), ha="center", va="bottom")
    backlog.set(title="Backlog: sync held back, then let go")
    fig.suptitle(f"buildsync on the {emulator} emulator ({os.cpu_count()} cores)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
