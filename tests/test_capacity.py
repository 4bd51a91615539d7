"""The capacity planner's arithmetic (tools/capacity): pure, checked against figures worked by hand."""

from __future__ import annotations

import dataclasses
import math

import pytest

from tools.bench.cost import variable_default
from tools.capacity import inputs
from tools.capacity.model import (
    Deployment,
    Load,
    UnitCosts,
    all_limits,
    batches_per_job,
    due_per_trigger,
    hung_backend_burst,
    job_groups,
    sweep_catch_up_minutes,
    sync_seconds,
)
from tools.capacity.recommend import HEADROOM, first_limit_hit, recommend

# One 1000-build batch takes 1.14 s (the README's figure at 30 ms a Datastore RPC), 0.14 s of it fixed.
COSTS = UnitCosts(
    batch_fixed_seconds=0.14,
    batch_seconds_per_build=0.001,
    query_page_seconds=0.03,
    query_keys_per_second=10_000,
    distinct_seconds_per_build=1e-6,
    publish_seconds_per_message=0.002,
    reads_per_build=3,
    writes_per_build=2,
    sweep_builds_per_second=25,  # 1000 builds in a 40 s sweep
)
DEPLOYED = Deployment(max_instances={"planner": 2, "shard": 10, "sync": 20})
MILLION = Load(builds=1_000_000, projects=1, backends=1, shards=4)


def limit(load: Load, name: str, deployment: Deployment = DEPLOYED, costs: UnitCosts = COSTS):
    (found,) = [each for each in all_limits(load, deployment, costs) if each.name == name]
    return found


def test_a_build_is_due_once_per_interval_so_a_fifth_of_them_each_minute():
    assert due_per_trigger(MILLION, DEPLOYED) == 200_000
    assert due_per_trigger(dataclasses.replace(MILLION, interval_seconds=600), DEPLOYED) == 100_000


@pytest.mark.parametrize("projects, backends, shards", [(1, 1, 1), (20, 2, 4), (7, 3, 16)])
def test_every_pair_gets_a_job_per_shard_and_the_jobs_hold_every_due_build(projects, backends, shards):
    load = Load(builds=1_000_000, projects=projects, backends=backends, shards=shards)
    groups = job_groups(load, DEPLOYED)

    assert sum(g.count for g in groups) == projects * backends * shards
    assert sum(g.count * g.due for g in groups) == pytest.approx(due_per_trigger(load, DEPLOYED))


def test_the_busiest_pair_holds_its_share_of_the_due_builds():
    load = Load(builds=1_000_000, projects=20, backends=2, shards=4, busiest_pair_share=0.5)
    busiest = job_groups(load, DEPLOYED)[0]

    assert busiest.backend == 0 and busiest.count == 4
    assert busiest.due * busiest.count == pytest.approx(100_000)


@pytest.mark.parametrize(
    "due, batches",
    [(1, 1), (999, 1), (1000, 1), (1001, 2), (25_000, 25), (0.5, 1 - math.exp(-0.5)), (0, 0)],
)
def test_a_job_makes_a_batch_per_thousand_builds_and_a_small_one_only_when_it_finds_any(due, batches):
    assert batches_per_job(due, 1000) == pytest.approx(batches)


def test_a_million_builds_keep_four_sync_instances_busy():
    # 200 batches of 1000 a minute, 1.14 s each.
    assert limit(MILLION, "sync instances").demand == pytest.approx(200 * 1.14 / 60)


def test_a_hung_backend_holds_an_instance_a_minute_per_batch_until_its_breaker_opens():
    # The figure: 200 batches a minute, each holding an instance for the 60 s deadline.
    assert hung_backend_burst(MILLION, DEPLOYED, COSTS) == pytest.approx(200)


def test_once_its_breaker_is_open_a_hung_backend_holds_one_instance_for_its_probe():
    load = Load(builds=1_000_000, projects=30, backends=2, shards=4)
    healthy_only = sync_seconds(job_groups(load, DEPLOYED), COSTS, DEPLOYED)[1] / 60

    hung = limit(load, "sync instances, busiest backend hung")

    assert hung.demand == pytest.approx(healthy_only + 1)


def test_without_a_breaker_a_hung_backend_holds_an_instance_per_batch_trigger_after_trigger():
    no_breaker = dataclasses.replace(DEPLOYED, probe_batches_per_trigger=None)

    assert limit(MILLION, "sync instances, busiest backend hung", no_breaker).demand == pytest.approx(200)


def test_before_its_breaker_opens_a_hung_backend_asks_for_every_instance_at_any_scale():
    # Ten thousand builds: 120 small jobs a minute on the busiest backend, each with a batch most minutes.
    small = Load(builds=10_000, projects=30, backends=2, shards=4)

    assert hung_backend_burst(small, DEPLOYED, COSTS) > DEPLOYED.max_instances["sync"]


def test_the_largest_projects_shard_ranges_take_about_four_hundred_writes_a_second_at_a_million():
    load = dataclasses.replace(MILLION, projects=20, busiest_pair_share=0.5)

    assert limit(load, "next_backend_sync_time writes per shard range").demand == pytest.approx(3333.33 * 0.5 / 4, 1e-3)


def test_one_outbox_index_range_reaches_five_hundred_writes_a_second_near_450_thousand_builds():
    load = Load(builds=450_000, projects=1, backends=1, build_minutes=30)
    one_range = dataclasses.replace(DEPLOYED, outbox_index_ranges=1)

    assert limit(load, "outbox index writes per range", one_range).utilisation == pytest.approx(1.0)
    assert limit(load, "outbox index writes per range").utilisation == pytest.approx(1 / 32)


def test_a_sweep_of_a_thousand_builds_a_minute_needs_five_and_a_half_hours_after_a_ten_minute_outage_at_a_million():
    assert sweep_catch_up_minutes(MILLION, DEPLOYED, COSTS, 10) == pytest.approx(333.3, 1e-3)
    assert limit(MILLION, "outbox sweep, after an effect's outage").utilisation == pytest.approx(33.33, 1e-3)
    faster = dataclasses.replace(COSTS, sweep_builds_per_second=1000)
    assert sweep_catch_up_minutes(MILLION, DEPLOYED, faster, 10) == pytest.approx(333.3 / 40, 1e-3)


def test_the_first_limit_hit_is_found_where_its_utilisation_crosses_one():
    # Only the sync instances can be hit: every other capacity is out of reach.
    roomy = dataclasses.replace(
        DEPLOYED,
        max_instances={"planner": 2, "shard": 10**6, "sync": 20},
        hot_range_writes_per_second=1e12,
        sweep_budget_seconds=1e12,
        fetch_deadline_seconds=0,
    )
    fast_queries = dataclasses.replace(COSTS, query_keys_per_second=1e12)
    found = first_limit_hit(Load(builds=1000, projects=1, backends=1), roomy, fast_queries)

    assert found is not None
    hit, builds = found
    # 20 instances busy for the minute: N/5 builds in N/5000 batches of 0.14 s + 0.001 s a build.
    expected = 5 * 20 * 60 / (COSTS.batch_seconds_per_build + COSTS.batch_fixed_seconds / 1000)
    assert hit.name == "sync instances"
    assert builds == pytest.approx(expected, rel=0.002)


def test_without_failures_the_first_limit_hit_is_one_of_normal_running():
    load = Load(builds=1000, projects=30, backends=2, shards=4)

    hit, first = first_limit_hit(load, DEPLOYED, COSTS)
    running, builds = first_limit_hit(load, DEPLOYED, COSTS, failures=False)

    assert hit.name == "outbox sweep, after an effect's outage" and first == pytest.approx(30_000, rel=0.01)
    assert running.name == "next_backend_sync_time writes per shard range"
    assert builds == pytest.approx(1_200_000, rel=0.01)  # 500 writes/s = N/300 x 0.5 / 4


def test_the_recommended_shards_are_the_fewest_that_keep_the_hot_range_under_the_headroom():
    load = dataclasses.replace(MILLION, projects=20, shards=1)
    rec = recommend(load, DEPLOYED, COSTS)

    fewer = limit(dataclasses.replace(load, shards=rec.shards - 1), "next_backend_sync_time writes per shard range")
    assert rec.shards == 7
    assert fewer.utilisation >= HEADROOM
    assert limit(dataclasses.replace(load, shards=rec.shards), fewer.name).utilisation < HEADROOM


def test_the_recommended_instances_keep_their_functions_under_the_headroom_and_never_shrink():
    load = Load(builds=10_000_000, projects=20, backends=2, shards=1)
    rec = recommend(load, DEPLOYED, COSTS)
    settled = dataclasses.replace(DEPLOYED, max_instances=rec.max_instances)
    sized = dataclasses.replace(load, shards=rec.shards)

    assert rec.max_instances["sync"] > 20
    assert limit(sized, "sync instances", settled).utilisation < HEADROOM
    assert limit(sized, "shard instances", settled).utilisation < HEADROOM
    assert recommend(Load(builds=1000, projects=1, backends=1), DEPLOYED, COSTS).max_instances == DEPLOYED.max_instances


def test_what_no_setting_fixes_is_named():
    rec = recommend(MILLION, DEPLOYED, COSTS)

    assert {limit.name for limit in rec.unfixed} >= {"outbox sweep, after an effect's outage"}
    assert all(limit.utilisation >= HEADROOM for limit in rec.unfixed)


def test_a_line_fit_recovers_a_line():
    assert inputs.line_fit({25: 0.165, 100: 0.24, 1000: 1.14}) == pytest.approx((0.14, 0.001))


@pytest.mark.parametrize(
    "name, written",
    [("sync_cpu", '"1"'), ("max_event_age_seconds", "600"), ("max_instance_count", "{")],
)
def test_terraform_defaults_are_read_as_written(name, written):
    assert variable_default(name).startswith(written)


def test_the_deployment_is_read_from_the_terraform_defaults(tmp_path):
    variables = tmp_path / "variables.tf"
    variables.write_text(
        'variable "max_instance_count" {\n  type = map(number)\n  default = {\n    planner = 3\n'
        "    shard   = 11\n    sync    = 40\n  }\n}\n"
    )

    assert inputs.deployment(variables).max_instances == {"planner": 3, "shard": 11, "sync": 40}


def test_unit_costs_take_the_full_batch_from_the_benchmark_and_its_fixed_part_from_the_probe(tmp_path):
    bench, probe = tmp_path / "benchmark.csv", tmp_path / "capacity.csv"
    bench.write_text(
        "metric,n,value,unit,target,result\nlatency_batch_seconds_d30,1000,1.14,s,,\n"
        "inprocess_entity_reads_per_build,5000,3,per build,,\ninprocess_entity_writes_per_build,5000,2,per build,,\n"
    )
    probe.write_text(
        "metric,n,value,unit,target,result\n"
        "batch_seconds_d30,25,0.3,s,,\nbatch_seconds_d30,1000,1.275,s,,\n"
        "shard_query_seconds_d30,10000,1.3,s,,\nshard_query_pages_d30,10000,10,RunQuery calls,,\n"
        "distinct_query_seconds_d30,1000,0.01,s,,\ndistinct_query_seconds_d30,11000,0.06,s,,\n"
        "sweep_builds_per_second_d30,2000,300,builds/s,,\n"
    )

    costs = inputs.unit_costs(bench, probe).costs

    assert costs.batch_fixed_seconds == pytest.approx(0.275)
    assert costs.batch_fixed_seconds + 1000 * costs.batch_seconds_per_build == pytest.approx(1.14)
    assert costs.query_keys_per_second == pytest.approx(10_000)
    assert costs.distinct_seconds_per_build == pytest.approx(5e-6)
    assert costs.sweep_builds_per_second == pytest.approx(300)  # at the planner's 1 vCPU
