"""The circuit breaker of one task backend: its state, how a call's outcome moves it, which job probes it.

docs/isolation.md "Decision: a shared circuit breaker per backend, a probe a
minute". Pure: store/breakers.py keeps the state in Datastore, so that every
sync instance, the planner and `buildsync sync` see the same; the stages act
on it.
"""

from __future__ import annotations

import dataclasses
import datetime

# Failed FetchTasks calls, without a success between, that open a breaker:
# a busy backend fails one call now and then and must not lose a minute for
# it; a broken one fails every call (docs/isolation.md).
FAILURES_TO_OPEN = 3

# A failed call that kept its caller waiting this long opens the breaker at
# once: a hung backend, or one unreachable and retried up to the deadline.
# Each such call held a sync instance as long as ten healthy 1000-build
# batches take, and every call in flight to it is doing the same.
SLOW_FAILURE = datetime.timedelta(seconds=10)

# The most builds a probe batch holds: enough to prove the backend answers,
# few enough that a probe that hangs again costs little.
PROBE_BATCH_SIZE = 100

# The probe moves to another of the backend's shard jobs every this often, so
# that a shard with nothing due cannot keep the breaker open: one trigger.
PROBE_ROTATION = datetime.timedelta(minutes=1)


@dataclasses.dataclass(frozen=True)
class Breaker:
    """One backend's breaker: open from `opened_at` until a FetchTasks call succeeds."""

    # Failed FetchTasks calls since the last success.
    failures: int = 0
    opened_at: datetime.datetime | None = None
    # The last failure, for the operator.
    last_error: str = ""

    @property
    def is_open(self) -> bool:
        return self.opened_at is not None

    def after_failure(self, error: str, now: datetime.datetime, waited: datetime.timedelta) -> Breaker:
        """The state once one more call failed with `error` after `waited`."""
        failures = self.failures + 1
        opens = failures >= FAILURES_TO_OPEN or waited >= SLOW_FAILURE
        return Breaker(failures, self.opened_at or (now if opens else None), error)

    def after_success(self) -> Breaker:
        """The state once a call succeeded: closed, nothing counted."""
        return CLOSED


# What a backend nobody recorded anything for has; a success brings every breaker back to it.
CLOSED = Breaker()


def transition(before: Breaker, after: Breaker) -> str | None:
    """ "opened" or "closed" when the breaker changed state from `before` to `after`, else None."""
    if before.is_open == after.is_open:
        return None
    return "opened" if after.is_open else "closed"


def probe_index(planned_at: datetime.datetime, jobs: int) -> int:
    """Which of a held-back backend's `jobs` shard jobs probes it for a plan made at `planned_at`."""
    return int(planned_at.timestamp() // PROBE_ROTATION.total_seconds()) % jobs
