"""Fault injection: the sync under redelivery, flaky and broken backends, racing
writers, a killed function and a restarted Datastore.

Everything is real: the Datastore and Pub/Sub emulators, a grpcio TaskBackend
server, functions-framework processes. Faults are injected at the edges (a
servicer that aborts calls, a TCP link that delays bytes, a process killed
with SIGKILL, an emulator restarted), never by replacing a client.

Each test prints one `FIGURE <name>: key=value ...` line (run pytest with -s
to see them) and asserts the figure it prints.
"""

from __future__ import annotations

import contextlib
import datetime
import itertools
import json
import random
import socket
import threading
import time
from collections.abc import Callable
from typing import NamedTuple

import grpc
import pytest
from buildsync.errors import TransientError
from buildsync.proto import buildbucket_pb2 as pb
from buildsync.remote.backend import BackendPool, GrpcTaskBackend
from buildsync.remote.backend_options import GRPC
from buildsync.rules.settings import Settings
from buildsync.rules.status_rules import is_ended
from buildsync.stages.messages import ShardJob, SyncBatch, SyncTrigger
from buildsync.stages.pipeline import run_pipeline
from buildsync.stages.report import SyncReport
from buildsync.stages.sync import Syncer, SyncOptions, sync_batch, utc_now
from buildsync.store import model
from buildsync.store.outbox import OUTBOX_KIND
from buildsync.store.transactions import TransactionBegin, run_in_transaction
from google.cloud import datastore
from google.protobuf import struct_pb2

from tests.builds import entity_keys, put_build, snapshot
from tests.harness import (
    BACKEND,
    LONG_AGO,
    PROJECT,
    SETTLE_SECONDS,
    backend_pool,
    captured_logs,
    start_emulator,
)
from tools.delay_proxy import CommitGate, DelayProxy
from tools.emulators import Emulator, wait_until
from tools.emulators import datastore_client as emulator_client
from tools.new_builds import NewBuild, new_build_entities
from tools.prpc_server import PrpcStatus
from tools.stack import from_pubsub_data
from tools.task_backend import FakeTaskBackend

pytestmark = pytest.mark.both_emulators

T0 = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
# A round's clock is this much later than the previous round's, so that every
# build a round touched (next sync = its update time + 5 minutes) is due again.
ROUND_STEP = datetime.timedelta(minutes=10)


def sync_round(
    client: datastore.Client,
    settings: Settings,
    backends: BackendPool,
    sync_options: Callable[..., SyncOptions],
    at: datetime.datetime = T0,
    **options,
) -> SyncReport:
    """One pipeline run over the test backend's "proj" builds, planned at `at` with the clock stopped there."""
    sync_options = sync_options(clock=lambda: at)
    return run_pipeline(
        Syncer(client, settings, backends, options=sync_options), SyncTrigger(BACKEND, "proj"), planned_at=at, **options
    )


def figure(name: str, **values) -> None:
    print(f"\nFIGURE {name}: " + " ".join(f"{key}={value}" for key, value in values.items()), flush=True)


# --- reading what is stored --------------------------------------------------


class Stored(NamedTuple):
    """One build as stored: the three entities' view of its status and task."""

    status: int  # Build.proto.status
    status_v2: int  # Build.status_v2
    incomplete: bool  # Build.incomplete
    mirrored: int  # BuildStatus.status
    task_status: int  # BuildInfra.infra.backend.task.status
    update_id: int  # BuildInfra.infra.backend.task.update_id
    next_sync: str  # Build.next_backend_sync_time


def read_stored(
    client: datastore.Client, build_ids, consistent: bool = False, begin: TransactionBegin = TransactionBegin.LAZY
) -> dict[int, Stored]:
    """Every build of `build_ids`; `consistent` reads each 25 in a read-only transaction begun as `begin` says.

    (A transaction, even a read-only one, spans at most 25 entity groups.)
    """
    build_ids = list(build_ids)
    found: dict[tuple, datastore.Entity] = {}
    step = 25 if consistent else 300  # a lookup takes at most 1000 keys
    for start in range(0, len(build_ids), step):
        keys = entity_keys(client, build_ids[start : start + step])
        if consistent:  # the emulator aborts even read-only transactions under contention
            entities = run_in_transaction(
                client, lambda _, keys=keys: client.get_multi(keys), read_only=True, attempts=20, begin=begin
            )
        else:
            entities = client.get_multi(keys)
        found.update((e.key.flat_path, e) for e in entities)
    stored = {}
    for build_id in build_ids:
        build_entity = found[model.build_key(client, build_id).flat_path]
        infra = model.read_infra(found[model.infra_key(client, build_id).flat_path])
        stored[build_id] = Stored(
            status=model.read_build(build_entity).status,
            status_v2=build_entity["status_v2"],
            incomplete=build_entity["incomplete"],
            mirrored=found[model.status_key(client, build_id).flat_path]["status"],
            task_status=infra.backend.task.status,
            update_id=infra.backend.task.update_id,
            next_sync=build_entity["next_backend_sync_time"],
        )
    return stored


def corruption(stored: dict[int, Stored]) -> dict[int, str]:
    """Builds whose entities disagree with each other, and how."""
    found = {}
    for build_id, s in stored.items():
        if not s.status == s.status_v2 == s.mirrored:
            found[build_id] = f"Build.status {s.status}, status_v2 {s.status_v2}, BuildStatus {s.mirrored}"
        elif s.incomplete == is_ended(s.status):
            found[build_id] = f"incomplete={s.incomplete} with status {s.status}"
        elif is_ended(s.task_status) != is_ended(s.status):
            # Only an ended task ends a build here, and an ended task always ends it.
            found[build_id] = f"task status {s.task_status} vs build status {s.status}"
    return found


def put_builds(client: datastore.Client, specs: list[NewBuild], shards: dict[int, int] | None = None) -> None:
    """Writes many new builds in few requests (a commit takes at most 500 entities)."""
    entities = []
    for spec in specs:
        entities += new_build_entities(client, spec, shard=(shards or {}).get(spec.build_id, 0))
    for start in range(0, len(entities), 450):
        client.put_multi(entities[start : start + 450])


def new_build(build_id: int, project: str = "proj", **fields) -> NewBuild:
    return NewBuild(
        build_id=build_id, project=project, backend=BACKEND, task_id=f"task-{build_id}", update_time=LONG_AGO, **fields
    )


def expected_build_status(task_status: int, task_success: bool) -> int:
    """docs/rules.md for a STARTED build without output status: what an ended task makes of it."""
    if task_status == pb.SUCCESS and not task_success:
        return pb.INFRA_FAILURE
    return task_status


# --- 1. every Pub/Sub message delivered one, two and three times --------------

DELIVERIES = (1, 2, 3)
PATHS = ("trigger", "shard", "batch")
PER_PATH = 6
TASK_PATTERN = (
    (pb.FAILURE, 2),
    (pb.STARTED, 3),
    (pb.CANCELED, 2),
    (pb.SUCCESS, 4),
    (pb.INFRA_FAILURE, 2),
    (pb.STARTED, 2),
)


def test_duplicate_deliveries_leave_the_same_end_state_as_one(
    datastore_client, make_stack, task_backend, settings_file
):
    # The same builds three times over: synced by 1, 2 and 3 copies of each
    # message, entering the stack at the planner, the shard or the sync stage.
    groups: dict[tuple[int, str], list[int]] = {}
    specs, shards, build_id = [], {}, 0
    for deliveries in DELIVERIES:
        for path in PATHS:
            ids = groups[(deliveries, path)] = []
            for index in range(PER_PATH):
                build_id += 1
                ids.append(build_id)
                specs.append(new_build(build_id, project=f"{path}-x{deliveries}", shards=3))
                shards[build_id] = index % 3
                task_status, update_id = TASK_PATTERN[index]
                task_backend.backend.set_task(f"task-{build_id}", task_status, update_id)
    put_builds(datastore_client, specs, shards)
    every_id = [i for ids in groups.values() for i in ids]
    # settings_file: 3 shards, succeed_build_if_task_is_succeeded false.
    expected = {i: expected_build_status(TASK_PATTERN[(i - 1) % PER_PATH][0], task_success=False) for i in every_id}
    task_update = {i: TASK_PATTERN[(i - 1) % PER_PATH][1] for i in every_id}
    ended = {i for i, status in expected.items() if is_ended(status)}

    planned_at = utc_now()
    with make_stack(settings_file) as stack:
        for copy in range(max(DELIVERIES)):  # copies of one message go out back to back
            for deliveries in DELIVERIES:
                if copy >= deliveries:
                    continue
                stack.publish(stack.topics.trigger, SyncTrigger(BACKEND, f"trigger-x{deliveries}").to_json())
                for shard in range(3):
                    job = ShardJob(BACKEND, f"shard-x{deliveries}", shard, 3, planned_at)
                    stack.publish(stack.topics.shard, job.to_json())
                batch = SyncBatch(BACKEND, f"batch-x{deliveries}", tuple(groups[(deliveries, "batch")]), planned_at)
                stack.publish(stack.topics.sync, batch.to_json())

        def settled() -> bool:
            stored = read_stored(datastore_client, every_id)
            return all((stored[i].status, stored[i].update_id) == (expected[i], task_update[i]) for i in every_id)

        with contextlib.suppress(TimeoutError):  # the assertions below say what is missing
            wait_until(settled, SETTLE_SECONDS, "every build to reach its task's status", interval=0.25)
        received: list[pb.Build] = []

        def all_notified() -> bool:
            received.extend(from_pubsub_data(m.message.data).build for m in stack.pull_notifications())
            return {n.id for n in received} >= ended

        with contextlib.suppress(TimeoutError):
            wait_until(all_notified, SETTLE_SECONDS, "a notification for every ended build", interval=0.25)
        received.extend(from_pubsub_data(m.message.data).build for m in stack.pull_notifications())
        events = stack.log_events()
    errors = [e for e in events if e.get("severity") == "ERROR"]
    retried = [e for e in events if e.get("retry") is True]

    stored = read_stored(datastore_client, every_id)
    end_state = {i: (s.status, s.update_id, s.mirrored, s.incomplete, s.status_v2) for i, s in stored.items()}
    single = {  # one delivery: each task applied once
        i: (expected[i], task_update[i], expected[i], not is_ended(expected[i]), expected[i]) for i in every_id
    }
    assert {i: end_state[i] for i in groups_of(groups, 1)} == {i: single[i] for i in groups_of(groups, 1)}
    for deliveries in DELIVERIES[1:]:
        divergent = [
            (path, index)
            for path in PATHS
            for index, (one, many) in enumerate(zip(groups[(1, path)], groups[(deliveries, path)], strict=True))
            if end_state[one] != end_state[many]
        ]
        duplicates = sum(1 for n in received if n.id in groups_of(groups, deliveries)) - len(
            ended & set(groups_of(groups, deliveries))
        )
        figure(
            "duplicate-delivery",
            deliveries=deliveries,
            builds=len(groups_of(groups, deliveries)),
            divergent_builds=len(divergent),
            duplicate_notifications=duplicates,
            messages_retried=len(retried),
            errors_logged=len(errors),
        )
        assert divergent == []
        assert duplicates == 0  # docs/rules.md: a completed build is reported once
    assert corruption(stored) == {}
    assert ended - {n.id for n in received} == set()  # every ended build was reported
    assert errors == []  # a duplicate is skipped, never an error


def groups_of(groups: dict[tuple[int, str], list[int]], deliveries: int) -> list[int]:
    return [i for path in PATHS for i in groups[(deliveries, path)]]


# --- 2. a backend that fails 30% of calls and 10% of tasks --------------------


class Flakiness:
    """A response hook that fails a seeded-random share of FetchTasks calls whole with UNAVAILABLE."""

    def __init__(self, seed: int, failure_rate: float) -> None:
        self.random = random.Random(seed)
        self.failure_rate = failure_rate
        self.aborted: list[int] = []  # ids asked for in each aborted call
        self._lock = threading.Lock()

    def __call__(self, request: pb.FetchTasksRequest, response: pb.FetchTasksResponse) -> pb.FetchTasksResponse:
        with self._lock:
            fail = self.random.random() < self.failure_rate
            if fail:
                self.aborted.append(len(request.task_ids))
        if fail:
            raise PrpcStatus(grpc.StatusCode.UNAVAILABLE, "injected: backend overloaded")
        return response


FLAKY_BUILDS = 120
MAX_ROUNDS = 30
FINAL_TASKS = (pb.SUCCESS, pb.FAILURE, pb.INFRA_FAILURE, pb.CANCELED, pb.STARTED)


@pytest.mark.both_transports
def test_flaky_backend_converges_without_corruption(
    datastore_client, task_backend, make_settings, pool, transaction_begin, transport, sync_options
):
    ids = list(range(1, FLAKY_BUILDS + 1))
    # Task i moves one update per round, STARTED until its last update.
    final_update = {i: 2 + i % 4 for i in ids}
    final_status = {i: FINAL_TASKS[i % len(FINAL_TASKS)] for i in ids}
    expected = {i: expected_build_status(final_status[i], task_success=True) for i in ids}
    put_builds(datastore_client, [new_build(i, shards=2) for i in ids], {i: i % 2 for i in ids})
    backend = task_backend.backend
    flaky = backend.response_hook = Flakiness(seed=20240611, failure_rate=0.3)
    errors_rng = random.Random(7)
    seen = {i: 1 for i in ids}
    rounds, per_round = 0, []
    corrupted: dict[int, str] = {}  # build id -> the first thing found wrong with it
    misreported: list[tuple] = []

    settings = make_settings(shards=2, task_success=True)
    for round_no in range(1, MAX_ROUNDS + 1):
        for i in ids:
            update_id = min(1 + round_no, final_update[i])
            status = final_status[i] if update_id == final_update[i] else pb.STARTED
            backend.set_task(f"task-{i}", status, update_id)
        backend.task_errors = {
            f"task-{i}": (grpc.StatusCode.INTERNAL.value[0], "injected: lookup failed")
            for i in errors_rng.sample(ids, len(ids) // 10)
        }
        aborted_before = len(flaky.aborted)
        at = T0 + round_no * ROUND_STEP
        report = sync_round(datastore_client, settings, pool, sync_options, at, batch_size=10)
        aborted_builds = sum(flaky.aborted[aborted_before:])
        per_round.append((report.due, aborted_builds, report.invalid, report.failed))
        rounds = round_no

        stored = read_stored(datastore_client, ids, consistent=True, begin=transaction_begin)
        for i, problem in corruption(stored).items():
            corrupted[i] = f"round {round_no}: {problem}"
        for i in ids:
            backend_update = min(1 + round_no, final_update[i])
            if not seen[i] <= stored[i].update_id <= backend_update:
                corrupted[i] = (
                    f"round {round_no}: update_id {stored[i].update_id}, was {seen[i]}, backend {backend_update}"
                )
            seen[i] = stored[i].update_id
        # Over gRPC every build of an aborted call is counted failed; pRPC's client retries
        # UNAVAILABLE within the call, so fewer fail. Either way a failure asks for a retry.
        lost = report.failed < aborted_builds if transport == GRPC else report.failed > aborted_builds
        if lost or report.retry != (report.failed > 0):
            misreported.append((round_no, aborted_builds, report.failed, report.retry))
        if all(stored[i].status == expected[i] and stored[i].update_id == final_update[i] for i in ids):
            break

    converged = sum(1 for i in ids if stored[i].status == expected[i] and stored[i].update_id == final_update[i])
    figure(
        f"flaky-backend-{transport}",
        rounds_to_converge=rounds,
        builds=len(ids),
        converged=converged,
        aborted_calls=len(flaky.aborted),
        calls=len(backend.calls),
        invalid_outcomes=sum(r[2] for r in per_round),
        corrupted=len(corrupted),
    )
    assert corrupted == {}
    assert misreported == []
    assert converged == len(ids), f"not converged after {MAX_ROUNDS} rounds: {per_round}"
    assert flaky.aborted and sum(r[2] for r in per_round) > 0  # the faults did happen


# --- 3. a backend that hangs -------------------------------------------------


@pytest.mark.both_transports
def test_hung_backend_fails_the_batch_at_the_deadline_and_writes_nothing(
    datastore_client, task_backend, make_settings, transport, sync_options
):
    ids = [1, 2, 3]
    for i in ids:
        put_build(datastore_client, i, updated=LONG_AGO)
        task_backend.backend.set_task(f"task-{i}", pb.FAILURE, 2)
    backend = make_settings().backend(BACKEND)
    batch = SyncBatch(BACKEND, "proj", tuple(ids), T0)
    options = sync_options(clock=lambda: T0)
    before = snapshot(datastore_client, ids)
    task_backend.backend.hang = threading.Event()
    backends = backend_pool(transport, deadline_seconds=2)
    fetcher = backends.get(BACKEND, backend.hostname)
    try:
        started = time.monotonic()
        with pytest.raises(TransientError, match="DEADLINE_EXCEEDED") as raised:
            sync_batch(datastore_client, fetcher, backend, batch, options)
        fired_after = time.monotonic() - started
        assert snapshot(datastore_client, ids) == before
        assert task_backend.backend.calls == [3]  # the call reached the backend and hung there

        task_backend.backend.hang.set()  # the backend recovers
        task_backend.backend.hang = None
        report = sync_batch(datastore_client, fetcher, backend, batch, options)
    finally:
        backends.close()

    figure(
        f"hung-backend-{transport}",
        deadline_seconds=2,
        seconds_until_deadline_fired=f"{fired_after:.2f}",
        retry_updated=report.updated,
    )
    assert "FetchTasks" in str(raised.value)
    assert 1.9 <= fired_after < 15
    assert (report.updated, report.completed, report.failed) == (3, 3, 0)
    stored = read_stored(datastore_client, ids)
    assert {i: (s.status, s.update_id) for i, s in stored.items()} == {i: (pb.FAILURE, 2) for i in ids}
    assert corruption(stored) == {}


@pytest.mark.both_transports
def test_hung_backend_in_the_pipeline_is_a_retryable_failure(
    datastore_client, task_backend, make_settings, transport, sync_options
):
    put_build(datastore_client, 1, updated=LONG_AGO)
    task_backend.backend.set_task("task-1", pb.FAILURE, 2)
    before = snapshot(datastore_client, [1])
    task_backend.backend.hang = threading.Event()
    with contextlib.closing(backend_pool(transport, deadline_seconds=2)) as backends:
        started = time.monotonic()
        report = sync_round(datastore_client, make_settings(), backends, sync_options)
        elapsed = time.monotonic() - started
    task_backend.backend.hang.set()

    figure(f"hung-backend-pipeline-{transport}", seconds=f"{elapsed:.2f}", failed=report.failed, retry=report.retry)
    assert (report.due, report.failed, report.retry) == (1, 1, True)
    assert "DEADLINE_EXCEEDED" in report.errors[0]
    assert elapsed < 15
    assert snapshot(datastore_client, [1]) == before


# --- 4. a backend that answers wrongly -----------------------------------------


def details_of_size(size: int) -> struct_pb2.Struct:
    """A details Struct that serializes to exactly `size` bytes."""
    details = struct_pb2.Struct()
    details["log"] = "x" * size
    details["log"] = "x" * (2 * size - details.ByteSize())
    assert details.ByteSize() == size
    return details


def drop_last(request, response):
    return pb.FetchTasksResponse(responses=response.responses[:-1])


def add_one(request, response):
    return pb.FetchTasksResponse(responses=list(response.responses) + [response.responses[0]])


def clear_id_of_task_2(request, response):
    for item in response.responses:
        if item.task.id.id == "task-2":
            item.task.id.id = ""
    return response


# (name, task-2 as (status, update_id, fields), response hook, reason logged, whole batch rejected)
BAD_ANSWERS = [
    ("too-few-responses", (pb.FAILURE, 2, {}), drop_last, "2 responses for 3 task ids", True),
    ("too-many-responses", (pb.FAILURE, 2, {}), add_one, "4 responses for 3 task ids", True),
    ("empty-task-id", (pb.FAILURE, 2, {}), clear_id_of_task_2, "task id is empty", False),
    ("update-id-0", (pb.FAILURE, 0, {}), None, "update_id is 0", False),
    ("status-ENDED_MASK", (pb.ENDED_MASK, 2, {}), None, "status 4 is not a usable task status", False),
    ("status-UNSPECIFIED", (pb.STATUS_UNSPECIFIED, 2, {}), None, "status 0 is not a usable task status", False),
    ("status-undefined-99", (99, 2, {}), None, "status 99 is not a usable task status", False),
    (
        "details-60KB",
        (pb.FAILURE, 2, {"details": details_of_size(60_000)}),
        None,
        "over 52,224 bytes in Go's text",
        False,
    ),
]


@pytest.mark.both_transports
@pytest.mark.parametrize("name, task_2, hook, reason, whole_batch", BAD_ANSWERS, ids=[case[0] for case in BAD_ANSWERS])
def test_bad_answer_is_rejected_logged_and_not_written(
    datastore_client, task_backend, make_settings, pool, sync_options, name, task_2, hook, reason, whole_batch
):
    ids = [1, 2, 3]
    for i in ids:
        put_build(datastore_client, i, updated=LONG_AGO)
    task_backend.backend.set_task("task-1", pb.FAILURE, 2)
    status, update_id, fields = task_2
    task_backend.backend.set_task("task-2", status, update_id, **fields)
    task_backend.backend.set_task("task-3", pb.STARTED, 2)
    task_backend.backend.response_hook = hook
    rejected = ids if whole_batch else [2]
    before = snapshot(datastore_client, rejected)

    with captured_logs() as captured:
        report = sync_round(datastore_client, make_settings(), pool, sync_options)
    events = captured.events()

    unchanged = snapshot(datastore_client, rejected) == before
    logged = [e for e in events if reason in json.dumps(e)]
    figure(
        "bad-answer",
        case=name,
        rejected_builds=len(rejected),
        written_from_it=0 if unchanged else "some",
        logged=len(logged),
    )
    assert unchanged
    stored = read_stored(datastore_client, ids)
    if whole_batch:
        assert (report.failed, report.updated, report.retry) == (3, 0, False)
        [failure] = [e for e in events if e["message"] == "batch failed"]
        assert failure["severity"] == "ERROR" and reason in failure["error"]
    else:
        assert (report.invalid, report.updated, report.completed, report.failed) == (1, 2, 1, 0)
        assert (stored[1].status, stored[3].status, stored[3].update_id) == (pb.FAILURE, pb.STARTED, 2)
        [task_log] = [e for e in events if e["message"] == "backend task rejected"]
        assert task_log["task_id"] == "task-2" and reason in task_log["reason"]
        [build_log] = [e for e in events if e["message"] == "build invalid"]
        assert build_log["build_id"] == 2 and reason in build_log["reason"]
    assert corruption(stored) == {}


@pytest.mark.both_transports
def test_details_size_rule_accepts_52_kb_whose_go_text_is_under_51_kib(
    datastore_client, task_backend, make_settings, pool, sync_options
):
    # 52,000 bytes serialized, 52,025 in Go's text form: under upstream's 51 × 1024.
    put_build(datastore_client, 1, updated=LONG_AGO)
    task_backend.backend.set_task("task-1", pb.FAILURE, 2, details=details_of_size(52_000))

    report = sync_round(datastore_client, make_settings(), pool, sync_options)

    assert (report.updated, report.invalid) == (1, 0)
    assert read_stored(datastore_client, [1])[1].status == pb.FAILURE


# --- 5. a concurrent writer raising update_ids --------------------------------

RACE_BUILDS = 50
PUSHES_PER_WRITER = 90


class Race:
    """The backend's truth and what the writers and the monitor saw."""

    def __init__(self, ids: list[int]) -> None:
        self.truth = {i: (1, pb.STARTED) for i in ids}  # the backend's task: update_id, status
        self.written = {i: 0 for i in ids}  # the last update_id a writer committed
        self.violations: list[tuple[str, str]] = []  # (kind, what)
        self.pushes = self.already_there = self.gave_up = 0
        self.lock = threading.Lock()

    def violation(self, kind: str, text: str) -> None:
        with self.lock:
            self.violations.append((kind, text))

    def count(self, kind: str) -> int:
        return sum(1 for k, _ in self.violations if k == kind)


def push(
    client: datastore.Client, begin: TransactionBegin, race: Race, build_id: int, update_id: int, status: int
) -> str:
    """What Buildbucket does when the backend pushes a task update: one transaction."""

    def work(_):
        keys = [
            model.build_key(client, build_id),
            model.infra_key(client, build_id),
            model.status_key(client, build_id),
        ]
        found = {e.key.flat_path: e for e in client.get_multi(keys)}
        build_entity, infra_entity, status_entity = (found[k.flat_path] for k in keys)
        build, infra = model.read_build(build_entity), model.read_infra(infra_entity)
        task = infra.backend.task
        if task.update_id < race.written[build_id]:
            race.violation(
                "backwards",
                f"build {build_id}: stored update_id {task.update_id} < {race.written[build_id]} written before",
            )
        if task.update_id >= update_id:
            return "already there"  # the sync fetched this update first
        if is_ended(build.status):
            race.violation("lost", f"build {build_id} ended ({build.status}) before its task (update {update_id}) did")
        task.update_id, task.status = update_id, status
        # Stamped at T0, before every sync round's plan: a pushed build is never skipped as updated
        # since the plan, so each round races the writers on update_id alone, however late the suite
        # reaches this test (a push stamped with the real clock outran the rounds' clock after 5 minutes).
        now = T0
        build.update_time.FromDatetime(now)
        changed = is_ended(status)
        if changed:
            build.status = status
            build.end_time.FromDatetime(now)
            status_entity["status"] = status
        model.save_build(build_entity, build, changed)
        model.write_infra(infra_entity, infra)
        client.put_multi([build_entity, infra_entity] + ([status_entity] if changed else []))
        return "written"

    return run_in_transaction(client, work, attempts=10, begin=begin)


def writer(
    client: datastore.Client, begin: TransactionBegin, fake: FakeTaskBackend, race: Race, ids: list[int], seed: int
) -> None:
    rng = random.Random(seed)
    for _ in range(PUSHES_PER_WRITER):
        live = [i for i in ids if not is_ended(race.truth[i][1])]
        if not live:
            return
        build_id = rng.choice(live)
        update_id = race.truth[build_id][0] + 1
        status = rng.choice((pb.FAILURE, pb.CANCELED)) if rng.random() < 0.04 else pb.STARTED
        backend_first = rng.random() < 0.5  # else the backend's replica lags the push
        if backend_first:
            fake.set_task(f"task-{build_id}", status, update_id)
        try:
            outcome = push(client, begin, race, build_id, update_id, status)
        except TransientError:
            outcome = "gave up"
        if not backend_first:
            fake.set_task(f"task-{build_id}", status, update_id)
        race.truth[build_id] = (update_id, status)
        with race.lock:
            race.pushes += 1
            if outcome == "written":
                race.written[build_id] = update_id
            race.already_there += outcome == "already there"
            race.gave_up += outcome == "gave up"


def test_concurrent_writer_loses_no_update_and_never_goes_backwards(
    datastore_client, task_backend, make_settings, pool, transaction_begin, sync_options
):
    ids = list(range(1, RACE_BUILDS + 1))
    put_builds(datastore_client, [new_build(i) for i in ids])
    for i in ids:
        task_backend.backend.set_task(f"task-{i}", pb.STARTED, 1)
    settings = make_settings()
    backend = settings.backend(BACKEND)
    race = Race(ids)
    ticks = itertools.count(1)  # one clock for both syncers, a step later each round
    reports, crashes = [], []
    writing_done = threading.Event()
    monitor_done = threading.Event()
    monitor_reads = [0]

    def syncer(kind: str) -> None:
        for _ in range(500):  # bounded; ends when the writers are done
            if writing_done.is_set():
                return
            at = T0 + next(ticks) * ROUND_STEP
            try:
                if kind == "pipeline":
                    reports.append(sync_round(datastore_client, settings, pool, sync_options, at))
                else:
                    batch = SyncBatch(BACKEND, "proj", tuple(ids), at)
                    reports.append(
                        sync_batch(
                            datastore_client,
                            pool.get(BACKEND, backend.hostname),
                            backend,
                            batch,
                            sync_options(clock=lambda at=at: at),
                        )
                    )
            except Exception as error:  # noqa: BLE001 - recorded and asserted below
                crashes.append(error)

    def monitor() -> None:
        # One thread reading in order, so a lower update_id than its last read went backwards.
        last = {i: 1 for i in ids}
        for _ in range(10_000):
            if monitor_done.is_set():
                return
            try:
                stored = read_stored(datastore_client, ids, consistent=True, begin=transaction_begin)
            except TransientError:
                continue  # contention outlasted the retries; read again
            except Exception as error:  # noqa: BLE001 - recorded and asserted below
                crashes.append(error)
                return
            monitor_reads[0] += 1
            for build_id, problem in corruption(stored).items():
                race.violation("inconsistent", f"build {build_id} inconsistent: {problem}")
            for i in ids:
                if stored[i].update_id < last[i]:
                    race.violation("backwards", f"build {i}: update_id went from {last[i]} to {stored[i].update_id}")
                last[i] = stored[i].update_id

    writers = [
        threading.Thread(
            target=writer,
            args=(datastore_client, transaction_begin, task_backend.backend, race, ids[n::2], n),
            name=f"writer-{n}",
        )
        for n in range(2)
    ]
    others = [threading.Thread(target=syncer, args=(kind,), name=kind) for kind in ("pipeline", "batch")]
    watcher = threading.Thread(target=monitor, name="monitor")
    for thread in [watcher, *others, *writers]:
        thread.start()
    for thread in writers:
        thread.join(timeout=150)
    writing_done.set()
    for thread in others:
        thread.join(timeout=120)
    overlapping_rounds = len(reports)
    # Quiet now: a few more rounds bring every build to the backend's last word.
    for _ in range(10):
        at = T0 + next(ticks) * ROUND_STEP
        reports.append(sync_round(datastore_client, settings, pool, sync_options, at))
        stored = read_stored(datastore_client, ids, consistent=True, begin=transaction_begin)
        if all((stored[i].update_id, stored[i].task_status) == race.truth[i] for i in ids):
            break
    monitor_done.set()
    watcher.join(timeout=60)
    assert not any(t.is_alive() for t in [watcher, *others, *writers]), "a thread is stuck"

    lost = [i for i in ids if stored[i].update_id < max(race.written[i], race.truth[i][0])]
    wrong_status = [
        i for i in ids if stored[i].status != (race.truth[i][1] if is_ended(race.truth[i][1]) else pb.STARTED)
    ]
    figure(
        "concurrent-writer",
        pushes=race.pushes,
        sync_rounds_during_writes=overlapping_rounds,
        pushes_already_synced=race.already_there,
        pushes_given_up=race.gave_up,
        stale_fetches=sum(r.stale for r in reports),
        sync_builds_failed=sum(r.failed for r in reports),
        monitor_reads=monitor_reads[0],
        lost_updates=len(lost) + race.count("lost"),
        went_backwards=race.count("backwards"),
        inconsistent_reads=race.count("inconsistent"),
    )
    assert crashes == []
    assert race.violations == []
    assert lost == [] and wrong_status == []
    assert corruption(stored) == {}
    assert overlapping_rounds >= 2 and monitor_reads[0] >= 2  # the sync really ran while the writers wrote


# --- 6. the sync function killed in the middle of a batch ---------------------


KILL_BUILDS = 200
GROUP = 25


def test_sync_killed_mid_batch_leaves_no_half_updated_build_and_redelivery_finishes(
    datastore_client, datastore_emulator, make_stack, task_backend, settings_file, transaction_begin
):
    ids = list(range(1, KILL_BUILDS + 1))
    put_builds(datastore_client, [new_build(i) for i in ids])
    for i in ids:
        task_backend.backend.set_task(f"task-{i}", pb.FAILURE, 2)
    build_keys = [model.build_key(datastore_client, i) for i in ids]

    def ended_now() -> set[int]:
        return {e.key.id for e in datastore_client.get_multi(build_keys) if not e["incomplete"]}

    # Between the sync function and Datastore, a link that lets the batch's first
    # transaction commit and holds every later Commit: the kill lands mid-batch
    # however fast the machine is.
    gate = CommitGate(let_through=1)
    link = DelayProxy(datastore_emulator.host, delay=0, gate=gate)
    try:
        with make_stack(settings_file, datastore_host=link.host) as stack:
            stack.publish(stack.topics.sync, SyncBatch(BACKEND, "proj", tuple(ids), utc_now()).to_json())
            assert gate.holding.wait(SETTLE_SECONDS), "the sync never reached its second commit"
            wait_until(lambda: ended_now(), SETTLE_SECONDS, "the sync's first commit to land", interval=0.05)
            stack.functions["sync"].kill()
            link.close()  # nothing more from the dead process reaches Datastore
            outbox_keys = [datastore_client.key(model.BUILD_KIND, i, OUTBOX_KIND, 1) for i in ids]
            # The gate held every later Commit, and the link is cut: nothing more lands.
            stored = read_stored(datastore_client, ids, consistent=True, begin=transaction_begin)
            outbox = {e.key.parent.id for e in datastore_client.get_multi(outbox_keys)}
            updated = {i for i, s in stored.items() if s.update_id == 2}
            new = {
                i
                for i, s in stored.items()
                if (s.status, s.mirrored, s.status_v2, s.incomplete, s.update_id) == (pb.FAILURE,) * 3 + (False, 2)
            }
            old = {
                i
                for i, s in stored.items()
                if (s.status, s.mirrored, s.status_v2, s.incomplete, s.update_id) == (pb.STARTED,) * 3 + (True, 1)
            }
            half_updated = set(ids) - new - old
            groups = [set(ids[start : start + GROUP]) for start in range(0, len(ids), GROUP)]
            torn_groups = [g for g in groups if g & updated and not g <= updated]

            # A fresh process on the same port, straight to Datastore: Pub/Sub's redelivery of the
            # unacknowledged batch finishes the job.
            stack.restart("sync", DATASTORE_EMULATOR_HOST=datastore_emulator.host)
            wait_until(
                lambda: len(ended_now()) == len(ids), SETTLE_SECONDS, "redelivery to sync every build", interval=0.25
            )
            final = read_stored(datastore_client, ids, consistent=True, begin=transaction_begin)
            # The new process clears the outbox entries of the builds it ended after it
            # published them, a moment after its commits; the dead one's stay for the sweep.
            orphans: set[int] = set()

            def outbox_settled() -> bool:
                orphans.clear()
                orphans.update(e.key.parent.id for e in datastore_client.get_multi(outbox_keys))
                return orphans == updated

            with contextlib.suppress(TimeoutError):
                wait_until(outbox_settled, 30, "the outbox to hold only the dead process's notifications", interval=0.2)
    finally:
        link.close()

    figure(
        "kill-mid-batch",
        builds=len(ids),
        updated_before_kill=len(updated),
        groups_committed=len(updated) // GROUP,
        landed_mid_batch=0 < len(updated) < len(ids),
        half_updated=len(half_updated),
        torn_groups=len(torn_groups),
        left_in_outbox=len(orphans),
        converged=sum(1 for s in final.values() if (s.status, s.update_id) == (pb.FAILURE, 2)),
    )
    assert 0 < len(updated) < len(ids), "the kill did not land mid-batch"
    assert half_updated == set()
    assert torn_groups == []  # a transaction of 25 commits whole or not at all
    assert outbox == updated  # the dead process's notifications wait in the outbox for the sweep
    assert orphans == updated  # the redelivered batch skipped those builds: none completed twice
    assert {i: (s.status, s.update_id) for i, s in final.items()} == {i: (pb.FAILURE, 2) for i in ids}
    assert corruption(final) == {}


# --- 7. the Datastore emulator restarted during a run --------------------------

RESTART_BUILDS = 60


@pytest.fixture
def own_datastore(datastore_kind):
    """A Datastore emulator of this test's own, to restart (the session's is shared)."""
    emulator = start_emulator(datastore_kind)
    try:
        yield emulator
    finally:
        emulator.stop()


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def restart_datastore(emulator: Emulator) -> float:
    """Restarts the emulator (in memory: every entity is lost); returns the seconds it was down.

    Emulator.restart() alone may return while the old Java server, still
    shutting down after stop(), answers the health check: wait for the port to
    close first, so that the server answering afterwards is the new one.
    """
    started = time.monotonic()
    emulator.stop()
    wait_until(lambda: not port_open(emulator.port), SETTLE_SECONDS, "the old emulator to let go of its port")
    emulator.restart()
    return time.monotonic() - started


def try_put_builds(client: datastore.Client, ids: list[int]) -> bool:
    try:
        put_builds(client, [new_build(i) for i in ids])
    except Exception:  # noqa: BLE001 - Datastore not back yet
        return False
    return True


def test_datastore_restart_mid_run_is_transient_and_later_rounds_converge(
    own_datastore, task_backend, make_settings, sync_options
):
    client = emulator_client(own_datastore.host, PROJECT)
    ids = list(range(1, RESTART_BUILDS + 1))
    for i in ids:  # half end, half keep running (and are written every round)
        task_backend.backend.set_task(f"task-{i}", pb.FAILURE if i % 2 else pb.STARTED, 2)
    expected = {i: pb.FAILURE if i % 2 else pb.STARTED for i in ids}
    assert try_put_builds(client, ids)
    settings = make_settings()
    outcomes: list[object] = []  # per round: its SyncReport, or what it raised
    stop = threading.Event()

    def rounds() -> None:
        with contextlib.closing(BackendPool(deadline_seconds=20)) as backends:
            for round_no in range(1, 1000):  # bounded; ends when told
                if stop.is_set():
                    return
                at = T0 + round_no * ROUND_STEP
                try:
                    outcome = sync_round(client, settings, backends, sync_options, at)
                except Exception as error:  # noqa: BLE001 - recorded and asserted below
                    outcome = error
                outcomes.append(outcome)

    def converged() -> bool:
        try:
            stored = read_stored(client, ids)
        except Exception:  # noqa: BLE001 - not re-seeded yet
            return False
        return all(stored[i].status == expected[i] and stored[i].update_id == 2 for i in ids)

    thread = threading.Thread(target=rounds, name="rounds")
    with captured_logs() as captured:
        thread.start()
        try:
            wait_until(lambda: len(outcomes) >= 2, SETTLE_SECONDS, "two rounds before the restart")
            before_restart = len(outcomes)
            downtime = restart_datastore(own_datastore)
            wait_until(
                lambda: try_put_builds(client, ids), SETTLE_SECONDS, "Datastore to take the builds again", interval=0.2
            )
            wait_until(converged, SETTLE_SECONDS, "the rounds after the restart to converge", interval=0.25)
        finally:
            stop.set()
            thread.join(timeout=180)
    assert not thread.is_alive(), "the rounds are stuck"
    stored = read_stored(client, ids)

    raised = [o for o in outcomes if isinstance(o, BaseException)]
    failing = [o for o in outcomes if not isinstance(o, BaseException) and (o.failed or o.errors)]
    not_retried = [r for r in failing if not r.retry]
    failures_logged = sorted({e["error"] for e in captured.events() if e["severity"] == "ERROR" and "error" in e})
    figure(
        "datastore-restart",
        downtime_seconds=f"{downtime:.1f}",
        rounds=len(outcomes),
        rounds_before_restart=before_restart,
        rounds_raising=len(raised),
        rounds_with_failures=len(failing),
        non_transient=len([e for e in raised if not isinstance(e, TransientError)]) + len(not_retried),
        converged=sum(1 for i in ids if stored[i].status == expected[i]),
    )
    assert [e for e in raised if not isinstance(e, TransientError)] == []
    assert not_retried == [], f"failures a retry would fix, reported as permanent: {failures_logged}"
    assert corruption(stored) == {}


def test_transaction_cut_off_by_a_datastore_restart_is_retryable(
    own_datastore, task_backend, make_settings, sync_options
):
    """Deterministic form of the race above: the restart lands inside a sync transaction.

    The test's clock, which the sync calls inside its transaction after reading
    the builds, restarts Datastore and re-seeds it; the transaction then goes on
    against a server that never heard of it.
    """
    client = emulator_client(own_datastore.host, PROJECT)
    ids = [1, 2, 3]
    for i in ids:
        task_backend.backend.set_task(f"task-{i}", pb.FAILURE, 2)
    assert try_put_builds(client, ids)
    restarts: list[float] = []

    def clock() -> datetime.datetime:
        if not restarts:
            restarts.append(restart_datastore(own_datastore))
            other = emulator_client(own_datastore.host, PROJECT)  # not in the sync's transaction
            wait_until(
                lambda: try_put_builds(other, ids), SETTLE_SECONDS, "Datastore to take the builds again", interval=0.2
            )
        return T0

    backend = make_settings().backend(BACKEND)
    with contextlib.closing(GrpcTaskBackend(BACKEND, task_backend.grpc_hostname, deadline_seconds=20)) as fetcher:
        with captured_logs() as captured:
            report = sync_batch(
                client,
                fetcher,
                backend,
                SyncBatch(BACKEND, "proj", tuple(ids), T0),
                sync_options(clock=clock),
            )
        errors = [e["error"] for e in captured.events() if e["message"] == "transaction for a group of builds failed"]
        # What a redelivery of the batch would do: a fresh transaction on the same server.
        again = sync_batch(
            client,
            fetcher,
            backend,
            SyncBatch(BACKEND, "proj", tuple(ids), T0),
            sync_options(clock=lambda: T0),
        )
    stored = read_stored(client, ids)

    figure(
        "transaction-across-restart",
        downtime_seconds=f"{restarts[0]:.1f}",
        updated=report.updated,
        failed=report.failed,
        retry=report.retry,
        error=json.dumps(errors[0] if errors else None),
        then_redelivered_updated=again.updated,
    )
    assert again.updated + report.updated == len(ids)  # a second transaction does succeed
    # Either the transaction is run again afresh (and the builds are synced), or the
    # batch is at least reported as worth a retry, so that Pub/Sub redelivers it.
    assert report.failed == 0 or report.retry, f"a fresh transaction would succeed, yet retry=False: {errors}"
    assert corruption(stored) == {}
