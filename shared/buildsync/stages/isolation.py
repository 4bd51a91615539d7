"""Backend isolation: a backend whose breaker is open is held back, so that it cannot stall the others.

docs/isolation.md "Decision: a shared circuit breaker per backend, a probe a
minute". The planner plans such a backend one probe job a trigger instead of
all of them (`hold_back`); the sync fails every other batch of it fast, before
FetchTasks, and records each call's outcome in the breaker (`guard`). The
breaker's rules are rules/breaker.py's, its entity store/breakers.py's.
"""

from __future__ import annotations

import dataclasses
import datetime
import time
from typing import Callable

from google.cloud import datastore

from buildsync import logs, metrics
from buildsync.errors import BreakerOpenError, ResponseTooBigError, SyncError
from buildsync.proto import buildbucket_pb2 as pb
from buildsync.remote.backend import TaskFetcher
from buildsync.rules.breaker import CLOSED, Breaker, probe_index, transition
from buildsync.stages.messages import ShardJob, SyncBatch
from buildsync.store import breakers
from buildsync.store.transactions import TransactionBegin


def hold_back(
    client: datastore.Client, jobs: dict[str, list[ShardJob]], planned_at: datetime.datetime
) -> list[ShardJob]:
    """The jobs to publish of `jobs` (by backend): all of a closed backend's, one probe job of an open one's.

    One lookup of every backend's breaker; one WARNING line a backend held
    back, the backend_held_back metric. Retry behaviour: Datastore failures
    raise TransientError.
    """
    states = breakers.read(client, sorted(jobs))
    planned = []
    for backend, backend_jobs in jobs.items():
        state = states[backend]
        if not state.is_open:
            planned += backend_jobs
            continue
        probe = None
        if backend_jobs:
            probe = dataclasses.replace(backend_jobs[probe_index(planned_at, len(backend_jobs))], probe=True)
            planned.append(probe)
        what = f"{probe.project} shard {probe.shard}" if probe else "none (no project has incomplete builds)"
        open_seconds = (planned_at - state.opened_at).total_seconds()
        metrics.backend_held_back(backend, state.failures, max(0.0, open_seconds), state.last_error, what)
    return planned


def guard(
    client: datastore.Client,
    fetcher: TaskFetcher,
    batch: SyncBatch,
    clock: Callable[[], datetime.datetime],
    begin: TransactionBegin | None,
) -> TaskFetcher:
    """`fetcher` for `batch`, recording each call's outcome in the backend's breaker (none when `begin` is None).

    Raises BreakerOpenError (acknowledged: the builds stay due) when the
    breaker is open and `batch` is no probe; TransientError when the breaker
    cannot be read. A dry run passes None, so that it writes nothing.
    """
    state = breakers.read(client, [batch.backend])[batch.backend]
    if state.is_open and not batch.probe:
        raise BreakerOpenError(
            f"backend {batch.backend} is held back since {state.opened_at.isoformat()} after {state.failures} "
            f"failed FetchTasks calls (last: {state.last_error}); {len(batch.build_ids)} builds of "
            f"{batch.project} stay due for the planner's probe and the plans after it",
            clock() - batch.planned_at,
        )
    if begin is None:
        return fetcher
    return _RecordingFetcher(fetcher, client, batch.backend, state, clock, begin)


@dataclasses.dataclass(frozen=True)
class _RecordingFetcher:
    """A TaskFetcher that counts each failed call in the backend's breaker, and a success when one was counted."""

    fetcher: TaskFetcher
    client: datastore.Client
    target: str
    # The breaker as read before the batch: a closed one with nothing counted is not written on success.
    seen: Breaker
    clock: Callable[[], datetime.datetime]
    begin: TransactionBegin

    def fetch_tasks(self, task_ids: list[pb.TaskID], project: str) -> pb.FetchTasksResponse:
        started = time.monotonic()
        try:
            response = self.fetcher.fetch_tasks(task_ids, project)
        except ResponseTooBigError:
            raise  # the backend answered; fetch_in_halves asks for less
        except SyncError as error:
            failure, now = str(error), self.clock()
            waited = datetime.timedelta(seconds=time.monotonic() - started)
            self._record(lambda breaker: breaker.after_failure(failure, now, waited))
            raise
        if self.seen != CLOSED:
            self._record(lambda breaker: breaker.after_success())
        return response

    def _record(self, change: Callable[[Breaker], Breaker]) -> None:
        """Updates the breaker; a failure to do so is logged, never the batch's failure."""
        try:
            before, after = breakers.update(self.client, self.target, change, self.begin)
        except SyncError as error:
            logs.event("WARNING", "backend breaker not updated", backend=self.target, error=str(error))
            return
        changed = transition(before, after)
        if changed is not None:
            metrics.backend_breaker(self.target, changed, after.failures or before.failures, after.last_error)
