"""The monthly cost of running buildsync, from the operation counts the benchmark measured.

    python -m tools.bench.cost [--csv bench-results/benchmark.csv]

Reads the figures of a benchmark run (`tools/bench.sh` writes them; run it
with --latency, since one batch's time at 30 ms a Datastore RPC is what the
sync function bills), the functions' memory from deploy/variables.tf, and the
unit prices from prices.py, and prints a Markdown table of the monthly cost
for 1,000, 10,000 and 100,000 concurrently running builds.

The model: Cloud Scheduler triggers a sync every minute; each build is due
every SYNC_INTERVAL_MINUTES, so each trigger finds 1/5 of the builds due. Per
trigger: one planner invocation, one shard invocation and one keys-only query
per shard job (as many shard jobs as the benchmark's layout had), and one sync
invocation per 1,000 due builds of a shard job. Per build synced: the entity
reads and writes the in-process run measured. Instance time: one batch's
measured seconds at 30 ms per RPC, pro rata per build; a planner or shard
invocation one measured query, each rounded up to the billing granularity.
Pub/Sub: every message's measured size (at least the billed minimum), once
published and once delivered.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime
import math
import pathlib
import re
import sys

from buildsync.stages.messages import ShardJob, SyncBatch, SyncTrigger

from tools.bench.prices import (
    BILLING_GRANULARITY_SECONDS,
    PRICES,
    PRICES_READ_ON,
    PUBSUB_MINIMUM_BYTES,
    VCPU_FOR_MEMORY_MIB,
)
from tools.bench.results import Results
from tools.bench.seeding import BACKEND, build_ids
from tools.stack import REPO

RUNNING_BUILDS = (1_000, 10_000, 100_000)
SYNC_INTERVAL_MINUTES = 5
TRIGGERS_PER_MONTH = 30 * 24 * 60  # one a minute, 30 days
BATCH_LIMIT = 1000


@dataclasses.dataclass(frozen=True)
class Measured:
    """The per-build and per-trigger counts the cost is derived from, as the benchmark wrote them."""

    size: int
    entity_reads_per_build: float
    entity_writes_per_build: float
    queries_per_trigger: float
    query_seconds: float
    shard_jobs: int
    batch_seconds_per_build: float
    trigger_bytes: float
    shard_job_bytes: float
    batch_bytes_fixed: float
    batch_bytes_per_build: float

    @classmethod
    def from_csv(cls, path: pathlib.Path) -> Measured:
        rows: dict[str, dict[str, float]] = {}
        with open(path, newline="") as source:
            for row in csv.DictReader(source):
                rows.setdefault(row["metric"], {})[row["n"]] = float(row["value"])

        def value(metric: str, n: str | None = None) -> float:
            if metric not in rows:
                raise SystemExit(f"{path} has no {metric}: run tools/bench.sh with --latency (see --help)")
            values = rows[metric]
            return values[n] if n is not None else values[max(values, key=lambda k: int(k) if k.isdigit() else -1)]

        size = max(int(n) for n in rows["inprocess_entity_reads_per_build"])
        one = str(size)
        return cls(
            size=size,
            entity_reads_per_build=value("inprocess_entity_reads_per_build", one),
            entity_writes_per_build=value("inprocess_entity_writes_per_build", one),
            queries_per_trigger=value("inprocess_query_rpcs_per_build", one) * size,
            query_seconds=value("inprocess_query_rpc_seconds", one)
            / (value("inprocess_query_rpcs_per_build", one) * size),
            shard_jobs=int(value("layout_shard_jobs")),
            batch_seconds_per_build=value("latency_batch_seconds_d30") / BATCH_LIMIT,
            trigger_bytes=value("message_bytes_trigger"),
            shard_job_bytes=value("message_bytes_shard_job"),
            batch_bytes_fixed=value("message_bytes_sync_batch_fixed"),
            batch_bytes_per_build=value("message_bytes_sync_batch_per_build"),
        )


def add_message_bytes(results: Results) -> None:
    """The encoded size of each message the job publishes, for the Pub/Sub bytes of the cost model."""
    planned_at = datetime.datetime.now(datetime.timezone.utc)
    ids = tuple(build_ids(BATCH_LIMIT))
    job = ShardJob(BACKEND, "bench-0", 0, 16, planned_at)
    one, full = (len(SyncBatch(BACKEND, "bench-0", ids[:k], planned_at).to_json()) for k in (1, BATCH_LIMIT))
    per_build = (full - one) / (BATCH_LIMIT - 1)
    results.add("message_bytes_trigger", "", len(SyncTrigger().to_json()), "bytes")
    results.add("message_bytes_shard_job", "", len(job.to_json()), "bytes")
    results.add("message_bytes_sync_batch_fixed", "", one - per_build, "bytes")
    results.add("message_bytes_sync_batch_per_build", "", per_build, "bytes")


VARIABLES = REPO / "deploy" / "variables.tf"


def variable_default(name: str, variables: pathlib.Path = VARIABLES) -> str:
    """The default of Terraform variable `name` as written: a number, a "string" (quotes kept) or a { map }."""
    pattern = rf'variable "{name}" {{.*?\n  default\s*=\s*(\{{.*?\n  \}}|[^\n]+)'
    match = re.search(pattern, variables.read_text(), re.S)
    if not match:
        raise SystemExit(f"no {name} default in {variables}")
    return match.group(1).strip()


def function_memory_mib(variables: pathlib.Path = VARIABLES) -> int:
    """The default of `function_memory` in the Terraform variables, in MiB."""
    match = re.fullmatch(r'"(\d+)(Mi|Gi)"', variable_default("function_memory", variables))
    if not match:
        raise SystemExit(f"function_memory in {variables} is not a number of Mi or Gi")
    return int(match.group(1)) * (1024 if match.group(2) == "Gi" else 1)


def sync_vcpu(variables: pathlib.Path = VARIABLES) -> float:
    """The default of `sync_cpu` in the Terraform variables: the sync instance's vCPU."""
    return float(variable_default("sync_cpu", variables).strip('"'))


def monthly_units(
    measured: Measured,
    builds: int,
    memory_mib: int,
    sync_vcpu: float,
    interval_minutes: float = SYNC_INTERVAL_MINUTES,
) -> dict[str, float]:
    """Units of each price per month for `builds` concurrently running builds, each due every `interval_minutes`.

    The planner and shard get the vCPU of their memory; the sync `sync_vcpu`.
    """
    due = builds / interval_minutes
    jobs = measured.shard_jobs
    per_job = due / jobs
    batches_per_job = math.ceil(per_job / BATCH_LIMIT) if per_job else 0
    batches = jobs * batches_per_job
    builds_per_batch = per_job / batches_per_job if batches_per_job else 0
    syncs = due * TRIGGERS_PER_MONTH

    def billed(seconds: float) -> float:
        return math.ceil(seconds / BILLING_GRANULARITY_SECONDS) * BILLING_GRANULARITY_SECONDS

    planner_and_shard_seconds = TRIGGERS_PER_MONTH * (1 + jobs) * billed(measured.query_seconds)
    sync_seconds = TRIGGERS_PER_MONTH * batches * billed(builds_per_batch * measured.batch_seconds_per_build)
    instance_seconds = planner_and_shard_seconds + sync_seconds
    batch_bytes = measured.batch_bytes_fixed + builds_per_batch * measured.batch_bytes_per_build
    message_bytes = (
        max(PUBSUB_MINIMUM_BYTES, measured.trigger_bytes)
        + jobs * max(PUBSUB_MINIMUM_BYTES, measured.shard_job_bytes)
        + batches * max(PUBSUB_MINIMUM_BYTES, batch_bytes)
    )
    return {
        "invocation": TRIGGERS_PER_MONTH * (1 + jobs + batches),
        "vcpu_second": planner_and_shard_seconds * VCPU_FOR_MEMORY_MIB[memory_mib] + sync_seconds * sync_vcpu,
        "gib_second": instance_seconds * memory_mib / 1024,
        "entity_read": syncs * measured.entity_reads_per_build,
        "entity_write": syncs * measured.entity_writes_per_build,
        "query": TRIGGERS_PER_MONTH * measured.queries_per_trigger,
        "pubsub_byte": TRIGGERS_PER_MONTH * message_bytes * 2,  # published once, delivered once
        "scheduler_job_month": 1,
    }


def monthly_total(units: dict[str, float]) -> float:
    """USD a month for `monthly_units`, at the list prices."""
    return sum(units[item] * price for item, (price, _) in PRICES.items())


def cost_table(measured: Measured, memory_mib: int, vcpu: float) -> str:
    """The Markdown table: USD a month per item, for each number of running builds (`vcpu`: the sync's)."""
    header = "| USD / month | " + " | ".join(f"{b:,} builds" for b in RUNNING_BUILDS) + " |"
    lines = [header, "|---" * (len(RUNNING_BUILDS) + 1) + "|"]
    units = {b: monthly_units(measured, b, memory_mib, vcpu) for b in RUNNING_BUILDS}
    for item, (price, what) in PRICES.items():
        cells = " | ".join(f"{units[b][item] * price:,.2f}" for b in RUNNING_BUILDS)
        lines.append(f"| {what} | {cells} |")
    totals = " | ".join(f"**{monthly_total(units[b]):,.2f}**" for b in RUNNING_BUILDS)
    lines.append(f"| **total** | {totals} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", default="bench-results/benchmark.csv", help="the benchmark's figures")
    args = parser.parse_args(argv)
    measured = Measured.from_csv(pathlib.Path(args.csv))
    memory_mib, vcpu = function_memory_mib(), sync_vcpu()
    print(cost_table(measured, memory_mib, vcpu))
    print(
        f"\nFrom {args.csv} (in-process run of N={measured.size}: {measured.entity_reads_per_build:.2f} reads and "
        f"{measured.entity_writes_per_build:.2f} writes per build, {measured.queries_per_trigger:.0f} queries per "
        f"trigger over {measured.shard_jobs} shard jobs; one 1000-build batch "
        f"{measured.batch_seconds_per_build * BATCH_LIMIT:.2f}s at 30 ms per RPC), {memory_mib} MiB per instance, "
        f"{vcpu:g} vCPU per sync instance, "
        f"a trigger a minute, each build due every {SYNC_INTERVAL_MINUTES} minutes. "
        f"Prices: tools/bench/prices.py, {PRICES_READ_ON}."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
