"""The shard stage's keys-only query, on the Datastore emulator."""

from __future__ import annotations

import dataclasses
import datetime

import pytest
from buildsync.proto import buildbucket_pb2 as pb
from buildsync.rules import sync_time
from buildsync.rules.breaker import PROBE_BATCH_SIZE
from buildsync.stages.messages import ShardJob
from buildsync.stages.shard import due_batches, sync_lag_seconds
from buildsync.store import model

from tests.builds import BACKEND, put_build
from tests.harness import LONG_AGO, PLANNED_AT
from tools.capacity.probe import seed_bare

# Due builds in one shard, more keys than one 4 MiB answer holds.
LARGE_SHARD = 25_000


def job(project: str = "proj", shard: int = 0, shards: int = 1) -> ShardJob:
    return ShardJob(BACKEND, project, shard, shards, PLANNED_AT)


def due_ids(client, the_job: ShardJob, batch_size: int = 1000) -> list[list[int]]:
    return [list(batch.build_ids) for batch in due_batches(client, the_job, batch_size)]


def test_query_returns_exactly_the_due_builds(datastore_client):
    for build_id in range(1, 6):
        put_build(datastore_client, build_id, updated=LONG_AGO)
    put_build(datastore_client, 10, updated=PLANNED_AT)  # just updated: due in five minutes
    put_build(datastore_client, 11, updated=LONG_AGO, project="other")
    put_build(datastore_client, 12, updated=LONG_AGO, backend="swarming://other-swarm")
    put_build(datastore_client, 13, updated=LONG_AGO, status=pb.SUCCESS)
    put_build(datastore_client, 14, updated=LONG_AGO, shard=1, shards=2)

    assert due_ids(datastore_client, job(shards=2)) == [[1, 2, 3, 4, 5]]


def test_shard_one_does_not_see_shard_ten(datastore_client):
    put_build(datastore_client, 1, updated=LONG_AGO, shard=1, shards=11)
    put_build(datastore_client, 10, updated=LONG_AGO, shard=10, shards=11)

    assert due_ids(datastore_client, job(shard=1, shards=11)) == [[1]]
    assert due_ids(datastore_client, job(shard=10, shards=11)) == [[10]]


@pytest.mark.parametrize(
    "project, other", [("chromium--beta", "chromium"), ("chromium", "chromium--beta"), ("a--0", "a")]
)
def test_projects_with_double_dash_keep_their_own_builds(datastore_client, project, other):
    put_build(datastore_client, 1, updated=LONG_AGO, project=project)
    put_build(datastore_client, 2, updated=LONG_AGO, project=other)

    assert due_ids(datastore_client, job(project)) == [[1]]
    assert due_ids(datastore_client, job(other)) == [[2]]


def test_due_builds_come_in_batches_of_the_batch_size(datastore_client):
    for build_id in range(1, 6):
        put_build(datastore_client, build_id, updated=LONG_AGO)

    assert due_ids(datastore_client, job(), batch_size=2) == [[1, 2], [3, 4], [5]]


# The Firestore emulator answers a query whole, as production may: 25,000 keys are over the client's 4 MiB.
@pytest.mark.parametrize("datastore_kind", ["firestore"], indirect=True)
def test_a_shard_too_large_for_one_answer_is_read_a_batch_a_page(datastore_client):
    due = sync_time.SyncTimeKey(BACKEND, "proj", 0, sync_time.truncate_to_minute(LONG_AGO))
    seed_bare(datastore_client, range(1, LARGE_SHARD + 1), due)

    batches = due_ids(datastore_client, job())

    assert [len(batch) for batch in batches] == [1000] * (LARGE_SHARD // 1000)
    assert sorted(build_id for batch in batches for build_id in batch) == list(range(1, LARGE_SHARD + 1))


@pytest.mark.both_emulators
def test_due_builds_that_fill_their_last_batch_end_the_query(datastore_client):
    for build_id in range(1, 5):
        put_build(datastore_client, build_id, updated=LONG_AGO)

    assert due_ids(datastore_client, job(), batch_size=2) == [[1, 2], [3, 4]]


def test_builds_in_shards_above_a_lowered_count_are_found_once_each_when_due(datastore_client):
    # Eight shards once, four now: builds 4..7 sit in shards no job of four queries.
    for build_id in range(8):
        put_build(datastore_client, build_id + 1, updated=LONG_AGO, shard=build_id, shards=8)
    put_build(datastore_client, 20, updated=PLANNED_AT, shard=6, shards=8)  # not due yet
    put_build(datastore_client, 21, updated=LONG_AGO, shard=12, shards=13, project="other")

    found = [due_ids(datastore_client, job(shard=shard, shards=4)) for shard in range(4)]

    flat = sorted(build_id for batches in found for batch in batches for build_id in batch)
    assert flat == list(range(1, 9))
    assert found[0][0] == [1]  # its own shard first, then its share of the strays


def test_a_probe_job_yields_one_small_probe_batch_of_its_shard(datastore_client):
    due = sync_time.SyncTimeKey(BACKEND, "proj", 0, sync_time.truncate_to_minute(LONG_AGO))
    seed_bare(datastore_client, range(1, PROBE_BATCH_SIZE + 51), due)
    probe = dataclasses.replace(job(), probe=True)

    (batch,) = due_batches(datastore_client, probe)

    assert (len(batch.build_ids), batch.probe) == (PROBE_BATCH_SIZE, True)


def test_no_due_builds_yields_no_batch(datastore_client):
    put_build(datastore_client, 1, updated=PLANNED_AT)

    assert due_ids(datastore_client, job()) == []


def test_sync_lag_is_the_wait_of_the_oldest_due_build_and_zero_when_none_is_due(datastore_client):
    assert sync_lag_seconds(datastore_client, job(), PLANNED_AT) == 0.0
    put_build(datastore_client, 3, updated=PLANNED_AT)  # not due yet
    assert sync_lag_seconds(datastore_client, job(), PLANNED_AT) == 0.0

    put_build(datastore_client, 2, updated=LONG_AGO + datetime.timedelta(minutes=20))
    put_build(datastore_client, 1, updated=LONG_AGO)
    put_build(datastore_client, 4, updated=LONG_AGO - datetime.timedelta(hours=1), project="other")

    due_at = sync_time.next_sync_unix(LONG_AGO, model.DEFAULT_SYNC_INTERVAL)
    assert sync_lag_seconds(datastore_client, job(), PLANNED_AT) == PLANNED_AT.timestamp() - due_at
