"""Where the capacity model's numbers come from: the deployment's variables, the two CSVs, and named assumptions.

Measured: the benchmark's CSV (`tools/bench.sh`, docs/bench/firestore/) for a
1000-build batch at 30 ms per Datastore RPC and the operations per build; the
probe's CSV (`python -m tools.capacity.probe`, docs/bench/capacity.csv) for
the shard query, the distinct-projects query and small batches. Read from
the deployment: deploy/variables.tf's defaults and the code's own constants.
Everything else is an ASSUMPTION, listed with its source.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import pathlib
import re

from buildsync.ending.completion import SWEEP_BUDGET
from buildsync.remote.backend import DEFAULT_DEADLINE_SECONDS
from buildsync.rules.breaker import PROBE_BATCH_SIZE
from buildsync.stages.messages import MAX_BATCH_SIZE
from buildsync.store.outbox import SWEEP_SHARDS

from tools.bench.cost import VARIABLES, variable_default
from tools.capacity.model import Deployment, UnitCosts
from tools.stack import REPO

BENCH_CSV = REPO / "docs" / "bench" / "firestore" / "benchmark.csv"
PROBE_CSV = REPO / "docs" / "bench" / "capacity.csv"

# ASSUMPTION (not measured): Pub/Sub's publisher sends up to 100 messages a
# request, several requests in flight, ~30 ms each: about 2 ms a message.
PUBLISH_SECONDS_PER_MESSAGE = 0.002
# ASSUMPTION: each ended build writes its outbox entry and deletes it once done.
OUTBOX_WRITES_PER_ENDED_BUILD = 2.0
# The round trip the benchmark's latency profile adds to every Datastore RPC.
PRODUCTION_RPC_MS = 30

ASSUMPTIONS = (
    "the busiest (backend, project) pair holds --busiest-share of the builds (default 0.5: one project, as "
    "Chromium's, runs half of them); the others share the rest evenly",
    "builds last --build-minutes on average (default 30), so N / 30 min end a second (Little's law)",
    "a sequential index range takes about 500 writes a second: Firestore's documented limit for sequential indexed "
    "values (firebase.google.com/docs/firestore/solutions/shard-timestamp), taken to hold in Datastore mode too; "
    "the emulators do not model it",
    "the sweep is bound by the planner's CPU: the probe's rate (one process on the shared development machine, "
    "taken as one vCPU) scaled to the planner's vCPU (deploy/variables.tf planner_cpu)",
    f"publishing costs {PUBLISH_SECONDS_PER_MESSAGE * 1000:g} ms a message (Pub/Sub client batching; not measured)",
    "the backend answers FetchTasks at once (the benchmark's TaskBackend does); add --fetch-seconds for a real one",
    "query times are the emulator's at 30 ms a round trip; production's distinct-on query may scan differently",
    "only the sync's own index writes count; Buildbucket's own saves of the same builds add to the hot ranges",
    "a function invocation's own overhead (the push, functions-framework) and cold starts are not counted",
)


def max_instances(variables: pathlib.Path = VARIABLES) -> dict[str, int]:
    """`max_instance_count`'s default map: function name to instances."""
    text = variable_default("max_instance_count", variables)
    return {name: int(count) for name, count in re.findall(r"(\w+)\s*=\s*(\d+)", text)}


def deployment(variables: pathlib.Path = VARIABLES) -> Deployment:
    """The deployment as deploy/variables.tf and the code's constants make it.

    A backend whose breaker is open gets one probe job a trigger (stages/isolation.py `hold_back`), and the
    probe job one batch of at most PROBE_BATCH_SIZE builds.
    """
    return Deployment(
        probe_batches_per_trigger=math.ceil(PROBE_BATCH_SIZE / MAX_BATCH_SIZE),
        max_instances=max_instances(variables),
        fetch_deadline_seconds=DEFAULT_DEADLINE_SECONDS,
        batch_limit=MAX_BATCH_SIZE,
        sweep_budget_seconds=SWEEP_BUDGET.total_seconds(),
        outbox_index_ranges=SWEEP_SHARDS,
    )


def read_figures(path: pathlib.Path) -> dict[tuple[str, str], float]:
    """A figures CSV (tools/bench/results.py writes them) as {(metric, n): value}."""
    with open(path, newline="") as source:
        return {(row["metric"], row["n"]): float(row["value"]) for row in csv.DictReader(source)}


def _series(figures: dict[tuple[str, str], float], metric: str) -> dict[int, float]:
    series = {int(n): value for (m, n), value in figures.items() if m == metric and n.isdigit()}
    if not series:
        raise SystemExit(f"no {metric} figures: run the benchmark and python -m tools.capacity.probe")
    return series


def line_fit(points: dict[int, float]) -> tuple[float, float]:
    """Least squares (intercept, slope) through `points` {x: y}."""
    xs, ys = list(points), list(points.values())
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread if spread else 0.0
    return mean_y - slope * mean_x, slope


@dataclasses.dataclass(frozen=True)
class Measured:
    """The unit costs and, for each, the sentence saying where it came from."""

    costs: UnitCosts
    sources: tuple[str, ...]


def unit_costs(
    bench: pathlib.Path = BENCH_CSV, probe: pathlib.Path = PROBE_CSV, fetch_seconds: float = 0.0
) -> Measured:
    """The model's unit costs from the benchmark's and the probe's CSVs."""
    b, p = read_figures(bench), read_figures(probe)
    d = PRODUCTION_RPC_MS
    full_batch = _series(b, f"latency_batch_seconds_d{d}")[MAX_BATCH_SIZE]
    intercept, _ = line_fit(_series(p, f"batch_seconds_d{d}"))
    fixed = min(max(intercept, 0.0), full_batch)
    # The smallest shard: the emulator's cursor pages cost more the further they start (it re-reads the range).
    query_size = min(_series(p, f"shard_query_seconds_d{d}"))
    pages = _series(p, f"shard_query_pages_d{d}")[query_size]
    round_trip = d / 1000
    reading = max(_series(p, f"shard_query_seconds_d{d}")[query_size] - pages * round_trip, 1e-9)
    _, distinct_slope = line_fit(_series(p, f"distinct_query_seconds_d{d}"))
    size = max(_series(b, "inprocess_entity_reads_per_build"))
    probe_sweep = _series(p, f"sweep_builds_per_second_d{d}")
    planner_vcpu = float(variable_default("planner_cpu").strip('"'))
    costs = UnitCosts(
        batch_fixed_seconds=fixed + fetch_seconds,
        batch_seconds_per_build=(full_batch - fixed) / MAX_BATCH_SIZE,
        query_page_seconds=round_trip,
        query_keys_per_second=query_size / reading,
        distinct_seconds_per_build=max(distinct_slope, 0.0),
        publish_seconds_per_message=PUBLISH_SECONDS_PER_MESSAGE,
        reads_per_build=_series(b, "inprocess_entity_reads_per_build")[size],
        writes_per_build=_series(b, "inprocess_entity_writes_per_build")[size],
        sweep_builds_per_second=max(probe_sweep.values()) * planner_vcpu,
        outbox_writes_per_ended_build=OUTBOX_WRITES_PER_ENDED_BUILD,
    )
    sources = (
        f"sync batch: {full_batch:.2f} s for {MAX_BATCH_SIZE} builds at {d} ms a Datastore RPC ({bench.name}); "
        f"its fixed part {fixed:.2f} s from the probe's batches of {sorted(_series(p, f'batch_seconds_d{d}'))} "
        f"builds ({probe.name}, line fit)" + (f", plus {fetch_seconds:g} s for the backend" if fetch_seconds else ""),
        f"shard query: {costs.query_keys_per_second:,.0f} keys/s and {costs.query_page_seconds * 1000:.0f} ms a "
        f"1000-key page, over a shard of {query_size:,} due builds ({probe.name})",
        f"distinct-projects query: {costs.distinct_seconds_per_build * 1e6:.2f} us per incomplete build "
        f"(slope over {sorted(_series(p, f'distinct_query_seconds_d{d}'))} builds, {probe.name})",
        f"outbox sweep: {max(probe_sweep.values()):.0f} ended builds a second over {max(probe_sweep):,} builds "
        f"({probe.name}), x the planner's {planner_vcpu:g} vCPU: {costs.sweep_builds_per_second:.0f} a second",
        f"{costs.reads_per_build:g} entity reads and {costs.writes_per_build:g} writes per build synced "
        f"(in-process run of {size:,} builds, {bench.name})",
    )
    return Measured(costs, sources)
