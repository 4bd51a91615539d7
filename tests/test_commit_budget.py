"""commit_budget: which builds of a group fit in one Datastore commit."""

import datetime

import pytest
from buildsync.store import commit_budget
from google.cloud import datastore


@pytest.mark.parametrize(
    "sizes, budget, fit",
    [
        ([], 10, 0),
        ([3, 3, 3], 10, 3),
        ([3, 3, 3, 3], 10, 3),
        ([5, 5], 10, 2),
        ([5, 6], 10, 1),
        ([20, 1], 10, 1),  # one build always goes, even alone over the budget
        ([1, 20], 10, 1),
    ],
)
def test_builds_fit_in_order_until_the_budget_and_never_fewer_than_one(sizes, budget, fit):
    assert commit_budget.builds_that_fit(sizes, budget) == fit


def entity(build_id, kind="Build", size=0):
    path = ("Build", build_id) if kind == "Build" else ("Build", build_id, kind, 1)
    result = datastore.Entity(datastore.Key(*path, project="p"), exclude_from_indexes=("blob",))
    result["blob"] = b"x" * size
    return result


def test_a_build_is_kept_or_left_out_with_all_its_entities():
    writes = [entity(1, size=600), entity(2, size=600), entity(1, "BuildSteps", 300), entity(2, "BuildStatus")]
    budget = commit_budget.encoded_size(writes[0]) + commit_budget.encoded_size(writes[2]) + 50

    kept, left_out = commit_budget.split_writes([1, 2], writes, budget)

    assert [e.key.flat_path for e in kept] == [("Build", 1), ("Build", 1, "BuildSteps", 1)]
    assert left_out == [2]


def test_builds_that_write_nothing_are_never_left_out():
    writes = [entity(2, size=10)]

    kept, left_out = commit_budget.split_writes([1, 2, 3], writes, budget=1)

    assert kept == writes and left_out == []


def test_encoded_size_counts_the_property_bytes():
    assert commit_budget.encoded_size(entity(1, size=1000)) - commit_budget.encoded_size(entity(1)) >= 1000


def awkward_entity():
    key = datastore.Key("Build", 2**62, "BuildSteps", "steps-name", project="a-long-project-name", namespace="ns")
    result = datastore.Entity(key, exclude_from_indexes=("proto", "text"))
    inner = datastore.Entity(datastore.Key("Inner", 1, project="p"))
    inner["n"] = -1
    result.update(
        proto=b"\x00" * 70_000,
        text="ü" * 500,  # two bytes each in UTF-8
        tags=["builder:linux", "user_agent:cq"] * 20,
        numbers=[-1, 2**63 - 1, 0.5, True, None],
        when=datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc),
        parent=datastore.Key("Build", 7, project="p"),
        inner=inner,
        mapping={"a": 1, "b": "two"},
        empty=[],
    )
    return result


@pytest.mark.parametrize("make", [awkward_entity, lambda: entity(1), lambda: entity(3, "BuildInfra", 900_000)])
def test_the_size_bound_is_never_below_the_encoded_size(make):
    value = make()
    assert commit_budget.encoded_size(value) <= commit_budget.size_bound(value)


def test_writes_whose_bound_fits_are_kept_whole_without_exact_sizes(monkeypatch):
    writes = [entity(1, size=100), entity(2, size=100), entity(1, "BuildSteps", 50)]
    monkeypatch.setattr(commit_budget, "encoded_size", pytest.fail)  # would encode every entity once more

    kept, left_out = commit_budget.split_writes([1, 2], writes, budget=10_000)

    assert kept == writes and left_out == []
