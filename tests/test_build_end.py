"""Ending a build on the Datastore emulator as Buildbucket does: legacy properties and lease.

The builds are written the way Buildbucket writes them: legacy v1 properties
and an active lease on the Build entity, and other writers' properties with
their own index flags.
"""

from __future__ import annotations

import datetime

import pytest
from buildsync import legacy, model
from buildsync.backend import GrpcTaskBackend
from buildsync.messages import SyncBatch
from buildsync.proto import buildbucket_pb2 as pb
from buildsync.sync import sync_batch
from google.cloud import datastore

from tests.builds import BACKEND, put_build

UTC = datetime.timezone.utc
PLANNED_AT = datetime.datetime.now(UTC).replace(microsecond=0)
LONG_AGO = PLANNED_AT - datetime.timedelta(hours=1)
LATER = PLANNED_AT + datetime.timedelta(seconds=10)
LEASE_EXPIRES = PLANNED_AT + datetime.timedelta(hours=2)

# Properties of other writers, indexed or not, that every save must keep as they are.
OTHER_PROPERTIES = {
    "tags": ["builder:builder", "buildset:commit/abc"],
    "bucket_id": "proj/ci",
    "url": "https://ci.example.com/b1",
    "never_leased": True,
    "retry_of": 7,
}
OTHER_UNINDEXED = {"url"}


@pytest.fixture
def fetcher(task_backend):
    client = GrpcTaskBackend(BACKEND, task_backend.hostname, deadline_seconds=10)
    yield client
    client.close()


@pytest.fixture
def backend(make_settings):
    return make_settings().backend(BACKEND)


def run(client, fetcher, backend, build_ids):
    batch = SyncBatch(BACKEND, "proj", tuple(build_ids), PLANNED_AT)
    return sync_batch(client, fetcher, backend, batch, clock=lambda: LATER)


def put_leased_build(client: datastore.Client, build_id: int) -> datastore.Entity:
    """A started build as Buildbucket keeps it: v1 properties, an active lease, others' properties."""
    put_build(client, build_id, updated=LONG_AGO)
    entity = client.get(model.build_key(client, build_id))
    entity.update(OTHER_PROPERTIES)
    entity.update(
        {
            "status": legacy.STARTED,
            "result": 0,
            "failure_reason": 0,
            "cancelation_reason": 0,
            "is_leased": True,
            "leasee": b"user:bot@example.com",
            "lease_expiration_date": LEASE_EXPIRES,
            "lease_key": 123456789,
        }
    )
    entity.exclude_from_indexes.update(OTHER_UNINDEXED)
    client.put(entity)
    return client.get(entity.key)


@pytest.mark.parametrize(
    "task_status, details, expected",
    [
        (pb.SUCCESS, None, {"status": 3, "result": 1, "failure_reason": 0, "cancelation_reason": 0}),
        (pb.FAILURE, None, {"status": 3, "result": 2, "failure_reason": 1, "cancelation_reason": 0}),
        (pb.INFRA_FAILURE, None, {"status": 3, "result": 2, "failure_reason": 3, "cancelation_reason": 0}),
        (
            pb.INFRA_FAILURE,
            pb.StatusDetails(timeout=pb.StatusDetails.Timeout()),
            {"status": 3, "result": 3, "failure_reason": 0, "cancelation_reason": 2},
        ),
        (pb.CANCELED, None, {"status": 3, "result": 3, "failure_reason": 0, "cancelation_reason": 1}),
    ],
)
def test_ending_a_build_writes_legacy_properties_and_clears_its_lease(
    datastore_client, task_backend, fetcher, make_settings, task_status, details, expected
):
    before = put_leased_build(datastore_client, 1)
    task_backend.backend.set_task("task-1", task_status, 2, **({"status_details": details} if details else {}))

    report = run(datastore_client, fetcher, make_settings(task_success=True).backend(BACKEND), [1])

    entity = datastore_client.get(model.build_key(datastore_client, 1))
    assert report.completed == 1
    assert {name: entity[name] for name in expected} == expected
    assert (entity["is_leased"], entity["leasee"], entity["lease_key"]) == (False, None, 0)
    assert entity["lease_expiration_date"] == datetime.datetime(1970, 1, 1, tzinfo=UTC)
    assert {name: entity[name] for name in OTHER_PROPERTIES} == OTHER_PROPERTIES
    assert entity.exclude_from_indexes == before.exclude_from_indexes


def test_a_build_that_keeps_running_keeps_its_lease_and_says_started(datastore_client, task_backend, fetcher, backend):
    before = put_leased_build(datastore_client, 1)
    task_backend.backend.set_task("task-1", pb.STARTED, 2)

    run(datastore_client, fetcher, backend, [1])

    entity = datastore_client.get(model.build_key(datastore_client, 1))
    assert (entity["status"], entity["result"]) == (legacy.STARTED, 0)
    lease = ("is_leased", "leasee", "lease_expiration_date", "lease_key", "never_leased")
    assert {name: entity[name] for name in lease} == {name: before[name] for name in lease}
    assert entity.exclude_from_indexes == before.exclude_from_indexes


def test_legacy_properties_a_build_lacked_are_added_indexed(datastore_client, task_backend, fetcher, backend):
    put_build(datastore_client, 1, updated=LONG_AGO)
    task_backend.backend.set_task("task-1", pb.FAILURE, 2)

    run(datastore_client, fetcher, backend, [1])

    entity = datastore_client.get(model.build_key(datastore_client, 1))
    assert (entity["status"], entity["result"], entity["failure_reason"]) == (3, 2, 1)
    assert "cancelation_reason" not in entity and "never_leased" not in entity
    assert not entity.exclude_from_indexes & {"status", "result", "failure_reason", "is_leased", "lease_key"}
