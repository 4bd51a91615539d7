"""The sync stage against a misbehaving backend over real pRPC (and gRPC where both apply), on the emulator.

Each test syncs real builds through `sync_batch`; what Datastore holds
afterwards is the proof, not what a client returned.
"""

from __future__ import annotations

import dataclasses
import threading
import time

import grpc
import pytest
from buildsync.errors import PermanentError, TransientError
from buildsync.proto import buildbucket_pb2 as pb
from buildsync.store import model
from google.protobuf import struct_pb2

from tests.builds import BACKEND, get_build, put_build, snapshot
from tests.harness import LONG_AGO, captured_logs
from tools.prpc_server import RawAnswer


def seed(client, task_backend, n, status=pb.FAILURE):
    ids = list(range(1, n + 1))
    for build_id in ids:
        put_build(client, build_id, updated=LONG_AGO)
        task_backend.backend.set_task(f"task-{build_id}", status, 2, target=BACKEND)
    return ids


def seed_running(client, task_backend, n, details_bytes):
    """N due builds whose running tasks carry details of about `details_bytes`."""
    details = struct_pb2.Struct()
    details["log"] = "x" * (details_bytes - 16)
    ids = list(range(1, n + 1))
    for build_id in ids:
        put_build(client, build_id, updated=LONG_AGO)
        task_backend.backend.set_task(f"task-{build_id}", pb.STARTED, 2, target=BACKEND, details=details)
    return ids, details


def test_prpc_unavailable_then_ok_is_retried_within_the_call(datastore_client, task_backend, make_fetcher, sync):
    ids = seed(datastore_client, task_backend, 3)
    answers = iter([RawAnswer(status=503, headers={"X-Prpc-Grpc-Code": "14"}, body=b"restarting")])
    task_backend.prpc_server.raw_answer = lambda request: next(answers, None)
    fetcher = make_fetcher()
    report = sync(ids, fetcher=fetcher)

    assert report.completed == 3
    assert len(task_backend.prpc_server.requests) == 2 and task_backend.backend.calls == [3]
    assert all(get_build(datastore_client, i)[1].status == pb.FAILURE for i in ids)


def test_prpc_invalid_argument_is_permanent_and_writes_nothing(datastore_client, task_backend, make_fetcher, sync):
    ids = seed(datastore_client, task_backend, 3)
    task_backend.backend.fail_with = grpc.StatusCode.INVALID_ARGUMENT
    before = snapshot(datastore_client, ids)
    fetcher = make_fetcher()
    with pytest.raises(PermanentError, match="INVALID_ARGUMENT: FetchTasks on swarming://test-swarm") as raised:
        sync(ids, fetcher=fetcher)

    assert not isinstance(raised.value, TransientError)
    assert snapshot(datastore_client, ids) == before
    assert task_backend.backend.calls == [3]  # not retried


def test_prpc_garbage_with_code_zero_is_a_named_transient_error_and_writes_nothing(
    datastore_client, task_backend, make_fetcher, sync
):
    ids = seed(datastore_client, task_backend, 2)
    garbage = RawAnswer(headers={"X-Prpc-Grpc-Code": "0", "Content-Type": "application/prpc; encoding=binary"})
    task_backend.prpc_server.raw_answer = lambda request: dataclasses.replace(garbage, body=b"\x0a\xff\xff\xff junk")
    before = snapshot(datastore_client, ids)
    fetcher = make_fetcher()
    with pytest.raises(TransientError, match="INTERNAL: .*is not a buildbucket.v2.FetchTasksResponse"):
        sync(ids, fetcher=fetcher)

    assert snapshot(datastore_client, ids) == before
    assert len(task_backend.prpc_server.requests) == 1


def test_a_hung_http_backend_fails_the_batch_at_its_deadline(datastore_client, task_backend, make_fetcher, sync):
    ids = seed(datastore_client, task_backend, 2)
    task_backend.backend.hang = threading.Event()
    before = snapshot(datastore_client, ids)
    fetcher = make_fetcher(deadline_seconds=2)
    started = time.monotonic()
    try:
        with pytest.raises(TransientError, match="DEADLINE_EXCEEDED"):
            sync(ids, fetcher=fetcher)
        elapsed = time.monotonic() - started
    finally:
        task_backend.backend.hang.set()

    assert 2 <= elapsed < 10  # the deadline, not the backend, ended the call
    assert snapshot(datastore_client, ids) == before


@pytest.mark.both_transports
def test_a_50_mb_answer_syncs_its_whole_batch(datastore_client, task_backend, make_fetcher, sync):
    ids, details = seed_running(datastore_client, task_backend, 1000, details_bytes=49_900)
    fetcher = make_fetcher(deadline_seconds=120)
    report = sync(ids, fetcher=fetcher)

    assert report.updated == 1000 and task_backend.backend.calls == [1000]
    infra = get_build(datastore_client, 1000)[2]
    assert infra.backend.task.details.ByteSize() == details.ByteSize()


@pytest.mark.both_transports
def test_an_answer_still_over_the_limit_is_synced_in_halves(datastore_client, task_backend, make_fetcher, sync):
    ids, _ = seed_running(datastore_client, task_backend, 8, details_bytes=20_000)
    fetcher = make_fetcher(max_response_bytes=90_000)
    report = sync(ids, fetcher=fetcher)

    assert report.updated == 8
    assert task_backend.backend.calls == [8, 4, 4]


@pytest.mark.both_transports
def test_builds_of_another_backend_or_project_are_skipped_with_a_reason(
    datastore_client, task_backend, make_fetcher, sync
):
    put_build(datastore_client, 1, updated=LONG_AGO)  # belongs to the batch
    put_build(datastore_client, 2, updated=LONG_AGO, backend="swarming://elsewhere")
    retarget_task(datastore_client, 2, BACKEND)  # its task claims the batch's backend; the build does not
    put_build(datastore_client, 3, updated=LONG_AGO, project="other")
    put_build(datastore_client, 4, updated=LONG_AGO)
    retarget_task(datastore_client, 4, "swarming://elsewhere")  # its task is on another backend
    for build_id in (1, 2, 3, 4):
        task_backend.backend.set_task(f"task-{build_id}", pb.SUCCESS, 9, target=BACKEND)
    before = snapshot(datastore_client, [2, 3, 4])
    fetcher = make_fetcher()
    with captured_logs() as captured:
        report = sync([1, 2, 3, 4], fetcher=fetcher)

    assert (report.completed, report.skipped) == (1, 3)
    assert snapshot(datastore_client, [2, 3, 4]) == before
    assert task_backend.backend.calls == [3]  # build 4's task was never asked of this backend
    reasons = " ".join(str(e.get("reason")) for e in captured.events())
    assert "backend_target 'swarming://elsewhere' is not the batch's backend" in reasons
    assert "project 'other' is not the batch's project 'proj'" in reasons
    assert "task is on 'swarming://elsewhere'" in reasons


def retarget_task(client, build_id: int, target: str) -> None:
    entity = client.get(model.infra_key(client, build_id))
    infra = model.read_infra(entity)
    infra.backend.task.id.target = target
    model.write_infra(entity, infra)
    client.put(entity)
