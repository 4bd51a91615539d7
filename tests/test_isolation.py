"""stages/isolation.py: a backend's breaker opens on failed calls, holds its batches back, and a probe closes it.

On the Datastore emulator with a real TaskBackend, through Syncer.sync_and_complete as both the sync
function and the pipeline call it.
"""

from __future__ import annotations

import grpc
import pytest
from buildsync.errors import BreakerOpenError, PermanentError, SupersededError
from buildsync.proto import buildbucket_pb2 as pb
from buildsync.rules.breaker import CLOSED, FAILURES_TO_OPEN
from buildsync.stages.messages import SyncBatch
from buildsync.stages.sync import Syncer, SyncOptions
from buildsync.store import breakers

from tests.builds import BACKEND, get_build, put_build
from tests.harness import LATER, LONG_AGO, PLANNED_AT, captured_logs


@pytest.fixture
def syncer(datastore_client, make_settings, pool, transaction_begin):
    options = SyncOptions(clock=lambda: LATER, transaction_begin=transaction_begin)
    return Syncer(datastore_client, make_settings(), pool, options=options)


def batch(*build_ids: int, probe: bool = False) -> SyncBatch:
    return SyncBatch(BACKEND, "proj", build_ids, PLANNED_AT, probe=probe)


def due_builds(client, task_backend, *build_ids: int) -> None:
    for build_id in build_ids:
        put_build(client, build_id, updated=LONG_AGO)
        task_backend.backend.set_task(f"task-{build_id}", pb.FAILURE, 2)


def breaker_lines(captured) -> list[tuple[str, int]]:
    return [(e["state"], e["failures"]) for e in captured.events() if e.get("metric") == "backend_breaker"]


def fail_until_open(syncer, task_backend) -> None:
    task_backend.backend.fail_with = grpc.StatusCode.PERMISSION_DENIED
    for _ in range(FAILURES_TO_OPEN):
        with pytest.raises(PermanentError, match="PERMISSION_DENIED"):
            syncer.sync_and_complete(batch(1))


def test_the_third_failed_call_opens_the_breaker_and_the_next_batch_fails_fast(datastore_client, task_backend, syncer):
    due_builds(datastore_client, task_backend, 1, 2)

    with captured_logs() as captured:
        fail_until_open(syncer, task_backend)
        with pytest.raises(BreakerOpenError, match="held back") as raised:
            syncer.sync_and_complete(batch(1, 2))

    assert len(task_backend.backend.calls) == FAILURES_TO_OPEN  # the held-back batch never reached the backend
    assert isinstance(raised.value, SupersededError)  # acknowledged unhandled, as a message newer plans cover
    assert breaker_lines(captured) == [("opened", FAILURES_TO_OPEN)]
    state = breakers.read(datastore_client, [BACKEND])[BACKEND]
    assert state.is_open and "PERMISSION_DENIED" in state.last_error
    assert get_build(datastore_client, 2)[1].status == pb.STARTED  # nothing written: still due


def test_a_probe_passes_the_open_breaker_and_its_success_closes_it(datastore_client, task_backend, syncer):
    due_builds(datastore_client, task_backend, 1, 2)
    fail_until_open(syncer, task_backend)
    task_backend.backend.fail_with = None  # the backend recovers

    with captured_logs() as captured:
        report = syncer.sync_and_complete(batch(2, probe=True))
        after = syncer.sync_and_complete(batch(1))

    assert (report.updated, after.updated) == (1, 1)
    assert breaker_lines(captured) == [("closed", FAILURES_TO_OPEN)]
    assert breakers.read(datastore_client, [BACKEND])[BACKEND] == CLOSED


def test_a_probe_that_fails_keeps_the_breaker_open(datastore_client, task_backend, syncer):
    due_builds(datastore_client, task_backend, 1)
    fail_until_open(syncer, task_backend)

    with captured_logs() as captured, pytest.raises(PermanentError, match="PERMISSION_DENIED"):
        syncer.sync_and_complete(batch(1, probe=True))

    assert breaker_lines(captured) == []
    assert breakers.read(datastore_client, [BACKEND])[BACKEND].failures == FAILURES_TO_OPEN + 1


def test_a_healthy_backend_never_writes_its_breaker(datastore_client, task_backend, syncer):
    due_builds(datastore_client, task_backend, 1)

    syncer.sync_and_complete(batch(1))

    assert list(datastore_client.query(kind=breakers.BREAKER_KIND).fetch()) == []


def test_a_success_after_a_failure_forgets_it(datastore_client, task_backend, syncer):
    due_builds(datastore_client, task_backend, 1, 2)
    task_backend.backend.fail_with = grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(PermanentError):
        syncer.sync_and_complete(batch(1))
    task_backend.backend.fail_with = None

    syncer.sync_and_complete(batch(2))

    assert breakers.read(datastore_client, [BACKEND])[BACKEND] == CLOSED


def test_a_dry_run_reads_the_breaker_and_records_nothing(datastore_client, task_backend, make_settings, pool):
    due_builds(datastore_client, task_backend, 1)
    task_backend.backend.fail_with = grpc.StatusCode.PERMISSION_DENIED
    dry = Syncer(datastore_client, make_settings(), pool, options=SyncOptions(dry_run=True, clock=lambda: LATER))

    for _ in range(FAILURES_TO_OPEN):
        with pytest.raises(PermanentError):
            dry.sync_and_complete(batch(1))

    assert breakers.read(datastore_client, [BACKEND])[BACKEND] == CLOSED
