"""commit_budget: which builds of a group fit in one Datastore commit."""

import pytest
from buildsync import commit_budget
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


def test_the_default_budget_is_read_at_each_call(monkeypatch):
    writes = [entity(1, size=100), entity(2, size=100)]
    monkeypatch.setattr(commit_budget, "COMMIT_BUDGET_BYTES", commit_budget.encoded_size(writes[0]))

    assert commit_budget.split_writes([1, 2], writes)[1] == [2]


def test_encoded_size_counts_the_property_bytes():
    assert commit_budget.encoded_size(entity(1, size=1000)) - commit_budget.encoded_size(entity(1)) >= 1000
