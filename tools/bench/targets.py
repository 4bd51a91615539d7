"""The benchmark's targets, from the brief, and how a figure is judged against them.

Every target lives here once; the table and the CSV look them up by metric.
"""

from __future__ import annotations

import math

# metric: (comparison, bound)
TARGETS: dict[str, tuple[str, float]] = {
    # The design against the least possible work, and the implementation against the work correctness needs.
    "inprocess_tight_floor_ratio": (">=", 0.8),
    "inprocess_contract_floor_ratio": (">=", 0.95),
    "full_contract_floor_ratio": (">=", 0.5),
    # One sync function instance, one 1000-build batch, 30 ms a Datastore RPC, a backend that answers at once.
    "latency_batch_seconds_d30": ("<=", 2.0),
    # Each build's task fetched at most twice while a backlog drains.
    "backlog_task_fetches_per_build": ("<=", 2.0),
    "entity_reads_per_build": ("<=", 4.0),
    "fetch_calls_per_1000_builds": ("<=", 1.0),
    "sync_batch_rss_growth_mib": ("<", 256.0),
    "sync_batch_peak_rss_mib": ("<", 256.0),
    "cold_start_seconds": ("<", 1.5),
}

_COMPARE = {">=": float.__ge__, "<=": float.__le__, "<": float.__lt__}


def target_key(metric: str) -> str:
    """The TARGETS entry a metric is judged by ("" for none): several metrics share one target."""
    if metric.startswith("cold_start_"):
        return "cold_start_seconds"
    if metric == "inprocess_entity_reads_per_build":
        return "entity_reads_per_build"
    if metric.endswith("_fetch_calls_per_1000_builds") and metric.split("_")[0] in ("inprocess", "full"):
        return "fetch_calls_per_1000_builds"
    return metric if metric in TARGETS else ""


def verdict(metric: str, value: float | None) -> str:
    """ "ok", "MISSED", or "" when the metric has no target or no value."""
    key = target_key(metric)
    if not key or value is None or math.isnan(value):
        return ""
    op, bound = TARGETS[key]
    return "ok" if _COMPARE[op](float(value), bound) else "MISSED"


def target_text(metric: str) -> str:
    """The target of a metric as text, e.g. ">= 0.8" ("" for none)."""
    key = target_key(metric)
    if not key:
        return ""
    op, bound = TARGETS[key]
    return f"{op} {bound:g}"
