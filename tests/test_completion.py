"""Completion effects on the emulators, a real ResultDB pRPC server and real Pub/Sub subscribers.

Builds are written the way Buildbucket writes them (tests/buildbucket_writer.py),
ended by the sync function's own handler, and every published message is
decoded with the upstream-shaped protos and checked field by field.
"""

from __future__ import annotations

import datetime
import time

import grpc
import pytest
from buildsync.edge import handlers
from buildsync.ending import completion, resultdb
from buildsync.proto import buildbucket_pb2 as pb
from buildsync.proto import notification_pb2 as npb
from buildsync.proto import project_config_pb2 as cpb
from buildsync.proto import service_config_pb2 as spb
from buildsync.stages import sync
from buildsync.stages.messages import SyncBatch, SyncTrigger
from buildsync.store import model, outbox
from google.protobuf import json_format, struct_pb2

from tests import buildbucket_writer as bb
from tests.builds import BACKEND, put_build
from tests.conftest import PROJECT
from tests.harness import LONG_AGO, Subscribed, captured_logs, large_fields, outbox_due, with_deep_stack
from tools.bench.memory_probe import proc_status_mib, reset_high_water_mark
from tools.emulators import wait_until
from tools.resultdb_recorder import ResultDBRecorder
from tools.stack import LocalStack
from tools.task_backend import nested_bytes, nested_groups


@pytest.fixture
def metric_lines():
    """The metric-bearing log lines buildsync writes during the test, by metric name."""
    with captured_logs() as captured:
        yield lambda name: [e for e in captured.events() if e.get("metric") == name]


def put_buildbucket_build(client, build_id: int, recorder, callback_topic, task_backend, *, chunked: bool) -> None:
    """A started build with everything Buildbucket stores, whose task has just failed."""
    put_build(client, build_id, updated=LONG_AGO)
    bb.set_build_properties(
        client,
        build_id,
        tags=["buildset:commit/gitiles/host/repo/+/abc", "builder:linux", "build_address:p/ci/linux/1", "user:x"],
        callback_topic=callback_topic.topic,
        user_data=b"\x01opaque user data",
        update_token=f"token-{build_id}",
        summary="summary",
    )
    invocation = f"invocations/build-{build_id}"
    bb.set_invocation(client, build_id, recorder.hostname, invocation)
    recorder.add_invocation(invocation, f"token-{build_id}")
    bb.put_input_properties(client, build_id, {"recipe": "chromium", "build_id": build_id})
    bb.put_output_properties(client, build_id, {"got_revision": "abc", "blob": "x" * 3000}, chunked=chunked)
    bb.put_steps(
        client,
        build_id,
        [pb.Step(name="compile", status=pb.SUCCESS), pb.Step(name="test", status=pb.STARTED)],
        zipped=chunked,
    )
    task_backend.backend.set_task(f"task-{build_id}", pb.FAILURE, 2)


def batch(*build_ids: int) -> SyncBatch:
    return SyncBatch(BACKEND, "proj", build_ids, datetime.datetime.now(datetime.timezone.utc))


def decode_builds_v2(message) -> npb.BuildsV2PubSub:
    return json_format.Parse(message.data, npb.BuildsV2PubSub())


def check_notification(notification: npb.BuildsV2PubSub, build_id: int, recorder) -> None:
    build = notification.build
    assert build.id == build_id and build.status == pb.FAILURE
    assert (build.builder.project, build.builder.bucket, build.builder.builder) == ("proj", "ci", "builder")
    assert build.HasField("end_time") and build.HasField("update_time")
    assert [(t.key, t.value) for t in build.tags] == [("buildset", "commit/gitiles/host/repo/+/abc"), ("user", "x")]
    assert build.infra.backend.task.id.id == f"task-{build_id}" and build.infra.backend.task.status == pb.FAILURE
    assert build.infra.resultdb.hostname == recorder.hostname
    assert build.infra.resultdb.invocation == f"invocations/build-{build_id}"
    assert build.summary_markdown == "summary"
    assert not build.steps and not build.input.HasField("properties") and not build.output.HasField("properties")
    assert not notification.build_large_fields_dropped
    large = large_fields(notification)
    assert large.input.properties == bb.struct({"recipe": "chromium", "build_id": build_id})
    assert large.output.properties == bb.struct({"got_revision": "abc", "blob": "x" * 3000})
    assert [(s.name, s.status) for s in large.steps] == [("compile", pb.SUCCESS), ("test", pb.CANCELED)]
    assert large.steps[1].end_time == build.update_time, "the step the sync ended, as stored in the transaction"


def attributes_of(message) -> dict[str, str]:
    return dict(message.attributes)


EXPECTED_ATTRIBUTES = {"project": "proj", "bucket": "ci", "builder": "builder", "is_completed": "true", "version": "v2"}


@pytest.mark.parametrize("chunked", [False, True], ids=["plain", "chunked-and-zipped"])
def test_an_ended_build_gets_every_effect_in_buildbuckets_format(
    datastore_client, task_backend, recorder, builds_topic, callback_topic, runtime, chunked, metric_lines
):
    put_buildbucket_build(datastore_client, 1, recorder, callback_topic, task_backend, chunked=chunked)
    report = handlers.handle_batch(runtime(), batch(1))
    assert report.completed == 1

    (message,) = builds_topic.pull()
    assert attributes_of(message) == EXPECTED_ATTRIBUTES
    notification = decode_builds_v2(message)
    assert notification.compression == npb.ZLIB
    check_notification(notification, 1, recorder)

    (callback,) = callback_topic.pull()
    assert attributes_of(callback) == EXPECTED_ATTRIBUTES
    wrapped = json_format.Parse(callback.data, npb.PubSubCallBack())
    assert wrapped.user_data == b"\x01opaque user data"
    assert wrapped.build_pubsub.compression == npb.ZLIB
    check_notification(wrapped.build_pubsub, 1, recorder)

    assert [(c.invocation, c.update_token, c.project) for c in recorder.calls] == [
        ("invocations/build-1", "token-1", "proj")
    ]
    (completed,) = metric_lines("build_completed")
    assert (completed["build_id"], completed["status"], completed["project"], completed["bucket"]) == (
        1,
        "FAILURE",
        "proj",
        "ci",
    )
    assert completed["builder"] == "builder" and completed["cycle_seconds"] > 3000
    assert outbox_due(datastore_client, datetime.datetime.now(datetime.timezone.utc), datetime.timedelta(0)) == []


def test_the_builds_topic_gets_zstd_on_request_and_callbacks_stay_zlib(
    datastore_client, task_backend, recorder, builds_topic, callback_topic, runtime
):
    put_buildbucket_build(datastore_client, 2, recorder, callback_topic, task_backend, chunked=True)
    handlers.handle_batch(runtime(BUILDSYNC_BUILDS_TOPIC_COMPRESSION="ZSTD"), batch(2))
    notification = decode_builds_v2(builds_topic.pull()[0])
    assert notification.compression == npb.ZSTD
    check_notification(notification, 2, recorder)
    wrapped = json_format.Parse(callback_topic.pull()[0].data, npb.PubSubCallBack())
    assert wrapped.build_pubsub.compression == npb.ZLIB


def deepen(client, task_backend, build_id: int) -> struct_pb2.Struct:
    """Nests a build's input, output and requested properties 9,000 levels deep beside a shallow key, and its
    task's details 9,000 levels of groups (36 KB of Go text): stored as Buildbucket (Go) would store them."""
    deep = struct_pb2.Struct()
    deep.fields["recipe"].string_value = "chromium"
    deep.fields["deep"].struct_value.MergeFromString(nested_bytes(2999))  # 3 + 3 × 2,999 = 9,000 levels
    for kind in ("BuildInputProperties", "BuildOutputProperties"):
        entity = client.get(model.child_key(client, build_id, kind))
        entity["properties"] = deep.SerializeToString()
        client.put(entity)
    entity = client.get(model.infra_key(client, build_id))
    infra = pb.BuildInfra.FromString(entity["infra"])
    infra.buildbucket.requested_properties.CopyFrom(deep)  # stays in the notification's JSON
    entity["infra"] = infra.SerializeToString()
    client.put(entity)
    task_backend.backend.tasks[f"task-{build_id}"].details.MergeFromString(nested_groups(8999))
    return deep


def test_a_build_nested_as_deep_as_go_decodes_is_ended_and_its_notification_published(
    datastore_client, task_backend, recorder, builds_topic, callback_topic, runtime, capsys
):
    put_buildbucket_build(datastore_client, 7, recorder, callback_topic, task_backend, chunked=False)
    deep = deepen(datastore_client, task_backend, 7)
    metric = cpb.CustomMetricDefinition(name="deep", predicates=["has(build.input.properties.deep.a.a)"])
    bb.set_custom_metrics(datastore_client, 7, [(spb.CUSTOM_METRIC_BASE_CONSECUTIVE_FAILURE_COUNT, metric)])
    the_runtime = runtime()
    before = proc_status_mib("VmRSS") if reset_high_water_mark() else float("nan")
    started = time.perf_counter()
    report = handlers.handle_batch(the_runtime, batch(7))
    seconds, grown = time.perf_counter() - started, proc_status_mib("VmHWM") - before
    assert report.completed == 1
    entity = datastore_client.get(model.build_key(datastore_client, 7))
    assert entity["custom_builder_consecutive_failures_metrics"] == ["deep"]  # cel-cpp read the build, cut

    def parse(data: bytes, message):
        return with_deep_stack(lambda: json_format.Parse(data, message, max_recursion_depth=20_000))

    (message,) = builds_topic.pull()
    notification = parse(message.data, npb.BuildsV2PubSub())
    (callback,) = callback_topic.pull()
    assert parse(callback.data, npb.PubSubCallBack()).build_pubsub == notification
    assert notification.build.status == pb.FAILURE and notification.build.infra.buildbucket.requested_properties == deep
    large = large_fields(notification)
    assert large.input.properties == deep and large.output.properties == deep
    stored = model.read_infra(datastore_client.get(model.infra_key(datastore_client, 7))).backend.task
    assert stored.details.SerializeToString() == struct_pb2.Struct.FromString(nested_groups(8999)).SerializeToString()
    with capsys.disabled():
        print(
            f"\nFIGURE deep build: 9,000 levels in 4 places synced, ended and published in {seconds:.2f} s, "
            f"RSS high-water {grown:+.0f} MiB, {len(message.data):,} bytes of JSON"
        )


def test_effects_left_by_a_crash_after_the_commit_are_done_by_the_sweep_once(
    datastore_client, task_backend, recorder, builds_topic, callback_topic, runtime
):
    for build_id in (3, 4):
        put_buildbucket_build(datastore_client, build_id, recorder, callback_topic, task_backend, chunked=False)
    the_runtime = runtime(BUILDSYNC_SWEEP_MIN_AGE_SECONDS="0")
    # What a function killed right after the commit leaves: the builds ended, the outbox full.
    backend = the_runtime.settings.backend(BACKEND)
    fetcher = the_runtime.backends.get(backend.target, backend.hostname)
    report = sync.sync_batch(
        the_runtime.datastore, fetcher, backend, batch(3, 4), sync.SyncOptions(targets=the_runtime.completer.targets)
    )
    assert report.completed == 2
    assert recorder.calls == [] and builds_topic.pull_nothing_more() == []
    handlers.handle_trigger(the_runtime, SyncTrigger(BACKEND, "nobody"))
    assert sorted(decode_builds_v2(m).build.id for m in builds_topic.pull(2)) == [3, 4]
    assert len(callback_topic.pull(2)) == 2
    assert sorted(c.invocation for c in recorder.calls) == ["invocations/build-3", "invocations/build-4"]
    handlers.handle_trigger(the_runtime, SyncTrigger(BACKEND, "nobody"))
    assert builds_topic.pull_nothing_more() == [] and len(recorder.calls) == 2


def ended_with_effects_left(client, runtime, build_ids, recorder, callback_topic, task_backend):
    """Builds ended by the sync with their outbox entries written and no effect done (a crash after the
    commit); returns the runtime and a moment at which every entry is due."""
    for build_id in build_ids:
        put_buildbucket_build(client, build_id, recorder, callback_topic, task_backend, chunked=False)
    the_runtime = runtime()
    backend = the_runtime.settings.backend(BACKEND)
    fetcher = the_runtime.backends.get(backend.target, backend.hostname)
    options = sync.SyncOptions(targets=the_runtime.completer.targets)
    assert sync.sync_batch(client, fetcher, backend, batch(*build_ids), options).completed == len(build_ids)
    return the_runtime, datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=2)


def test_a_sweep_reads_each_range_chunk_after_chunk_until_its_backlog_is_done(
    datastore_client, task_backend, recorder, builds_topic, callback_topic, runtime
):
    ids = list(range(201, 241))
    the_runtime, later = ended_with_effects_left(datastore_client, runtime, ids, recorder, callback_topic, task_backend)

    swept = the_runtime.completer.sweep(later, chunk=1)

    assert swept == len(ids)
    assert sorted(decode_builds_v2(m).build.id for m in builds_topic.pull(len(ids))) == ids
    assert outbox_due(datastore_client, later, datetime.timedelta(0)) == []


def test_a_sweep_out_of_budget_takes_one_chunk_a_range_and_leaves_the_rest_to_the_next(
    datastore_client, task_backend, recorder, builds_topic, callback_topic, runtime
):
    ids = list(range(301, 341))
    the_runtime, later = ended_with_effects_left(datastore_client, runtime, ids, recorder, callback_topic, task_backend)
    ranges = {outbox.sweep_shard(build_id) for build_id in ids}

    first = the_runtime.completer.sweep(later, budget=datetime.timedelta(0), chunk=1)

    assert first == len(ranges) < len(ids)
    assert len(outbox_due(datastore_client, later, datetime.timedelta(0))) == len(ids) - first
    assert the_runtime.completer.sweep(later, chunk=1) == len(ids) - first


def test_a_redelivered_batch_has_no_second_effect(
    datastore_client, task_backend, recorder, builds_topic, callback_topic, runtime
):
    put_buildbucket_build(datastore_client, 5, recorder, callback_topic, task_backend, chunked=False)
    the_runtime = runtime()
    handlers.handle_batch(the_runtime, batch(5))
    handlers.handle_batch(the_runtime, batch(5))
    assert len(builds_topic.pull()) == 1 and builds_topic.pull_nothing_more() == []
    assert len(callback_topic.pull()) == 1 and callback_topic.pull_nothing_more() == []
    assert len(recorder.calls) == 1


@pytest.mark.parametrize(
    ("code", "stays"),
    [
        (grpc.StatusCode.FAILED_PRECONDITION, False),  # already final: done
        (grpc.StatusCode.PERMISSION_DENIED, False),  # permanent: logged, dropped
        (grpc.StatusCode.NOT_FOUND, True),  # anything else: retried by the sweep
    ],
)
def test_resultdb_answers_decide_whether_the_finalization_is_retried(
    datastore_client, task_backend, recorder, builds_topic, callback_topic, runtime, code, stays
):
    put_buildbucket_build(datastore_client, 6, recorder, callback_topic, task_backend, chunked=False)
    recorder.fail_next(code)
    the_runtime = runtime(BUILDSYNC_SWEEP_MIN_AGE_SECONDS="0")
    handlers.handle_batch(the_runtime, batch(6))
    left = outbox_due(datastore_client, datetime.datetime.now(datetime.timezone.utc), datetime.timedelta(0))
    if not stays:
        assert left == []
        return
    assert [(c.build_id, c.effects, c.attempts) for c in left] == [(6, {outbox.Effect.RESULTDB}, 1)]
    handlers.handle_trigger(the_runtime, SyncTrigger(BACKEND, "nobody"))
    assert recorder.finalized == {"invocations/build-6"}
    assert len(builds_topic.pull()) == 1 and builds_topic.pull_nothing_more() == [], "only the failed effect redone"


def test_a_callback_topic_that_does_not_exist_is_given_up_with_one_error_and_the_rest_done(
    datastore_client, task_backend, recorder, builds_topic, callback_topic, runtime
):
    put_buildbucket_build(datastore_client, 7, recorder, callback_topic, task_backend, chunked=False)
    entity = datastore_client.get(datastore_client.key("Build", 7))
    entity["pubsub_callback.topic"] = f"projects/{PROJECT}/topics/never-created"
    datastore_client.put(entity)
    with captured_logs() as captured:
        handlers.handle_batch(runtime(), batch(7))
    assert len(builds_topic.pull()) == 1 and len(recorder.calls) == 1
    assert outbox_due(datastore_client, datetime.datetime.now(datetime.timezone.utc), datetime.timedelta(0)) == []
    (dropped,) = [e for e in captured.events() if e["severity"] == "ERROR"]
    assert dropped["message"] == "completion effects dropped" and dropped["effects"] == ["callback"]
    assert "never-created" in dropped["error"]


def test_a_build_topic_that_fails_keeps_only_that_effect_and_the_entry_waits_behind_newer_ones(
    datastore_client, task_backend, recorder, builds_topic, callback_topic, runtime
):
    put_buildbucket_build(datastore_client, 7, recorder, callback_topic, task_backend, chunked=False)
    the_runtime = runtime(BUILDSYNC_BUILDS_TOPIC=f"projects/{PROJECT}/topics/deleted-by-mistake")
    handlers.handle_batch(the_runtime, batch(7))
    assert len(callback_topic.pull()) == 1 and len(recorder.calls) == 1
    now = datetime.datetime.now(datetime.timezone.utc)
    (left,) = outbox_due(datastore_client, now + datetime.timedelta(minutes=1), datetime.timedelta(0))
    assert (left.build_id, left.effects, left.attempts) == (7, {outbox.Effect.BUILDS_TOPIC}, 1)
    the_runtime.completer.complete([left])  # fails again: due only after its delay
    assert outbox_due(datastore_client, now + datetime.timedelta(seconds=50), datetime.timedelta(0)) == []
    # The delay runs from the attempt, on the completer's own clock: a minute past it, read after the attempt.
    later = datetime.datetime.now(datetime.timezone.utc) + outbox.retry_delay(2) + datetime.timedelta(minutes=1)
    assert [c.attempts for c in outbox_due(datastore_client, later, datetime.timedelta(0))] == [2]


class PendingBytes:
    """Wraps the emulator's publisher to see how many published bytes were never yet awaited."""

    def __init__(self, publisher) -> None:
        self._publisher = publisher
        self.pending = 0
        self.peak = 0

    def publish(self, topic, data, **attributes):
        future = self._publisher.publish(topic, data, **attributes)
        self.pending += len(data)
        self.peak = max(self.peak, self.pending)
        result, size = future.result, len(data)

        def awaited(timeout=None):
            self.pending -= size
            return result(timeout=timeout)

        future.result = awaited
        return future


def test_the_sweep_publishes_as_it_goes_and_reads_builds_a_chunk_at_a_time(
    datastore_client, task_backend, recorder, builds_topic, callback_topic, runtime, monkeypatch
):
    ids = list(range(101, 161))
    for build_id in ids:
        put_buildbucket_build(datastore_client, build_id, recorder, callback_topic, task_backend, chunked=False)
    the_runtime = runtime()
    backend = the_runtime.settings.backend(BACKEND)
    fetcher = the_runtime.backends.get(backend.target, backend.hostname)
    report = sync.sync_batch(
        the_runtime.datastore, fetcher, backend, batch(*ids), sync.SyncOptions(targets=the_runtime.completer.targets)
    )
    reads: list[int] = []
    real_read = completion.build_reader.read_builds
    monkeypatch.setattr(
        completion.build_reader,
        "read_builds",
        lambda client, build_ids: reads.append(len(build_ids)) or real_read(client, build_ids),
    )
    monkeypatch.setattr(completion.notifications, "MAX_PENDING_BYTES", 20_000)
    spy = PendingBytes(the_runtime.publisher)
    completer = completion.Completer(
        the_runtime.datastore, the_runtime.completer.targets, the_runtime.completer.finalizer, spy
    )
    done = completer.complete(report.completions)
    assert done.done == 60 * 5 and done.retry == 0  # builds topic, callback, ResultDB, metrics, project topics (none)
    assert max(reads) == completion.BUILDS_PER_CHUNK and sum(reads) == 60
    biggest = max(len(m.data) for m in builds_topic.pull(60) + callback_topic.pull(60))
    assert spy.peak <= 20_000 + 2 * biggest, f"{spy.peak} bytes held unawaited"


@pytest.mark.parametrize("steer", ["user-info", "another-host", "redirect"])
def test_a_build_cannot_steer_its_resultdb_call_away_from_the_settings_host(
    datastore_client, task_backend, recorder, builds_topic, callback_topic, runtime, steer
):
    """The update token, the project and the body reach the settings' recorder or nothing."""
    elsewhere = ResultDBRecorder().start()
    try:
        put_buildbucket_build(datastore_client, 9, recorder, callback_topic, task_backend, chunked=False)
        elsewhere.add_invocation("invocations/build-9", "token-9")
        host = {
            "user-info": f"{recorder.hostname}@{elsewhere.hostname}",  # https://user@host: the part after '@'
            "another-host": elsewhere.hostname,
            "redirect": recorder.hostname,
        }[steer]
        bb.set_invocation(datastore_client, 9, host, "invocations/build-9")
        recorder.server.redirect_to = f"http://{elsewhere.hostname}/prpc/{resultdb.SERVICE}/{resultdb.METHOD}"
        with captured_logs() as captured:
            handlers.handle_batch(runtime(), batch(9))
        assert elsewhere.server.connections == 0 and elsewhere.calls == []
        assert len(builds_topic.pull()) == 1, "the other effects are done"
        left = outbox_due(datastore_client, datetime.datetime.now(datetime.timezone.utc), datetime.timedelta(0))
        if steer == "redirect":  # the settings' host, misbehaving: retried later, never followed
            assert [(c.build_id, c.effects) for c in left] == [(9, {outbox.Effect.RESULTDB})]
            return
        assert left == [] and recorder.server.connections == 0
        (error,) = [e for e in captured.events() if e["severity"] == "ERROR"]
        assert error["message"] == "invocation left open: its host is not called" and error["host"] == host
    finally:
        elsewhere.stop()


@pytest.mark.parametrize("which", ["builds", "shard"])
def test_a_callback_naming_one_of_buildsyncs_own_topics_is_refused_with_one_error(
    datastore_client, task_backend, recorder, builds_topic, callback_topic, runtime, which
):
    shard_topic = Subscribed("shard")
    the_runtime = runtime(BUILDSYNC_SHARD_TOPIC=shard_topic.topic)
    own = {"builds": builds_topic.topic, "shard": shard_topic.topic}[which]
    put_buildbucket_build(datastore_client, 8, recorder, callback_topic, task_backend, chunked=False)
    entity = datastore_client.get(datastore_client.key("Build", 8))
    entity["pubsub_callback.topic"] = own
    datastore_client.put(entity)
    with captured_logs() as captured:
        handlers.handle_batch(the_runtime, batch(8))
    assert [decode_builds_v2(m).build.id for m in builds_topic.pull()] == [8]
    assert builds_topic.pull_nothing_more() == [] and shard_topic.pull_nothing_more() == []
    (error,) = [e for e in captured.events() if e["severity"] == "ERROR"]
    assert error["effects"] == ["callback"] and "one of buildsync's own topics" in error["error"]
    assert outbox_due(datastore_client, datetime.datetime.now(datetime.timezone.utc), datetime.timedelta(0)) == []


def test_a_malformed_callback_topic_is_given_up_and_the_rest_done(
    datastore_client, task_backend, recorder, builds_topic, callback_topic, runtime
):
    put_buildbucket_build(datastore_client, 8, recorder, callback_topic, task_backend, chunked=False)
    entity = datastore_client.get(datastore_client.key("Build", 8))
    entity["pubsub_callback.topic"] = "not a topic"
    datastore_client.put(entity)
    handlers.handle_batch(runtime(), batch(8))
    assert len(recorder.calls) == 1
    assert [decode_builds_v2(m).build.id for m in builds_topic.pull()] == [8]
    assert outbox_due(datastore_client, datetime.datetime.now(datetime.timezone.utc), datetime.timedelta(0)) == []


def test_dry_run_descriptions_name_every_effect(datastore_client, recorder):
    put_build(datastore_client, 8, updated=LONG_AGO)
    bb.set_build_properties(datastore_client, 8, callback_topic="projects/p/topics/cb")
    bb.set_invocation(datastore_client, 8, "results.example", "invocations/x")
    entity = datastore_client.get(datastore_client.key("Build", 8))
    infra = pb.BuildInfra.FromString(datastore_client.get(datastore_client.key("Build", 8, "BuildInfra", 1))["infra"])
    targets = completion.Targets("projects/p/topics/builds", npb.ZSTD)
    now = datetime.datetime.now(datetime.timezone.utc)
    ending = targets.completion_for(datastore_client, entity, model.read_build(entity), infra, now)
    assert targets.describe(ending, entity, infra) == [
        "publish BuildsV2PubSub (ZSTD) to projects/p/topics/builds",
        "publish BuildsV2PubSub to the builds_notification_topics of proj",
        "publish PubSubCallBack (ZLIB) to projects/p/topics/cb",
        "finalize ResultDB invocation invocations/x on results.example",
        "record the completed-build metrics",
    ]


def test_a_sync_function_killed_between_commit_and_effects_loses_no_effect(
    datastore_client, datastore_emulator, pubsub_emulator, task_backend, recorder, settings_file, tmp_path, monkeypatch
):
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", pubsub_emulator.host)
    stack = LocalStack(
        PROJECT,
        datastore_emulator.host,
        pubsub_emulator.host,
        settings_file,
        log_dir=tmp_path,
        extra_env={"BUILDSYNC_SWEEP_MIN_AGE_SECONDS": "0"},
    ).start()
    try:
        callback_topic = Subscribed("callback")
        for build_id in (21, 22):
            put_buildbucket_build(datastore_client, build_id, recorder, callback_topic, task_backend, chunked=True)
        recorder.hold()  # the sync function commits, then waits in its first FinalizeInvocation
        stack.publish(stack.topics.sync, batch(21, 22).to_json())
        assert recorder.arrived.wait(90), "the sync function never reached its effects"
        stack.functions["sync"].kill()
        entries = outbox_due(datastore_client, datetime.datetime.now(datetime.timezone.utc), datetime.timedelta(0))
        assert {c.build_id for c in entries} == {21, 22}, "the dead function's effects wait in the outbox"
        recorder.release()

        stack.publish(stack.topics.trigger, SyncTrigger(BACKEND, "nobody").to_json())

        def everything_done() -> bool:
            return (
                outbox_due(datastore_client, datetime.datetime.now(datetime.timezone.utc), datetime.timedelta(0)) == []
            )

        wait_until(everything_done, 90, "the planner's sweep to do what the dead function left", interval=0.25)
        builds: dict[int, npb.BuildsV2PubSub] = {}

        def both_notified() -> bool:
            for received in stack.pull_notifications():
                notification = decode_builds_v2(received.message)
                builds.setdefault(notification.build.id, notification)  # de-duplicated by build id
            return sorted(builds) == [21, 22]

        wait_until(both_notified, 60, "a notification of each build", interval=0.25)
        for build_id, notification in builds.items():
            check_notification(notification, build_id, recorder)
        callbacks = {
            json_format.Parse(m.data, npb.PubSubCallBack()).build_pubsub.build.id for m in callback_topic.pull(2)
        }
        assert callbacks == {21, 22}
        assert recorder.finalized == {"invocations/build-21", "invocations/build-22"}
        completed = [e for e in stack.log_events() if e.get("metric") == "build_completed"]
        assert {e["build_id"] for e in completed} == {21, 22}
    finally:
        stack.stop()
