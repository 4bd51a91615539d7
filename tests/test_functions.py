"""End to end: Pub/Sub emulator push into three functions-framework processes.

Each test gets its own topics and function processes (the `make_stack`
fixture's LocalStack), the session's emulators, and a real TaskBackend, called
over pRPC unless BUILDSYNC_BACKEND_OPTIONS says gRPC.
"""

from __future__ import annotations

import base64
import datetime
import json
import time
import urllib.request

import pytest
from buildsync.proto import buildbucket_pb2 as pb
from buildsync.stages.messages import ShardJob, SyncBatch, SyncTrigger
from buildsync.store.transactions import DEFAULT_ATTEMPTS

from tests.builds import get_build, put_build, put_healthy_and_hung_builds
from tests.harness import BACKEND, HUNG, LONG_AGO, PROJECT, SETTLE_SECONDS, settings_text
from tools.datastore_faults import CommitFaults
from tools.emulators import wait_until
from tools.stack import LocalStack, from_pubsub_data

pytestmark = pytest.mark.both_emulators

PROJECTS = ("alpha", "beta--two", "gamma")


@pytest.fixture
def stack(datastore_client, make_stack, settings_file):
    with make_stack(settings_file, extra_env={"BUILDSYNC_SWEEP_MIN_AGE_SECONDS": "0"}) as the_stack:
        yield the_stack


def seed(client, task_backend, count: int = 12) -> dict[int, int]:
    """Due builds over three projects and three shards; returns the expected final statuses."""
    expected = {}
    for build_id in range(1, count + 1):
        put_build(client, build_id, project=PROJECTS[build_id % 3], updated=LONG_AGO, shard=build_id % 3, shards=3)
        task_status = (pb.FAILURE, pb.STARTED, pb.CANCELED, pb.STARTED)[build_id % 4]
        task_backend.backend.set_task(f"task-{build_id}", task_status, 2)
        expected[build_id] = task_status
    return expected


def statuses(client, build_ids) -> dict[int, int]:
    return {build_id: get_build(client, build_id)[1].status for build_id in build_ids}


def end_state(client, build_ids) -> dict[int, tuple]:
    """What must not depend on how often a message was delivered."""
    state = {}
    for build_id in build_ids:
        entity, build, infra, status = get_build(client, build_id)
        state[build_id] = (
            build.status,
            infra.backend.task.update_id,
            status["status"],
            entity["incomplete"],
            entity["status_v2"],
        )
    return state


def wait_for_statuses(client, expected: dict[int, int]) -> None:
    wait_until(
        lambda: statuses(client, expected) == expected,
        SETTLE_SECONDS,
        "builds to reach their task's status",
        interval=0.25,
    )


def collect_notifications(stack: LocalStack, build_ids: set[int]) -> list[pb.Build]:
    received: list[pb.Build] = []

    def all_arrived() -> bool:
        received.extend(from_pubsub_data(m.message.data).build for m in stack.pull_notifications())
        return {n.id for n in received} >= build_ids

    wait_until(all_arrived, SETTLE_SECONDS, f"notifications for builds {sorted(build_ids)}", interval=0.25)
    return received


def ended_ids(expected: dict[int, int]) -> set[int]:
    return {build_id for build_id, status in expected.items() if status & pb.ENDED_MASK}


def test_one_empty_trigger_syncs_every_project_and_notifies_once_per_completed_build(
    datastore_client, task_backend, stack
):
    expected = seed(datastore_client, task_backend)

    stack.publish(stack.topics.trigger, SyncTrigger().to_json())

    wait_for_statuses(datastore_client, expected)
    notifications = collect_notifications(stack, ended_ids(expected))
    by_build = {n.id: n for n in notifications}
    assert set(by_build) == ended_ids(expected)
    assert all(by_build[i].status == expected[i] for i in by_build)
    assert (by_build[6].builder.project, by_build[4].builder.project) == ("alpha", "beta--two")
    assert sum(task_backend.backend.calls) == len(expected)  # one fetch per build, nothing wasted
    assert list(datastore_client.query(kind="BuildsyncNotification").fetch()) == []


def test_the_sync_function_calls_the_backend_over_grpc_when_the_backend_options_say_so(
    datastore_client, task_backend, stack, tmp_path
):
    # Only the sync function calls the backend. Its settings name the gRPC
    # port, where a pRPC call gets no answer, as a backend serving only gRPC.
    grpc_settings = tmp_path / "grpc-settings.cfg"
    grpc_settings.write_text(settings_text(task_backend.grpc_hostname, shards=3))
    options = json.dumps({BACKEND: {"transport": "grpc"}})
    stack.restart("sync", BUILDSYNC_SETTINGS=str(grpc_settings), BUILDSYNC_BACKEND_OPTIONS=options)
    expected = seed(datastore_client, task_backend, count=6)

    stack.publish(stack.topics.trigger, SyncTrigger().to_json())

    wait_for_statuses(datastore_client, expected)
    agents = {headers["user-agent"].split("/")[0] for headers in task_backend.backend.call_headers}
    assert agents == {"grpc-python"}, agents


def test_every_message_delivered_twice_leaves_the_same_end_state(datastore_client, task_backend, stack):
    expected = seed(datastore_client, task_backend, count=6)
    planned_at = datetime.datetime.now(datetime.timezone.utc)
    by_project: dict[str, list[int]] = {}
    for build_id in expected:
        by_project.setdefault(PROJECTS[build_id % 3], []).append(build_id)

    for _ in range(2):
        stack.publish(stack.topics.trigger, SyncTrigger(BACKEND, "alpha").to_json())
        for shard in range(3):
            stack.publish(stack.topics.shard, ShardJob(BACKEND, "beta--two", shard, 3, planned_at).to_json())
        stack.publish(stack.topics.sync, SyncBatch(BACKEND, "gamma", tuple(by_project["gamma"]), planned_at).to_json())

    wait_for_statuses(datastore_client, expected)
    collect_notifications(stack, ended_ids(expected))
    twice = end_state(datastore_client, expected)
    single = {  # what one delivery gives: each task applied once
        build_id: (status, 2, status, not (status & pb.ENDED_MASK), status) for build_id, status in expected.items()
    }
    assert twice == single


def push_envelope(data: bytes, message_id: str) -> bytes:
    envelope = {
        "message": {"data": base64.b64encode(data).decode(), "messageId": message_id, "attributes": {}},
        "subscription": f"projects/{PROJECT}/subscriptions/direct",
    }
    return json.dumps(envelope).encode()


MALFORMED = [
    (b"not json", "not JSON"),
    (b'{"version": 99}', "schema version 99"),
    (b'{"version": 1, "backend": 7}', "expected"),
    (b"\xff\xfe", "not JSON"),
]


def test_malformed_messages_are_acknowledged_and_logged_by_every_function(stack):
    for function in ("planner", "shard", "sync"):
        for index, (data, problem) in enumerate(MALFORMED):
            message_id = f"bad-{function}-{index}"
            request = urllib.request.Request(
                stack.functions[function].url,
                data=push_envelope(data, message_id),
                headers={"Content-Type": "application/json"},
            )

            with urllib.request.urlopen(request, timeout=30) as response:
                assert response.status == 200, message_id  # a 2xx is Pub/Sub's acknowledgement

            errors = [e for e in stack.functions[function].log_events() if e.get("message_id") == message_id]
            assert len(errors) == 1, message_id
            assert errors[0]["severity"] == "ERROR" and problem in errors[0]["message"], errors[0]
            assert errors[0]["retry"] is False


def test_malformed_message_through_pubsub_is_logged_once(stack):
    stack.publish(stack.topics.sync, b'{"version": 1, "build_ids": "all"}')

    def logged() -> list[dict]:
        return [e for e in stack.functions["sync"].log_events() if e.get("severity") == "ERROR"]

    wait_until(lambda: logged(), SETTLE_SECONDS, "the sync function to log the malformed message")
    assert "build_ids" in logged()[0]["message"] and len(logged()) == 1


def test_unknown_backend_is_acknowledged_with_an_error_naming_it(stack):
    stack.publish(stack.topics.trigger, SyncTrigger("swarming://nowhere").to_json())

    def logged() -> list[dict]:
        return [e for e in stack.functions["planner"].log_events() if "swarming://nowhere" in e.get("message", "")]

    wait_until(lambda: logged(), SETTLE_SECONDS, "the planner to log the unknown backend")
    assert logged()[0]["severity"] == "ERROR" and logged()[0]["retry"] is False


def test_notifications_left_behind_by_a_dead_sync_are_swept(datastore_client, task_backend, stack):
    expected = seed(datastore_client, task_backend, count=4)
    stack.subscriber.delete_subscription(subscription=stack.builds_subscription)
    stack.publisher.delete_topic(topic=stack.topic_path(stack.topics.builds))  # the publish after commit fails

    stack.publish(stack.topics.trigger, SyncTrigger().to_json())
    wait_for_statuses(datastore_client, expected)
    outbox = lambda: {e.key.parent.id for e in datastore_client.query(kind="BuildsyncNotification").fetch()}  # noqa: E731
    wait_until(lambda: outbox() == ended_ids(expected), SETTLE_SECONDS, "the outbox to hold the unsent notifications")
    stack.functions["sync"].kill()  # the process that committed is gone for good
    stack.publisher.create_topic(name=stack.topic_path(stack.topics.builds))
    stack.subscriber.create_subscription(name=stack.builds_subscription, topic=stack.topic_path(stack.topics.builds))

    stack.publish(stack.topics.trigger, SyncTrigger().to_json())

    notifications = collect_notifications(stack, ended_ids(expected))
    assert sorted(n.id for n in notifications) == sorted(ended_ids(expected))
    wait_until(lambda: outbox() == set(), SETTLE_SECONDS, "the sweep to clear the outbox")


# --- one backend hung, a group failing: what is redone, and what waits ------------------------------------


# Requests the sync function serves at once in the isolation test.
SYNC_THREADS = 3


def dropped_as_held_back(stack: LocalStack) -> set[str]:
    """The sync messages acknowledged unhandled because their backend's breaker was open."""
    return {
        e["message_id"]
        for e in stack.functions["sync"].log_events()
        if e.get("metric") == "message_dropped" and e["reason"] == "backend breaker open"
    }


def test_a_hung_backend_holds_at_most_one_wave_of_sync_instances_and_the_healthy_builds_end(
    datastore_client, task_backend, hung_backend, two_backends_settings, make_stack
):
    # The sync function serves three requests at once: the instances of a deployment, which all backends share.
    extra_env = {"BUILDSYNC_FETCH_DEADLINE_SECONDS": "20", "THREADS": str(SYNC_THREADS)}
    healthy, hung = put_healthy_and_hung_builds(datastore_client, task_backend.backend)

    with make_stack(two_backends_settings, extra_env=extra_env) as stack:
        started = time.monotonic()
        stack.publish(stack.topics.trigger, SyncTrigger().to_json())  # one trigger, and no other
        wait_for_statuses(datastore_client, {i: pb.FAILURE for i in healthy})
        healthy_seconds = time.monotonic() - started
        wait_until(lambda: len(dropped_as_held_back(stack)) == len(hung), SETTLE_SECONDS, "every hung batch dropped")
        opened = [e for e in stack.log_events() if e.get("metric") == "backend_breaker"]

    figure(
        "isolation-functions",
        healthy_builds_ended_after_seconds=f"{healthy_seconds:.1f}",
        hung_fetch_tasks=len(hung_backend.backend.calls),
        deadline_seconds=20,
        sync_threads=SYNC_THREADS,
    )
    assert {get_build(datastore_client, i)[1].status for i in hung} == {pb.STARTED}  # they wait
    assert len(task_backend.backend.calls) == len(healthy)  # one FetchTasks a healthy batch
    # One wave of hung calls at most, one a thread: the first of them to give up opened the breaker, and
    # every other delivery of the hung backend's batches was acknowledged without a call.
    assert 1 <= len(hung_backend.backend.calls) <= SYNC_THREADS
    assert [(e["backend"], e["state"]) for e in opened] == [(HUNG, "opened")]


def test_a_group_failing_transiently_comes_back_as_a_batch_of_its_builds_only(
    datastore_emulator, datastore_client, task_backend, make_stack, settings_file
):
    ids = tuple(range(1, 51))  # two transactions of 25
    for build_id in ids:
        put_build(datastore_client, build_id, updated=LONG_AGO)
        task_backend.backend.set_task(f"task-{build_id}", pb.FAILURE, 2)

    # Every attempt of the first group's transaction loses to contention; the retry's commits go through.
    with (
        CommitFaults(datastore_emulator.host, doomed={3}, failures=DEFAULT_ATTEMPTS) as faults,
        make_stack(settings_file, datastore_host=faults.host) as stack,
    ):
        sync_topic = stack.watch(stack.topics.sync)
        stack.publish(stack.topics.sync, SyncBatch(BACKEND, "proj", ids, datetime.datetime.now(datetime.UTC)).to_json())
        wait_for_statuses(datastore_client, {i: pb.FAILURE for i in ids})
        batches = [SyncBatch.from_json(m.message.data) for m in stack.pull(sync_topic)]

    assert faults.aborted == DEFAULT_ATTEMPTS
    assert sorted((len(b.build_ids), b.attempt) for b in batches) == [(25, 2), (50, 1)]
    assert task_backend.backend.calls == [50, 25]  # the failed group's tasks only, asked once more


def figure(name: str, **values) -> None:
    print(f"\nFIGURE {name}: " + " ".join(f"{key}={value}" for key, value in values.items()), flush=True)
