"""ending/builder_metrics.py: builds ended by the real sync carry their builder metric names as Buildbucket stores them.

On the Datastore emulators, with a real TaskBackend server: the builds are
written as Buildbucket writes them (custom metrics in luci/gae's format,
tags, properties, steps), ended by `sync_batch`, and read back raw.
"""

from __future__ import annotations

import pytest
from buildsync.proto import buildbucket_pb2 as pb
from buildsync.proto import project_config_pb2 as cpb
from buildsync.proto import service_config_pb2 as spb
from buildsync.store import model
from google.cloud.datastore.query import PropertyFilter

from tests.buildbucket_writer import (
    put_input_properties,
    put_output_properties,
    put_steps,
    set_build_properties,
    set_custom_metrics,
)
from tests.builds import get_build, put_build
from tests.harness import BACKEND, LONG_AGO, captured_logs

pytestmark = pytest.mark.both_emulators  # the details are read in the ending transaction: lock order matters


FAILURES = spb.CUSTOM_METRIC_BASE_CONSECUTIVE_FAILURE_COUNT
COUNT = spb.CUSTOM_METRIC_BASE_COUNT
NAMES = "custom_builder_consecutive_failures_metrics"


def definition(name: str, *predicates: str) -> cpb.CustomMetricDefinition:
    return cpb.CustomMetricDefinition(name=name, predicates=predicates)


# What each predicate sees is what Buildbucket's status update sees: the new
# status, the entity's tags, and the details as stored before the transaction
# (the task not yet merged, the steps not yet ended).
METRICS = [
    (FAILURES, definition("mac", 'build.tags.get_value("os")=="mac"', 'build.status.to_string()=="FAILURE"')),
    (FAILURES, definition("linux", 'build.tags.get_value("os")=="linux"')),
    (FAILURES, definition("inputs", 'string(build.input.properties.pool)=="ci"')),
    (FAILURES, definition("outputs", 'string(build.output.properties.result)=="flaky"')),
    (FAILURES, definition("task as stored", 'build.infra.backend.task.status.to_string()=="SCHEDULED"')),
    (FAILURES, definition("running steps", 'build.steps.exists(s, s.status.to_string()=="STARTED")')),
    (COUNT, definition("count", "true")),  # evaluated at creation and start only
]


def put_build_with_metrics(client, task_backend, build_id: int, task_status: int, metrics) -> None:
    put_build(client, build_id, updated=LONG_AGO)
    set_build_properties(client, build_id, tags=["os:mac", "builder:hidden"])
    set_custom_metrics(client, build_id, metrics)
    put_input_properties(client, build_id, {"pool": "ci"})
    put_output_properties(client, build_id, {"result": "flaky"}, chunked=True)
    put_steps(client, build_id, [pb.Step(name="compile", status=pb.STARTED)])
    task_backend.backend.set_task(f"task-{build_id}", task_status, 2)


def test_a_build_that_fails_lists_the_consecutive_failure_metrics_it_matches(datastore_client, task_backend, sync):
    put_build_with_metrics(datastore_client, task_backend, 1, pb.FAILURE, METRICS)

    report = sync([1])

    entity, build, _, _ = get_build(datastore_client, 1)
    assert report.completed == 1 and build.status == pb.FAILURE
    assert entity[NAMES] == ["mac", "inputs", "outputs", "task as stored", "running steps"]
    assert "custom_builder_count_metrics" not in entity
    # Indexed, as Buildbucket's builder metrics query the builds by name.
    query = datastore_client.query(kind="Build", filters=[PropertyFilter(NAMES, "=", "running steps")])
    assert [found.key.id for found in query.fetch()] == [1]


def test_a_build_that_succeeds_is_not_evaluated(datastore_client, task_backend, make_settings, sync):
    put_build_with_metrics(datastore_client, task_backend, 1, pb.SUCCESS, METRICS)

    report = sync([1], settings=make_settings(task_success=True).backend(BACKEND))

    entity, build, _, _ = get_build(datastore_client, 1)
    assert report.completed == 1 and build.status == pb.SUCCESS
    assert NAMES not in entity


def test_a_failing_predicate_is_logged_and_the_build_still_ends_with_the_names_before_it(
    datastore_client, task_backend, sync
):
    broken = [METRICS[0], (FAILURES, definition("broken", "string(build.input.properties.absent)=='x'")), METRICS[2]]
    put_build_with_metrics(datastore_client, task_backend, 1, pb.FAILURE, broken)
    put_build(datastore_client, 2, updated=LONG_AGO)
    task_backend.backend.set_task("task-2", pb.FAILURE, 2)

    with captured_logs() as captured:
        report = sync([1, 2])

    assert report.completed == 2
    entity, build, _, _ = get_build(datastore_client, 1)
    assert build.status == pb.FAILURE and entity[NAMES] == ["mac"]
    errors = [e for e in captured.events() if e["message"] == "custom builder metrics evaluation failed"]
    assert [e["build_id"] for e in errors] == [1] and "broken" in errors[0]["error"]


def test_undecodable_custom_metrics_are_logged_and_the_build_still_ends(datastore_client, task_backend, sync):
    put_build_with_metrics(datastore_client, task_backend, 1, pb.FAILURE, METRICS)
    entity = datastore_client.get(model.build_key(datastore_client, 1))
    entity["custome_metrics.metric"] = [b"not luci/gae's format"] * len(METRICS)
    datastore_client.put(entity)

    with captured_logs() as captured:
        report = sync([1])

    entity, build, _, _ = get_build(datastore_client, 1)
    assert report.completed == 1 and build.status == pb.FAILURE and NAMES not in entity
    assert [e["build_id"] for e in captured.events() if e["message"].startswith("custom metrics cannot be read")] == [1]
