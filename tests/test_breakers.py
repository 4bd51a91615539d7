"""store/breakers.py: a backend's breaker as one entity, read by key and written only when it changes."""

from __future__ import annotations

import datetime

from buildsync.rules.breaker import CLOSED
from buildsync.store import breakers

NOW = datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc)


def test_a_backend_without_an_entity_has_a_closed_breaker(datastore_client):
    assert breakers.read(datastore_client, ["swarming://a", "swarming://b"]) == {
        "swarming://a": CLOSED,
        "swarming://b": CLOSED,
    }
    assert breakers.read(datastore_client, []) == {}


def test_an_update_round_trips_and_returns_the_state_before_and_after(datastore_client):
    def fail(breaker):
        return breaker.after_failure("UNAVAILABLE: " + "x" * 5000, NOW, datetime.timedelta(0))

    states = [breakers.update(datastore_client, "swarming://a", fail) for _ in range(3)]

    stored = breakers.read(datastore_client, ["swarming://a", "swarming://b"])
    assert [(before.failures, after.failures) for before, after in states] == [(0, 1), (1, 2), (2, 3)]
    assert stored["swarming://a"].opened_at == NOW and stored["swarming://b"] == CLOSED
    assert len(stored["swarming://a"].last_error) == 1000  # cut to what an operator reads


def test_an_update_that_changes_nothing_writes_nothing(datastore_client):
    before, after = breakers.update(datastore_client, "swarming://a", lambda breaker: breaker.after_success())

    assert before == after == CLOSED
    assert list(datastore_client.query(kind=breakers.BREAKER_KIND).fetch()) == []
