"""buildbucket completion mode: an ended build's tasks, created in Buildbucket's queues as its dispatcher would.

The integration tests end builds through the real sync on the emulator and a
real gRPC Cloud Tasks server (tools/cloud_tasks.py), then read every
CreateTask request back with our declarations of Buildbucket's payloads.
"""

from __future__ import annotations

import datetime
import json
import re

import grpc
import pytest
from buildsync.edge import handlers
from buildsync.edge.runtime import runtime_from_env
from buildsync.ending import handoff
from buildsync.ending.build_reader import StoredBuild
from buildsync.errors import PermanentError
from buildsync.proto import buildbucket_pb2 as pb
from buildsync.proto import project_config_pb2 as cpb
from buildsync.proto import taskdefs_pb2 as tpb
from buildsync.remote.cloud_tasks import ATTEMPTS
from buildsync.stages.messages import SyncBatch, SyncTrigger
from buildsync.store import model, outbox
from google.cloud import datastore

from tests import buildbucket_writer as bb
from tests.builds import BACKEND, put_build
from tests.conftest import PROJECT
from tests.harness import LONG_AGO, captured_logs, outbox_due
from tools.cloud_tasks import Decoded, decoded
from tools.emulators import wait_until

BUILDER = pb.BuilderID(project="proj", bucket="ci", builder="builder")
PUSH_AS = "buildbucket-pusher@bb-project.iam.gserviceaccount.com"


# --- which tasks (pure) ---


def stored(**properties) -> StoredBuild:
    entity = datastore.Entity(datastore.Key("Build", 7, project="p"))
    entity.update(properties)
    return StoredBuild(entity)


def with_invocation() -> pb.BuildInfra:
    infra = pb.BuildInfra()
    infra.resultdb.hostname, infra.resultdb.invocation = "results.example", "invocations/x"
    return infra


@pytest.mark.parametrize(
    "properties, infra, limit, expected",
    [
        ({}, pb.BuildInfra(), 0, ["notify-pubsub-go-proxy", "export-bigquery-go"]),
        ({"pubsub_callback.topic": "projects/p/topics/t"}, pb.BuildInfra(), 0, ["+notify-pubsub-go"]),
        ({"stage_attempt_token": "tok"}, pb.BuildInfra(), 0, ["+end-turboci-stage-attempt"]),
        ({}, pb.BuildInfra(), 3, ["+pop-pending-builds"]),
        ({}, with_invocation(), 0, ["+finalize-resultdb-go"]),
    ],
    ids=["always", "callback", "turboci-token", "limited-builder", "resultdb"],
)
def test_the_tasks_of_an_ending_build_follow_buildbuckets_conditions(properties, infra, limit, expected):
    always = ["notify-pubsub-go-proxy", "export-bigquery-go"]
    wanted = always + [name[1:] for name in expected if name.startswith("+")]
    assert [cls.id for cls in handoff.task_classes_for(stored(**properties), infra, limit)] == wanted


def test_an_invocation_without_a_host_finalizes_nothing():
    infra = pb.BuildInfra()
    infra.resultdb.invocation = "invocations/x"
    assert handoff.FINALIZE_RESULTDB not in handoff.task_classes_for(stored(), infra, 0)


# --- the request's bytes (pure) ---


def test_a_payload_names_its_type_as_upstream_does():
    """The envelope's `type` is the payload's full name; tests/test_schema.py compares the fields with upstream's."""
    assert tpb.NotifyPubSubGo.DESCRIPTOR.full_name == "taskdefs.NotifyPubSubGo"
    topic = tpb.NotifyPubSubGo.DESCRIPTOR.fields_by_name["topic"].message_type
    assert topic.full_name == "buildbucket.BuildbucketCfg.Topic"


def test_the_envelope_is_byte_for_byte_what_gos_encoder_writes():
    body = handoff.envelope("notify-pubsub-go-proxy", tpb.NotifyPubSubGoProxy(build_id=123, project="a<b&c>"))
    assert body == (
        b'{\n\t"class": "notify-pubsub-go-proxy",\n\t"type": "taskdefs.NotifyPubSubGoProxy",\n\t"body": {\n'
        b'\t\t"buildId": "123",\n\t\t"project": "a\\u003cb\\u0026c\\u003e"\n\t}\n}'
    )


def test_an_empty_payload_keeps_an_empty_body_object():
    assert handoff.envelope("export-bigquery-go", tpb.ExportBigQueryGo()).endswith(b'"body": {}\n}')


def test_the_expected_eta_has_six_digits_of_microseconds():
    when = datetime.datetime(2026, 1, 2, 3, 4, 5, 60, tzinfo=datetime.timezone.utc)
    assert handoff.expected_eta(when) == f"{int(when.timestamp())}.000060"


# --- end to end, on the emulator and a real Cloud Tasks server ---


@pytest.fixture
def runtime(datastore_client, datastore_env, pubsub_emulator, settings_file, cloud_tasks, monkeypatch):
    for name, value in {**datastore_env, "PUBSUB_EMULATOR_HOST": pubsub_emulator.host}.items():
        monkeypatch.setenv(name, value)
    env = {
        **datastore_env,  # BUILDSYNC_TRANSACTION_BEGIN=explicit on the Firestore emulator
        "GOOGLE_CLOUD_PROJECT": PROJECT,
        "BUILDSYNC_SETTINGS": str(settings_file),
        "BUILDSYNC_COMPLETION": "buildbucket",
        "BUILDSYNC_BUILDBUCKET_QUEUES": cloud_tasks.parent,
        "BUILDSYNC_CLOUD_TASKS_ENDPOINT": cloud_tasks.endpoint,
        "BUILDSYNC_BUILDS_TOPIC": "projects/unused/topics/unused",  # said unused, never published to
    }
    return lambda **extra: runtime_from_env({**env, **extra})


def batch(*build_ids: int) -> SyncBatch:
    return SyncBatch(BACKEND, "proj", build_ids, datetime.datetime.now(datetime.timezone.utc))


def put_ending_build(client, build_id: int, task_backend, recorder=None, *, token: str = "") -> None:
    """A started build whose task has just failed; with `recorder`, a callback and a ResultDB invocation too."""
    put_build(client, build_id, updated=LONG_AGO)
    if recorder is not None:
        bb.set_build_properties(client, build_id, callback_topic="projects/cb/topics/callback", update_token="t")
        bb.set_invocation(client, build_id, recorder.hostname, f"invocations/build-{build_id}")
        recorder.add_invocation(f"invocations/build-{build_id}", "t")
    if token:
        bb.set_stage_attempt_token(client, build_id, token)
    task_backend.backend.set_task(f"task-{build_id}", pb.FAILURE, 2)


def by_build(requests: list[Decoded]) -> dict[int, dict[str, Decoded]]:
    found: dict[int, dict[str, Decoded]] = {}
    for request in requests:
        found.setdefault(request.payload.build_id, {})[request.envelope["class"]] = request
    return found


def expected_payloads(build_id: int) -> dict[str, object]:
    return {
        "notify-pubsub-go-proxy": tpb.NotifyPubSubGoProxy(build_id=build_id, project="proj"),
        "notify-pubsub-go": tpb.NotifyPubSubGo(
            build_id=build_id, topic=cpb.BuildbucketCfg.Topic(name="projects/cb/topics/callback"), callback=True
        ),
        "export-bigquery-go": tpb.ExportBigQueryGo(build_id=build_id),
        "end-turboci-stage-attempt": tpb.EndTurboCIStageAttempt(build_id=build_id),
        "pop-pending-builds": tpb.PopPendingBuildTask(build_id=build_id, builder_id=BUILDER),
        "finalize-resultdb-go": tpb.FinalizeResultDBGo(build_id=build_id),
    }


QUEUE_OF = {
    "notify-pubsub-go-proxy": "notify-pubsub-go",
    "notify-pubsub-go": "notify-pubsub-go",
    "export-bigquery-go": "export-bigquery-go",
    "end-turboci-stage-attempt": "end-turboci-stage-attempt",
    "pop-pending-builds": "pop-pending-builds",
    "finalize-resultdb-go": "finalize-resultdb-go",
}


def check_request(request: Decoded, parent: str, push: str) -> None:
    """One request against server/tq's form (docs/handoff.md "The Cloud Tasks request")."""
    cls = request.envelope["class"]
    build_id = request.payload.build_id
    assert request.queue == f"{parent}/queues/{QUEUE_OF[cls]}"
    assert re.fullmatch(re.escape(request.queue) + r"/tasks/[0-9a-f]{32}", request.name)
    assert request.method == "POST"
    uri = f"/internal/tasks/t/{cls}" + (f"/pop-pending-build-{build_id}" if cls == "pop-pending-builds" else "")
    if push == "appengine":
        assert (request.form, request.uri, request.oidc) == ("app_engine_http_request", uri, None)
    else:
        assert (request.form, request.uri) == ("http_request", f"https://cr-buildbucket.example{uri}")
        assert request.oidc == {"serviceAccountEmail": PUSH_AS}, "the audience left to Cloud Tasks, as server/tq"
    assert sorted(request.headers) == ["Content-Type", "X-Luci-Tq-Expected-ETA"]
    assert request.headers["Content-Type"] == "application/json"
    assert re.fullmatch(r"[0-9]+\.[0-9]{6}", request.headers["X-Luci-Tq-Expected-ETA"])
    assert list(request.envelope) == ["class", "type", "body"]
    assert request.envelope["type"] == f"taskdefs.{type(request.payload).__name__}"
    assert request.payload == expected_payloads(build_id)[cls]


@pytest.mark.both_emulators
@pytest.mark.parametrize("push", ["appengine", "https"])
def test_an_ended_build_is_handed_to_buildbuckets_queues_exactly_as_its_dispatcher_would(
    datastore_client, task_backend, recorder, runtime, cloud_tasks, push, capsys
):
    put_ending_build(datastore_client, 1, task_backend, recorder, token="stage-attempt-token")
    bb.put_builder(datastore_client, BUILDER, max_concurrent_builds=2)
    put_ending_build(datastore_client, 2, task_backend)
    extra = {}
    if push == "https":
        extra = {
            "BUILDSYNC_BUILDBUCKET_PUSH": "https://cr-buildbucket.example",
            "BUILDSYNC_BUILDBUCKET_PUSH_AS": PUSH_AS,
        }
    before = datetime.datetime.now(datetime.timezone.utc)

    report = handlers.handle_batch(runtime(**extra), batch(1, 2))

    assert report.completed == 2
    requests = cloud_tasks.servicer.decoded_requests()
    found = by_build(requests)
    assert sorted(found[1]) == sorted(QUEUE_OF), "callback, token, limited builder and ResultDB: all six"
    assert sorted(found[2]) == ["export-bigquery-go", "notify-pubsub-go-proxy", "pop-pending-builds"]
    after = datetime.datetime.now(datetime.timezone.utc)
    for request in requests:
        check_request(request, cloud_tasks.parent, push)
    etas = {r.headers["X-Luci-Tq-Expected-ETA"] for r in requests}
    assert len(etas) == 1, "every task carries the time its build ended, fixed in the outbox"
    assert before.timestamp() <= float(etas.pop()) <= after.timestamp()
    assert len(cloud_tasks.servicer.created) == len(requests) == 9, "each task created once"
    assert recorder.calls == [], "Buildbucket finalizes the invocation, not buildsync"
    assert outbox_due(datastore_client, datetime.datetime.now(datetime.timezone.utc), datetime.timedelta(0)) == []
    if push == "appengine":
        print("CREATE_TASK_REQUESTS", json.dumps([r.to_json() for r in found[1].values()], sort_keys=True))


def test_builders_without_a_limit_or_without_an_entity_get_no_pop_task(
    datastore_client, task_backend, runtime, cloud_tasks
):
    put_ending_build(datastore_client, 3, task_backend)
    bb.put_builder(datastore_client, BUILDER, max_concurrent_builds=0)
    handlers.handle_batch(runtime(), batch(3))
    bb.put_builder(datastore_client, pb.BuilderID(project="other", bucket="ci", builder="x"), 5)
    datastore_client.delete(datastore_client.key("Project", "proj", "BucketV2", "ci", "Bucket.Builder", "builder"))
    put_ending_build(datastore_client, 4, task_backend)
    handlers.handle_batch(runtime(), batch(4))
    found = by_build(cloud_tasks.servicer.decoded_requests())
    assert sorted(found) == [3, 4]
    assert sorted(found[3]) == sorted(found[4]) == ["export-bigquery-go", "notify-pubsub-go-proxy"]


def test_a_task_cloud_tasks_answers_data_loss_for_is_given_up_alone_and_the_batch_acknowledged(
    datastore_client, task_backend, runtime, cloud_tasks
):
    """DATA_LOSS is a permanent code: no client-library error of a code is a bug (errors.py)."""
    for build_id in (8, 9):
        put_ending_build(datastore_client, build_id, task_backend)
    cloud_tasks.servicer.fail_next(grpc.StatusCode.DATA_LOSS)
    with captured_logs() as captured:
        handlers.handle_batch(runtime(), batch(8, 9))
    (dropped,) = [e for e in captured.events() if e["severity"] == "ERROR"]
    assert dropped["message"] == "completion effects dropped" and "injected failure" in dropped["error"]
    assert len(cloud_tasks.servicer.created) == 3  # the other three of the two builds' four tasks
    assert outbox_due(datastore_client, datetime.datetime.now(datetime.timezone.utc), datetime.timedelta(0)) == []


def test_tasks_cloud_tasks_refused_for_a_while_are_created_by_the_sweep_under_their_planned_names(
    datastore_client, task_backend, recorder, runtime, cloud_tasks
):
    put_ending_build(datastore_client, 5, task_backend, recorder)
    bb.put_builder(datastore_client, BUILDER, max_concurrent_builds=1)
    failures = 5 * ATTEMPTS
    cloud_tasks.servicer.fail_next(grpc.StatusCode.UNAVAILABLE, failures)  # Cloud Tasks down for the first round
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
    the_runtime = runtime()

    handlers.handle_batch(the_runtime, batch(5))
    (entry,) = outbox_due(datastore_client, later, datetime.timedelta(0))
    assert len(entry.tasks) == 5 and cloud_tasks.servicer.created == {}, "all left, under their planned names"
    the_runtime.completer.sweep(later, datetime.timedelta(0))

    assert set(cloud_tasks.servicer.created) == task_names(cloud_tasks.parent, [entry])
    classes = sorted(decoded(request).envelope["class"] for request in cloud_tasks.servicer.created.values())
    assert classes == sorted(set(QUEUE_OF) - {"end-turboci-stage-attempt"}), "each of five tasks exactly once"
    assert len(cloud_tasks.servicer.requests) == failures + 5
    assert outbox_due(datastore_client, later, datetime.timedelta(0)) == []


def task_names(parent: str, entries: list[outbox.Completion]) -> set[str]:
    """The full Cloud Tasks names of the tasks the outbox entries hold."""
    return {f"{parent}/queues/{QUEUE_OF[t.class_id]}/tasks/{t.task_id}" for entry in entries for t in entry.tasks}


def names_by_build_and_class(requests: list[Decoded]) -> dict[tuple[int, str], set[str]]:
    found: dict[tuple[int, str], set[str]] = {}
    for request in requests:
        found.setdefault((request.payload.build_id, request.envelope["class"]), set()).add(request.name)
    return found


@pytest.mark.both_emulators
def test_a_sync_process_killed_while_creating_its_tasks_and_a_redelivered_batch_create_each_task_once_by_name(
    datastore_client, make_stack, task_backend, recorder, settings_file, cloud_tasks
):
    put_ending_build(datastore_client, 11, task_backend, recorder, token="stage-attempt-token")
    put_ending_build(datastore_client, 12, task_backend)
    bb.put_builder(datastore_client, BUILDER, max_concurrent_builds=1)
    handoff_env = {
        "BUILDSYNC_COMPLETION": "buildbucket",
        "BUILDSYNC_BUILDBUCKET_QUEUES": cloud_tasks.parent,
        "BUILDSYNC_CLOUD_TASKS_ENDPOINT": cloud_tasks.endpoint,
        "BUILDSYNC_SWEEP_MIN_AGE_SECONDS": "0",
    }
    servicer = cloud_tasks.servicer
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
    with make_stack(settings_file, extra_env=handoff_env) as stack:
        servicer.hold(after=2)  # two CreateTasks answered, the rest wait unanswered
        stack.publish(stack.topics.sync, batch(11, 12).to_json())
        assert servicer.holding.wait(90), "the sync function never reached its CreateTask calls"
        wait_until(lambda: len(servicer.requests) == 2, 30, "the two calls let through", interval=0.05)
        stack.functions["sync"].kill()  # committed, some tasks created, some in flight, some never sent
        planned = outbox_due(datastore_client, later, datetime.timedelta(0))
        answered_before_kill = len(servicer.requests)
        servicer.release()  # the calls in flight are carried out: tasks the dead process never heard of

        stack.restart("sync")
        stack.publish(stack.topics.sync, batch(11, 12).to_json())  # the batch redelivered
        stack.publish(stack.topics.trigger, SyncTrigger(BACKEND, "nobody").to_json())  # the planner's sweep
        wait_until(
            lambda: outbox_due(datastore_client, later, datetime.timedelta(0)) == [],
            90,
            "the planner's sweep to create what the dead process left",
            interval=0.25,
        )
        wait_until(
            lambda: synced_batches(stack.functions["sync"]), 90, "the redelivered batch to be synced", interval=0.25
        )
        redelivered = synced_batches(stack.functions["sync"])

    requests = servicer.decoded_requests()
    print(
        "KILLED_HANDOFF",
        json.dumps(
            {"answered_before_kill": answered_before_kill, "requests": len(requests), "created": len(servicer.created)}
        ),
    )
    assert {entry.build_id: len(entry.tasks) for entry in planned} == {11: 6, 12: 3}, "the commit had fixed every name"
    expected = task_names(cloud_tasks.parent, planned)
    assert set(servicer.created) == expected, "every planned task created, under its planned name"
    sent = names_by_build_and_class(requests)
    assert [names for names in sent.values() if len(names) > 1] == [], "never a second name for a build and class"
    assert set().union(*sent.values()) == expected
    assert answered_before_kill == 2 and len(requests) - len(servicer.created) >= 3, "repeats: ALREADY_EXISTS, success"
    for request in requests:
        check_request(request, cloud_tasks.parent, "appengine")
    assert all(event["completed"] == 0 for event in redelivered), "the redelivered batch found its builds ended"
    for build_id in (11, 12):
        assert model.read_build(datastore_client.get(model.build_key(datastore_client, build_id))).status == pb.FAILURE
    assert recorder.calls == [], "Buildbucket finalizes the invocation, not buildsync"


def synced_batches(function) -> list[dict]:
    """The "synced batch" lines a sync function's processes logged, in order."""
    return [event for event in function.log_events() if event.get("message") == "synced batch"]


def test_a_task_of_a_class_we_do_not_know_is_refused_for_good():
    unknown = outbox.TaskRef("retired-class", "0" * 32)
    with pytest.raises(PermanentError, match="retired-class"):
        handoff.Handoff("projects/p/locations/l").request(unknown, 1, pb.Build(), "", LONG_AGO)
