"""The capacity planner's text: one load's limits and recommendation, or the Sizing table over several loads."""

from __future__ import annotations

import dataclasses

from tools.bench import cost
from tools.capacity.model import (
    HEADROOM,
    Deployment,
    Limit,
    Load,
    UnitCosts,
    all_limits,
    batches_per_trigger,
    due_per_trigger,
    ended_per_second,
    hung_backend_burst,
    job_groups,
    query_seconds,
    sweep_catch_up_minutes,
)
from tools.capacity.recommend import Recommendation, busiest, first_limit_hit, recommend

# A completion effect's outage the sweep must catch up after (the example).
OUTAGE_MINUTES = 10


@dataclasses.dataclass(frozen=True)
class Pricing:
    """What tools/bench/cost.py needs: the benchmark's counts, the functions' memory, the sync's vCPU."""

    measured: cost.Measured
    memory_mib: int
    sync_vcpu: float


def monthly_cost(load: Load, deployment: Deployment, costs: UnitCosts, pricing: Pricing) -> float:
    """USD a month by tools/bench/cost.py's model, with this load's shard jobs and queries."""
    groups = job_groups(load, deployment)
    jobs = sum(group.count for group in groups)
    pages = sum(group.count * (1 + max(1, group.due / deployment.batch_limit)) for group in groups)
    measured = dataclasses.replace(
        pricing.measured,
        shard_jobs=jobs,
        queries_per_trigger=pages + load.backends,
        query_seconds=query_seconds(due_per_trigger(load, deployment) / jobs, costs, deployment),
    )
    units = cost.monthly_units(measured, load.builds, pricing.memory_mib, pricing.sync_vcpu, load.interval_seconds / 60)
    return cost.monthly_total(units)


def _number(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.3g}"


def _utilisation(limit: Limit) -> str:
    return "-" if limit.utilisation is None else f"{limit.utilisation:.2f}"


def limits_table(limits: list[Limit] | tuple[Limit, ...]) -> str:
    lines = ["| limit | demand | capacity | utilisation | capacity from |", "|---|---|---|---|---|"]
    for limit in limits:
        capacity = "-" if limit.capacity is None else _number(limit.capacity)
        lines.append(
            f"| {limit.name} | {_number(limit.demand)} {limit.unit} | {capacity} | {_utilisation(limit)} "
            f"| {limit.source} |"
        )
    return "\n".join(lines)


def describe_load(load: Load, deployment: Deployment) -> str:
    groups = job_groups(load, deployment)
    return (
        f"{load.builds:,} running builds, {load.projects} projects x {load.backends} backends, {load.shards} shards, "
        f"a {load.interval_seconds:g} s interval: {due_per_trigger(load, deployment):,.0f} builds due a trigger, "
        f"{ended_per_second(load):,.1f} ending a second, {sum(g.count for g in groups):,} shard jobs and "
        f"{batches_per_trigger(groups, deployment):,.0f} sync batches a trigger"
    )


def full_report(load: Load, deployment: Deployment, costs: UnitCosts, pricing: Pricing) -> str:
    """Every limit for `load`, the first one hit, the failure scenarios, the cost and the recommendation."""
    limits = all_limits(load, deployment, costs)
    first = first_limit_hit(load, deployment, costs)
    lines = [describe_load(load, deployment), "", limits_table(limits), ""]
    lines.append(f"Busiest now: {busiest(limits).name} ({_utilisation(busiest(limits))}).")
    if first:
        lines.append(f"First limit hit as builds grow: {first[0].name}, at about {first[1]:,} running builds.")
    running = first_limit_hit(load, deployment, costs, failures=False)
    if running:
        lines.append(f"In normal running (no failure): {running[0].name}, at about {running[1]:,} running builds.")
    burst = hung_backend_burst(load, deployment, costs)
    lines.append(
        f"A backend that hangs asks for {_number(burst)} sync instances (of {deployment.max_instances['sync']}) "
        "for the first deadline of its outage, until its breaker opens."
    )
    catch_up = sweep_catch_up_minutes(load, deployment, costs, OUTAGE_MINUTES)
    lines.append(f"After a {OUTAGE_MINUTES}-minute outage of a completion effect the sweep needs {catch_up:,.0f} min.")
    lines.append(f"Monthly cost: {monthly_cost(load, deployment, costs, pricing):,.0f} USD (tools/bench/cost.py).")
    lines += ["", recommendation_text(recommend(load, deployment, costs))]
    return "\n".join(lines)


def recommendation_text(rec: Recommendation) -> str:
    instances = ", ".join(f"{name} = {count}" for name, count in sorted(rec.max_instances.items()))
    lines = [
        f"Recommended (every utilisation under {HEADROOM} where a setting can do it): build_sync_setting.shards = "
        f"{rec.shards} for each backend; max_instance_count = {{ {instances} }}.",
    ]
    if rec.unfixed:
        names = "; ".join(f"{limit.name} ({_utilisation(limit)})" for limit in rec.unfixed)
        lines.append(f"Still at {HEADROOM} or more whatever the settings (the code must change): {names}.")
    return "\n".join(lines)


def sizing_table(loads: list[Load], deployment: Deployment, costs: UnitCosts, pricing: Pricing) -> str:
    """The README's table: per load, each limit's utilisation as deployed, then the recommendation."""
    per_load = [all_limits(load, deployment, costs) for load in loads]
    recs = [recommend(load, deployment, costs) for load in loads]
    header = "| utilisation as deployed | " + " | ".join(f"{load.builds:,} builds" for load in loads) + " |"
    lines = [header, "|---" * (len(loads) + 1) + "|"]
    for index, limit in enumerate(per_load[0]):
        cells = []
        for limits in per_load:
            row = limits[index]
            cells.append(f"{_number(row.demand)} {row.unit}" if row.capacity is None else _utilisation(row))
        lines.append(f"| {limit.name} | " + " | ".join(cells) + " |")
    bursts = [hung_backend_burst(load, deployment, costs) for load in loads]
    lines.append(
        "| sync instances, first deadline of a hang (before the breaker opens) | "
        + " | ".join(f"{burst / deployment.max_instances['sync']:.2f}" for burst in bursts)
        + " |"
    )
    sweeps = [sweep_catch_up_minutes(load, deployment, costs, OUTAGE_MINUTES) for load in loads]
    lines.append(
        f"| sweep catch-up after a {OUTAGE_MINUTES}-min outage | " + " | ".join(f"{m:,.0f} min" for m in sweeps) + " |"
    )
    firsts = [busiest(limits).name for limits in per_load]
    lines.append("| busiest limit | " + " | ".join(firsts) + " |")
    lines.append("| recommended shards | " + " | ".join(str(r.shards) for r in recs) + " |")
    for function in ("shard", "sync"):
        lines.append(
            f"| recommended max_instance_count.{function} | "
            + " | ".join(str(r.max_instances[function]) for r in recs)
            + " |"
        )
    lines.append(
        f"| over {HEADROOM} whatever the settings | "
        + " | ".join(", ".join(limit.name for limit in r.unfixed) or "none" for r in recs)
        + " |"
    )
    lines.append(
        "| USD / month (recommended settings) | "
        + " | ".join(
            f"{monthly_cost(dataclasses.replace(load, shards=r.shards), deployment, costs, pricing):,.0f}"
            for load, r in zip(loads, recs, strict=True)
        )
        + " |"
    )
    return "\n".join(lines)
