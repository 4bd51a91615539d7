"""Metrics: each emitting function writes the one line its log-based metrics read."""

import io
import json

import pytest
from buildsync import logs, metrics

from tests.harness import reset_logging


@pytest.fixture
def stream():
    stream = io.StringIO()
    logs.configure(stream)
    yield stream
    reset_logging()


def lines(stream):
    return [json.loads(line) for line in stream.getvalue().splitlines()]


# One call of every emitting function, keyed by the line it writes.
EMITTERS = {
    "builds_synced": lambda: metrics.builds_synced("swarming://s", "chromium", {"updated": 3, "failed": 0}),
    "build_completed": lambda: metrics.build_completed(
        build_id=7,
        status="SUCCESS",
        project="chromium",
        bucket="ci",
        builder="linux",
        cycle_seconds=90.5,
        run_seconds=60.25,
    ),
    "fetch_tasks": lambda: metrics.fetch_tasks("swarming://s", metrics.GRPC, metrics.OK, 0.1234567, 1000),
    "transaction_retry": lambda: metrics.transaction_retry("Aborted", 1, final=False),
    "sync_lag": lambda: metrics.sync_lag("swarming://s", "chromium", 3, 125.0),
    "message_dropped": lambda: metrics.message_dropped("sync", "older than the cut-off", 700.0, message_id="m1"),
    "unknown_backend": lambda: metrics.unknown_backend("swarming://gone", ["p1", "p2"]),
    "permanent_error": lambda: _raise_and_report(),
    "backend_breaker": lambda: metrics.backend_breaker("swarming://s", "opened", 3, "DEADLINE_EXCEEDED"),
    "backend_held_back": lambda: metrics.backend_held_back("swarming://s", 3, 61.5, "DEADLINE_EXCEEDED", "p shard 0"),
}


def _raise_and_report():
    try:
        raise ValueError("bad message")
    except ValueError as error:
        metrics.permanent_error("shard", error, message_id="m2")


def test_every_metric_reads_a_line_some_function_writes():
    assert {metric.line for metric in metrics.METRICS.values()} == set(EMITTERS)


@pytest.mark.parametrize("name", sorted(metrics.METRICS))
def test_line_carries_the_labels_and_value_of_its_metric(stream, name):
    metric = metrics.METRICS[name]
    EMITTERS[metric.line]()

    (entry,) = lines(stream)
    assert entry[metrics.METRIC_FIELD] == metric.line
    for label in metric.labels:
        assert isinstance(entry[label], str) and entry[label], label
    if metric.value is not None:
        assert isinstance(entry[metric.value], (int, float)) and not isinstance(entry[metric.value], bool)


def test_builds_synced_writes_one_line_per_outcome_that_had_builds(stream):
    metrics.builds_synced("swarming://s", "chromium", {"updated": 3, "unchanged": 0, "failed": 2})

    assert sorted((e["outcome"], e["builds"]) for e in lines(stream)) == [("failed", 2), ("updated", 3)]


def test_build_that_never_started_has_no_run_duration(stream):
    metrics.build_completed(
        build_id=1, status="CANCELED", project="p", bucket="b", builder="x", cycle_seconds=5, run_seconds=None
    )

    (entry,) = lines(stream)
    assert entry["cycle_seconds"] == 5 and "run_seconds" not in entry


def test_sync_lag_is_never_negative(stream):
    metrics.sync_lag("swarming://s", "p", 0, -3.0)

    assert lines(stream)[0]["seconds"] == 0


def test_final_transaction_failure_is_a_warning_and_a_retry_is_not(stream):
    metrics.transaction_retry("Aborted", 1, final=False)
    metrics.transaction_retry("Aborted", 5, final=True)

    assert [(e["severity"], e["final"]) for e in lines(stream)] == [("INFO", "false"), ("WARNING", "true")]


def test_permanent_error_reaches_error_reporting_where_it_was_raised(stream):
    _raise_and_report()

    (entry,) = lines(stream)
    assert entry["severity"] == "ERROR"
    assert entry["@type"] == logs.REPORTED_ERROR_TYPE
    assert entry["message"] == "shard: bad message"
    assert entry["error_type"] == "ValueError" and entry["retry"] is False
    location = entry["context"]["reportLocation"]
    assert location["functionName"] == "_raise_and_report" and location["filePath"].endswith("test_metrics.py")
    assert entry["serviceContext"]["service"]
