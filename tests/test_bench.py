"""The benchmark's pure parts: targets, the table's use of them, the shard layout."""

from __future__ import annotations

import io

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
