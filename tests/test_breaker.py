"""rules/breaker.py: when a backend's breaker opens and closes, and which shard job probes it."""

from __future__ import annotations

import datetime

import pytest
from buildsync.rules.breaker import CLOSED, FAILURES_TO_OPEN, SLOW_FAILURE, Breaker, probe_index, transition

NOW = datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc)
# A call that failed at once: refused, or answered with an error.
QUICK = datetime.timedelta(seconds=0.2)


def failed(times: int, state: Breaker = CLOSED) -> Breaker:
    for attempt in range(times):
        state = state.after_failure(f"failure {attempt + 1}", NOW + datetime.timedelta(seconds=attempt), QUICK)
    return state


def test_a_breaker_opens_on_the_third_failure_without_a_success_between():
    assert [failed(n).is_open for n in range(1, FAILURES_TO_OPEN + 2)] == [False, False, True, True]
    assert failed(FAILURES_TO_OPEN).opened_at == NOW + datetime.timedelta(seconds=FAILURES_TO_OPEN - 1)


def test_one_failed_call_that_kept_its_caller_waiting_opens_the_breaker_at_once():
    assert CLOSED.after_failure("DEADLINE_EXCEEDED", NOW, SLOW_FAILURE).is_open
    assert not CLOSED.after_failure("UNAVAILABLE", NOW, SLOW_FAILURE - datetime.timedelta(seconds=1)).is_open


def test_an_open_breaker_keeps_the_time_it_opened_and_the_last_error():
    state = failed(FAILURES_TO_OPEN + 2)

    assert (state.failures, state.opened_at, state.last_error) == (5, NOW + datetime.timedelta(seconds=2), "failure 5")


def test_a_success_closes_the_breaker_and_forgets_every_failure():
    assert failed(FAILURES_TO_OPEN).after_success() == CLOSED
    assert failed(FAILURES_TO_OPEN - 1).after_success().after_failure("x", NOW, QUICK).is_open is False


@pytest.mark.parametrize(
    "before, after, changed",
    [
        (CLOSED, failed(1), None),
        (failed(2), failed(3), "opened"),
        (failed(3), failed(4), None),
        (failed(3), CLOSED, "closed"),
        (failed(1), CLOSED, None),
    ],
)
def test_transition_names_only_a_change_of_state(before, after, changed):
    assert transition(before, after) == changed


def test_the_probe_is_another_shard_job_each_minute_and_the_same_within_one():
    minute = NOW + datetime.timedelta(minutes=7)

    assert [probe_index(minute + datetime.timedelta(seconds=s), 3) for s in (0, 30, 59, 60, 120, 180)] == [
        1,
        1,
        1,
        2,
        0,
        1,
    ]
    assert probe_index(minute, 1) == 0
