"""The benchmark's pure parts: targets, the table's use of them, the shard layout, the cost model."""

from __future__ import annotations

import io

import pytest

from tools.bench.cost import Measured, cost_table, function_memory_mib, monthly_units, sync_vcpu
from tools.bench.prices import PRICES, PRICES_READ_ON
from tools.bench.results import Results
from tools.bench.seeding import Layout
from tools.bench.table import TABLE_ROWS, print_table
from tools.bench.targets import TARGETS, target_key, target_text, verdict


def test_cold_starts_of_every_function_are_judged_by_the_one_cold_start_target():
    assert target_key("cold_start_sync") == "cold_start_seconds"
    assert verdict("cold_start_sync", 1.2) == "ok"
    assert verdict("cold_start_planner", 1.5) == "MISSED"


def test_only_the_pipelines_fetch_calls_are_judged_by_the_fetch_target():
    assert target_key("backlog_fetch_calls_per_1000_builds") == ""
    assert target_text("full_fetch_calls_per_1000_builds") == "<= 1"


def test_a_missing_or_nan_value_gets_no_verdict():
    assert verdict("inprocess_tight_floor_ratio", None) == ""
    assert verdict("inprocess_tight_floor_ratio", float("nan")) == ""
    assert verdict("inprocess_seconds", 3.0) == ""


def test_every_target_the_table_shows_is_a_target_of_TARGETS():
    shown = {target_key(metric) for _, metric, _ in TABLE_ROWS} - {""}
    assert shown <= set(TARGETS)
    assert {"inprocess_tight_floor_ratio", "inprocess_contract_floor_ratio"} <= shown


def test_the_table_marks_a_missed_target_and_prints_its_bound():
    results = Results()
    results.add("inprocess_tight_floor_ratio", 1000, 0.6, "ratio")
    results.add("inprocess_builds_per_second", 1000, 500.0, "builds/s")
    out = io.StringIO()
    print_table(results, [1000], out)
    row = next(line for line in out.getvalue().splitlines() if "/ tight floor" in line)
    assert "0.60!" in row and ">= 0.8" in row
    assert "full        builds/s" not in out.getvalue()  # rows without a value are left out


def test_minimum_batches_counts_one_batch_per_shard_and_one_per_1000_builds():
    layout = Layout(projects=2, shards=2)
    assert layout.minimum_batches(4) == 4
    assert layout.minimum_batches(3) == 3
    assert Layout(projects=1, shards=1).minimum_batches(2500) == 3


def measured(**overrides) -> Measured:
    figures = dict(
        size=1000,
        entity_reads_per_build=3.0,
        entity_writes_per_build=2.0,
        queries_per_trigger=17.0,
        query_seconds=0.05,
        shard_jobs=16,
        batch_seconds_per_build=0.002,
        trigger_bytes=20.0,
        shard_job_bytes=150.0,
        batch_bytes_fixed=100.0,
        batch_bytes_per_build=20.0,
    )
    return Measured(**{**figures, **overrides})


def test_datastore_work_grows_with_the_running_builds_and_queries_with_the_triggers():
    small, large = (monthly_units(measured(), builds, 512, 1.0) for builds in (1_000, 100_000))
    assert large["entity_read"] == 100 * small["entity_read"]
    assert small["entity_read"] == 1_000 / 5 * 43_200 * 3.0  # a fifth of the builds due each minute
    assert large["query"] == small["query"] == 43_200 * 17.0


def test_a_sync_invocation_carries_at_most_1000_builds_of_one_shard_job():
    units = monthly_units(measured(shard_jobs=2), 100_000, 512, 1.0)
    # 20,000 due a minute over 2 shard jobs: 10 batches each, plus the planner and 2 shard invocations.
    assert units["invocation"] == 43_200 * (1 + 2 + 20)


def test_the_sync_bills_its_own_vcpu_and_the_planner_and_shard_that_of_their_memory():
    one, two = (monthly_units(measured(), 10_000, 512, vcpu) for vcpu in (1.0, 2.0))
    planner_and_shard = 2 * one["vcpu_second"] - two["vcpu_second"]
    # 2,000 due a minute over 16 shard jobs: 16 batches of 125 builds, 0.25 s (billed 0.3 s) each.
    assert one["vcpu_second"] - planner_and_shard == pytest.approx(43_200 * 16 * 0.3)
    assert planner_and_shard == pytest.approx(43_200 * 17 * 0.1 * 0.333)


def test_the_cost_model_reads_the_deployed_memory_and_sync_cpu():
    assert (function_memory_mib(), sync_vcpu()) == (512, 1.0)


def test_the_cost_table_prices_every_item_and_says_when_the_prices_were_read():
    table = cost_table(measured(), 512, 1.0)
    assert all(what in table for _, what in PRICES.values())
    assert PRICES_READ_ON[:4].isdigit()
