"""The plot: sync time and throughput against N for each kind of run (needs matplotlib)."""

from __future__ import annotations

import math
import os
import pathlib

from tools.bench.results import Results

KINDS = (
    ("inprocess", "in-process pipeline", "o-"),
    ("full", "Pub/Sub + functions", "s-"),
    ("tight", "tight floor", "^--"),
    ("contract", "contract floor", "v--"),
)


def plot(results: Results, sizes: list[int], path: pathlib.Path) -> bool:
    """Writes the PNG; says so and returns False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"plot: SKIPPED, matplotlib is not installed (pip install -r requirements-bench.txt); no {path}")
        return False
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    for kind, label, style in KINDS:
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
