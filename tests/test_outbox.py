"""The outbox: identity and the effects left, read back by the sweep, settled after the effects."""

from __future__ import annotations

import dataclasses
import datetime

import pytest
from buildsync.store import outbox
from buildsync.store.outbox import Completion, Effect
from google.cloud import datastore

from tests.harness import outbox_due

NOW = datetime.datetime(2026, 3, 1, 12, 0, tzinfo=datetime.timezone.utc)
MINUTE = datetime.timedelta(minutes=1)


def put(client, build_id: int, effects, created: datetime.datetime, attempts: int = 0) -> Completion:
    completion = Completion(build_id, frozenset(effects), created, attempts)
    client.put(outbox.entry_entity(client, completion))
    return completion


def test_an_entry_holds_identity_and_effects_only_and_reads_back(datastore_client):
    written = put(datastore_client, 5, {Effect.BUILDS_TOPIC, Effect.RESULTDB}, NOW - 2 * MINUTE, attempts=2)
    entity = datastore_client.get(outbox.entry_key(datastore_client, 5))
    assert set(entity) == {"effects", "created", "attempts", "sweep_at"}
    assert entity["sweep_at"] == outbox.sweep_key(5, written.created), "a new entry is due when it is made"
    assert set(entity.exclude_from_indexes) == {"effects", "created", "attempts"}, "only sweep_at indexed"
    assert entity.key.parent.flat_path == ("Build", 5), "a child of the Build: same entity group"
    assert outbox_due(datastore_client, NOW) == [written]


def test_the_sweep_reads_only_entries_older_than_the_minimum_age_oldest_first(datastore_client):
    old = put(datastore_client, 1, {Effect.METRICS}, NOW - 5 * MINUTE)
    older = put(datastore_client, 2, {Effect.METRICS}, NOW - 9 * MINUTE)
    put(datastore_client, 3, {Effect.METRICS}, NOW - datetime.timedelta(seconds=10))
    assert outbox_due(datastore_client, NOW) == [older, old]
    assert [c.build_id for c in outbox_due(datastore_client, NOW, limit=1)] == [2]


def test_an_entry_of_the_json_era_needs_every_effect(datastore_client):
    key = outbox.entry_key(datastore_client, 9)
    legacy = datastore.Entity(key, exclude_from_indexes=("payload",))
    legacy.update({"payload": b'{"version":1,"build_id":9}', "created": NOW - 5 * MINUTE})
    datastore_client.put(legacy)
    (completion,) = outbox_due(datastore_client, NOW)
    assert completion.effects == outbox.ALL_EFFECTS


def test_unknown_effect_names_are_ignored_not_fatal(datastore_client):
    key = outbox.entry_key(datastore_client, 4)
    entity = datastore.Entity(key)
    entity.update({"effects": ["metrics", "teleport"], "created": NOW - 5 * MINUTE})
    datastore_client.put(entity)
    (completion,) = outbox_due(datastore_client, NOW)
    assert completion.effects == {Effect.METRICS}


def test_settle_deletes_what_is_done_and_rewrites_what_is_left(datastore_client):
    done = put(datastore_client, 1, {Effect.METRICS}, NOW - 5 * MINUTE)
    left = put(datastore_client, 2, {Effect.METRICS, Effect.CALLBACK}, NOW - 5 * MINUTE)
    shrunk = Completion(2, frozenset({Effect.CALLBACK}), left.created, attempts=1)
    outbox.settle(datastore_client, [done], [shrunk], now=NOW - 2 * MINUTE)
    assert outbox_due(datastore_client, NOW) == [shrunk]


def test_settle_handles_more_entries_than_one_commit_takes(datastore_client):
    many = [Completion(i, frozenset({Effect.METRICS}), NOW - 5 * MINUTE) for i in range(1, 1202)]
    outbox.settle(datastore_client, [], many, now=NOW - 2 * MINUTE)
    assert len(outbox_due(datastore_client, NOW, limit=2000)) == 1201
    outbox.settle(datastore_client, many, [])
    assert outbox_due(datastore_client, NOW) == []


def same_range_ids(count: int) -> list[int]:
    """Build ids whose entries share one sweep range."""
    return [i for i in range(1, 10_000) if outbox.sweep_shard(i) == outbox.sweep_shard(1)][:count]


def test_an_entry_left_over_goes_behind_newer_entries_of_its_range_so_none_is_held_back(datastore_client):
    now = datetime.datetime.now(datetime.timezone.utc)
    *stuck_ids, newer_id = same_range_ids(4)
    stuck = [put(datastore_client, i, {Effect.CALLBACK}, now - 60 * MINUTE) for i in stuck_ids]
    # Each failed twice already (a callback topic the deployment may not publish to): tried again later.
    outbox.settle(
        datastore_client, [], [Completion(c.build_id, c.effects, c.created, attempts=3) for c in stuck], now=now
    )
    newer = put(datastore_client, newer_id, {Effect.METRICS}, now - 5 * MINUTE)
    shard = outbox.sweep_shard(newer_id)
    assert outbox.due(datastore_client, now, datetime.timedelta(0), 1, shard=shard) == [newer]
    later = now + outbox.retry_delay(3) + MINUTE
    assert {c.build_id for c in outbox.due(datastore_client, later, datetime.timedelta(0), shard=shard)} == {
        *stuck_ids,
        newer_id,
    }


def test_buildbucket_ids_spread_their_entries_over_every_sweep_range():
    # Buildbucket's ids: a time part, 16 random bits, then the version 1 in the last four bits.
    ids = [(1_700_000_000_000 << 20) | (random_bits << 4) | 1 for random_bits in range(0, 65536, 16)]
    per_range = [0] * outbox.SWEEP_SHARDS
    for build_id in ids:
        per_range[outbox.sweep_shard(build_id)] += 1

    assert min(per_range) > 0.5 * len(ids) / outbox.SWEEP_SHARDS
    assert max(per_range) < 1.5 * len(ids) / outbox.SWEEP_SHARDS


def test_a_sweep_range_holds_only_its_own_entries_in_order_of_their_next_attempt(datastore_client):
    ids = same_range_ids(3)
    other = next(i for i in range(1, 10_000) if outbox.sweep_shard(i) != outbox.sweep_shard(ids[0]))
    written = [put(datastore_client, i, {Effect.METRICS}, NOW - (10 - k) * MINUTE) for k, i in enumerate(ids)]
    put(datastore_client, other, {Effect.METRICS}, NOW - 20 * MINUTE)

    assert outbox.due(datastore_client, NOW, shard=outbox.sweep_shard(ids[0])) == written
    assert outbox.due(datastore_client, NOW, limit=2, shard=outbox.sweep_shard(ids[0])) == written[:2]


@pytest.mark.parametrize(
    ("attempts", "delay"),
    [(1, 0), (2, 1), (3, 2), (6, 16), (7, 30), (500, 30)],
)
def test_retries_back_off_to_a_ceiling(attempts, delay):
    assert outbox.retry_delay(attempts) == delay * MINUTE


def test_an_entry_written_before_next_attempt_existed_is_still_swept_once(datastore_client):
    key = outbox.entry_key(datastore_client, 6)
    legacy = datastore.Entity(key, exclude_from_indexes=("effects", "attempts"))
    legacy.update({"effects": ["metrics"], "created": NOW - 5 * MINUTE, "attempts": 2})
    datastore_client.put(legacy)
    (completion,) = outbox_due(datastore_client, NOW)
    assert (completion.build_id, completion.attempts) == (6, 2)
    outbox.settle(datastore_client, [], [dataclasses.replace(completion, attempts=3)], now=NOW)
    assert outbox_due(datastore_client, NOW) == [], "rewritten with its next attempt, not found twice"
    assert [c.build_id for c in outbox_due(datastore_client, NOW + 10 * MINUTE)] == [6]


def test_an_entry_indexed_by_its_next_attempt_alone_is_swept_once_and_rewritten_in_its_range(datastore_client):
    key = outbox.entry_key(datastore_client, 7)
    older = datastore.Entity(key, exclude_from_indexes=("effects", "attempts", "created"))
    older.update({"effects": ["metrics"], "created": NOW - 9 * MINUTE, "attempts": 1, "next_attempt": NOW - 5 * MINUTE})
    datastore_client.put(older)
    (completion,) = outbox.due(datastore_client, NOW, shard=0)
    outbox.settle(datastore_client, [], [dataclasses.replace(completion, attempts=2)], now=NOW)
    assert [c.build_id for c in outbox_due(datastore_client, NOW + 10 * MINUTE)] == [7]
    assert "next_attempt" not in datastore_client.get(key) and "sweep_at" in datastore_client.get(key)


def test_an_entry_keeps_the_names_of_its_cloud_tasks(datastore_client):
    tasks = frozenset({outbox.TaskRef("export-bigquery-go", "0" * 32), outbox.TaskRef("pop-pending-builds", "a" * 32)})
    written = outbox.Completion(6, frozenset({Effect.METRICS}), NOW - 2 * MINUTE, tasks=tasks)
    datastore_client.put(outbox.entry_entity(datastore_client, written))
    assert outbox_due(datastore_client, NOW) == [written]
