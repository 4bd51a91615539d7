"""docs/rules.md "Updating one build": the skip and misroute rules and decide_update, on protos only."""

import datetime

import pytest
from buildsync.proto import buildbucket_pb2 as pb
from buildsync.rules.build_update import (
    MAX_INFRA_BYTES,
    Outcome,
    Skip,
    Update,
    decide_update,
    misrouted,
    skip_before_fetch,
    skip_reason,
)
from buildsync.rules.sync_time import SyncTimeKey

UTC = datetime.timezone.utc
NOW = datetime.datetime(2024, 5, 17, 12, 0, 45, tzinfo=UTC)
EARLIER = datetime.datetime(2024, 5, 17, 11, 0, tzinfo=UTC)
TARGET = "swarming://chromium-swarm"

# Field 999 as a varint with value 1: a field this code's protos do not declare.
UNKNOWN_FIELD = bytes([0xB8, 0x3E, 0x01])
assert UNKNOWN_FIELD[:2] == bytes([(999 << 3) & 0x7F | 0x80, (999 << 3) >> 7])


def unix(moment):
    return int(moment.timestamp())


def key_at(moment):
    return str(SyncTimeKey(TARGET, "chromium--beta", 3, unix(moment)))


def make_build(status=pb.STARTED, output_status=pb.STATUS_UNSPECIFIED, cancel=False):
    build = pb.Build(id=8790, status=status, summary_markdown="stored summary")
    build.builder.project = "chromium--beta"
    build.update_time.FromDatetime(EARLIER)
    build.create_time.FromDatetime(EARLIER)
    build.output.status = output_status
    if cancel:
        build.cancel_time.FromDatetime(EARLIER)
    return build


def make_task(update_id=1, status=pb.STARTED, task_id="t1", **fields):
    return pb.Task(id=pb.TaskID(target=TARGET, id=task_id), update_id=update_id, status=status, **fields)


def make_infra(task=None):
    infra = pb.BuildInfra()
    infra.backend.hostname = "chromium-swarm.example.com"
    infra.backend.task.CopyFrom(task if task is not None else make_task())
    return infra


def with_unknown_field(message):
    """`message` re-decoded from its bytes plus a field its class does not declare."""
    return type(message).FromString(message.SerializeToString() + UNKNOWN_FIELD)


def at(timestamp_field):
    return timestamp_field.ToDatetime(UTC)


# --- skip_reason ------------------------------------------------------------------------------


def test_build_due_before_planning_is_not_skipped():
    assert skip_reason(make_build(), make_infra(), key_at(EARLIER), NOW) is None


@pytest.mark.parametrize(
    "build, infra, reason",
    [
        (None, make_infra(), "Build or BuildInfra entity is missing"),
        (make_build(), None, "Build or BuildInfra entity is missing"),
        (None, None, "Build or BuildInfra entity is missing"),
        (make_build(status=pb.SUCCESS), make_infra(), "build has already ended"),
        (make_build(status=pb.FAILURE), make_infra(), "build has already ended"),
        (make_build(status=pb.INFRA_FAILURE), make_infra(), "build has already ended"),
        (make_build(status=pb.CANCELED), make_infra(), "build has already ended"),
        (make_build(), pb.BuildInfra(), "build has no backend task"),
        (make_build(), make_infra(make_task(task_id="")), "build has no backend task"),
    ],
    ids=[
        "no build",
        "no infra",
        "neither",
        "SUCCESS",
        "FAILURE",
        "INFRA_FAILURE",
        "CANCELED",
        "no task",
        "empty task id",
    ],
)
def test_skip_reason_for_builds_the_sync_must_leave(build, infra, reason):
    assert skip_reason(build, infra, key_at(EARLIER), NOW) == reason


def test_build_without_next_sync_time_is_skipped():
    assert skip_reason(make_build(), make_infra(), "", NOW) == "build has no next_backend_sync_time"


@pytest.mark.parametrize(
    "next_sync, skipped",
    [
        (datetime.datetime(2024, 5, 17, 11, 59, tzinfo=UTC), False),
        (datetime.datetime(2024, 5, 17, 12, 0, tzinfo=UTC), False),  # planned_at truncated to the minute
        (datetime.datetime(2024, 5, 17, 12, 0, 1, tzinfo=UTC), True),
        (datetime.datetime(2024, 5, 17, 12, 0, 30, tzinfo=UTC), True),  # before planned_at, after its minute
        (datetime.datetime(2024, 5, 17, 12, 1, tzinfo=UTC), True),
        (datetime.datetime(2024, 5, 17, 12, 5, tzinfo=UTC), True),
    ],
)
def test_build_due_after_the_planned_minute_was_updated_since_and_is_skipped(next_sync, skipped):
    reason = skip_reason(make_build(), make_infra(), key_at(next_sync), NOW)

    assert reason == ("build was updated after this sync was planned" if skipped else None)


def test_time_part_is_compared_as_a_number_not_as_text():
    # "999999999" > "1715947200" as text, but it is 2001 and long due.
    key = str(SyncTimeKey(TARGET, "p", 0, 999_999_999))

    assert skip_reason(make_build(), make_infra(), key, NOW) is None


# --- skip_before_fetch and misrouted ---------------------------------------------------------


def test_a_prompt_batch_fetches_every_build_with_a_task_on_its_backend():
    assert skip_before_fetch(make_infra(), TARGET) is None


@pytest.mark.parametrize(
    "infra, skip",
    [
        (None, Skip("no BuildInfra or no backend task")),
        (make_infra(make_task(task_id="")), Skip("no BuildInfra or no backend task")),
        (
            make_infra(pb.Task(id=pb.TaskID(target="swarming://other", id="t1"))),
            Skip("build's task is on 'swarming://other', not on the batch's backend " + repr(TARGET), misrouted=True),
        ),
    ],
    ids=["no-infra", "no-task-id", "task-on-another-backend"],
)
def test_builds_without_a_task_on_the_batch_backend_are_left_before_fetch(infra, skip):
    assert skip_before_fetch(infra, TARGET) == skip


def test_a_task_without_a_target_counts_as_the_batch_backends():
    assert skip_before_fetch(make_infra(pb.Task(id=pb.TaskID(id="t1"))), TARGET) is None


@pytest.mark.parametrize(
    "build, next_sync, skip",
    [
        (make_build(), key_at(EARLIER), None),
        (make_build(status=pb.SUCCESS), key_at(EARLIER), Skip("build has already ended")),
        (
            make_build(),
            key_at(NOW + datetime.timedelta(minutes=1)),
            Skip("build was updated after this sync was planned"),
        ),
    ],
    ids=["still-due", "ended", "updated-since"],
)
def test_a_late_batch_asks_skip_reason_before_fetch(build, next_sync, skip):
    assert skip_before_fetch(make_infra(), TARGET, build, next_sync, NOW) == skip


@pytest.mark.parametrize(
    "backend_target, task_target, project, reason",
    [
        (TARGET, TARGET, "chromium--beta", None),
        (TARGET, "", "chromium--beta", None),
        (
            "swarming://x",
            TARGET,
            "chromium--beta",
            f"build's backend_target 'swarming://x' is not the batch's backend {TARGET!r}",
        ),
        (
            TARGET,
            "swarming://x",
            "chromium--beta",
            f"build's task is on 'swarming://x', not on the batch's backend {TARGET!r}",
        ),
        (TARGET, TARGET, "other", "build's project 'chromium--beta' is not the batch's project 'other'"),
    ],
    ids=["belongs", "task-without-target", "other-backend-target", "task-elsewhere", "other-project"],
)
def test_misrouted_names_what_does_not_belong_to_the_batch(backend_target, task_target, project, reason):
    infra = make_infra(pb.Task(id=pb.TaskID(target=task_target, id="t1")))

    assert misrouted(make_build(), infra, backend_target, TARGET, project) == reason


# --- decide_update: no usable task, stale, unchanged ---------------------------------------------


@pytest.mark.parametrize(
    "rejection, reason",
    [
        ("backend error 5: no such task", "backend error 5: no such task"),
        (None, "task missing from the FetchTasks response"),
    ],
)
def test_no_fetched_task_is_invalid_with_the_rejection_reason_and_changes_nothing(rejection, reason):
    build, infra = make_build(), make_infra()
    before = build.SerializeToString(), infra.SerializeToString()

    update = decide_update(build, infra, None, rejection, NOW, task_success=False)

    assert (update.outcome, update.reason, update.status_changed) == (Outcome.INVALID, reason, False)
    assert (build.SerializeToString(), infra.SerializeToString()) == before
    assert not update.writes_build and not update.writes_infra


def test_stale_task_is_left_and_names_both_update_ids():
    build, infra = make_build(), make_infra(make_task(update_id=7))
    before = build.SerializeToString(), infra.SerializeToString()

    update = decide_update(build, infra, make_task(update_id=6, status=pb.SUCCESS), None, NOW, task_success=True)

    assert update.outcome is Outcome.STALE
    assert "6" in update.reason and "7" in update.reason
    assert (build.SerializeToString(), infra.SerializeToString()) == before
    assert not update.writes_build and not update.writes_infra


def test_unchanged_task_sets_only_update_time():
    build, infra = make_build(), make_infra(make_task(update_id=7))
    infra_before = infra.SerializeToString()
    expected = pb.Build()
    expected.CopyFrom(build)
    expected.update_time.FromDatetime(NOW)

    update = decide_update(build, infra, make_task(update_id=7, status=pb.SUCCESS), None, NOW, task_success=True)

    assert (update.outcome, update.status_changed) == (Outcome.UNCHANGED, False)
    assert build == expected
    assert infra.SerializeToString() == infra_before
    assert update.writes_build and not update.writes_infra


# --- decide_update: newer task ------------------------------------------------------------------


def test_newer_running_task_is_merged_and_the_status_stays():
    build, infra = make_build(status=pb.STARTED), make_infra(make_task(update_id=1, link="https://old"))
    fetched = make_task(update_id=2, status=pb.STARTED, summary_markdown="running")

    update = decide_update(build, infra, fetched, None, NOW, task_success=False)

    assert (update.outcome, update.status_changed) == (Outcome.UPDATED, False)
    assert update.writes_build and update.writes_infra
    assert infra.backend.task.update_id == 2
    assert infra.backend.task.summary_markdown == "running"
    assert infra.backend.task.link == "https://old"  # merged, not replaced
    assert infra.backend.hostname == "chromium-swarm.example.com"
    assert build.status == pb.STARTED
    assert at(build.update_time) == NOW
    assert not build.HasField("end_time")


def test_newer_ended_task_ends_the_build_with_the_task_details():
    build, infra = make_build(status=pb.STARTED), make_infra(make_task(update_id=1))
    fetched = make_task(update_id=2, status=pb.INFRA_FAILURE)
    fetched.status_details.timeout.SetInParent()

    update = decide_update(build, infra, fetched, None, NOW, task_success=False)

    assert (update.outcome, update.status_changed) == (Outcome.UPDATED, True)
    assert build.status == pb.INFRA_FAILURE
    assert build.status_details == fetched.status_details
    assert at(build.update_time) == NOW
    assert at(build.end_time) == NOW
    assert infra.backend.task.status == pb.INFRA_FAILURE


def test_task_ending_before_the_build_started_ends_it_without_the_task_details():
    build, infra = make_build(status=pb.SCHEDULED), make_infra(make_task(update_id=1))
    build.status_details.resource_exhaustion.SetInParent()
    fetched = make_task(update_id=2, status=pb.INFRA_FAILURE)
    fetched.status_details.timeout.SetInParent()

    decide_update(build, infra, fetched, None, NOW, task_success=False)

    assert build.status == pb.INFRA_FAILURE
    assert not build.HasField("status_details")
    assert infra.backend.task.status_details == fetched.status_details


@pytest.mark.parametrize("task_success, status", [(True, pb.SUCCESS), (False, pb.INFRA_FAILURE)])
def test_task_success_setting_decides_a_successful_task_without_output(task_success, status):
    build, infra = make_build(status=pb.STARTED), make_infra(make_task(update_id=1))

    update = decide_update(
        build, infra, make_task(update_id=2, status=pb.SUCCESS), None, NOW, task_success=task_success
    )

    assert update.status_changed
    assert build.status == status


@pytest.mark.parametrize("cancel, status", [(True, pb.CANCELED), (False, pb.INFRA_FAILURE)])
def test_cancel_time_decides_a_canceled_output(cancel, status):
    build = make_build(status=pb.STARTED, output_status=pb.CANCELED, cancel=cancel)
    infra = make_infra(make_task(update_id=1))

    decide_update(build, infra, make_task(update_id=2, status=pb.SUCCESS), None, NOW, task_success=True)

    assert build.status == status


def test_scheduled_build_with_failed_task_becomes_infra_failure():
    build, infra = make_build(status=pb.SCHEDULED), make_infra(make_task(update_id=1, status=pb.SCHEDULED))

    update = decide_update(build, infra, make_task(update_id=2, status=pb.FAILURE), None, NOW, task_success=True)

    assert update.status_changed
    assert build.status == pb.INFRA_FAILURE


def test_newer_started_task_of_a_scheduled_build_leaves_its_status():
    build, infra = make_build(status=pb.SCHEDULED), make_infra(make_task(update_id=1, status=pb.SCHEDULED))

    update = decide_update(build, infra, make_task(update_id=2, status=pb.STARTED), None, NOW, task_success=True)

    assert (update.outcome, update.status_changed) == (Outcome.UPDATED, False)
    assert build.status == pb.SCHEDULED
    assert not build.HasField("start_time")


def test_newer_task_keeps_unknown_fields_of_build_and_infra():
    build = with_unknown_field(make_build(status=pb.STARTED))
    stored_task = with_unknown_field(make_task(update_id=1))
    infra = with_unknown_field(make_infra(stored_task))

    update = decide_update(build, infra, make_task(update_id=2, status=pb.FAILURE), None, NOW, task_success=False)

    assert update.status_changed
    build_bytes, infra_bytes = build.SerializeToString(), infra.SerializeToString()
    assert UNKNOWN_FIELD in build_bytes
    assert UNKNOWN_FIELD in infra_bytes
    assert UNKNOWN_FIELD in infra.backend.task.SerializeToString()
    reread = pb.Build.FromString(build_bytes)
    assert reread.status == pb.FAILURE
    assert reread.summary_markdown == "stored summary"
    assert pb.BuildInfra.FromString(infra_bytes).backend.task.update_id == 2


def test_unchanged_task_keeps_unknown_fields_of_the_build():
    build = with_unknown_field(make_build(status=pb.STARTED))
    infra = make_infra(make_task(update_id=4))

    decide_update(build, infra, make_task(update_id=4), None, NOW, task_success=False)

    assert UNKNOWN_FIELD in build.SerializeToString()
    assert at(build.update_time) == NOW


@pytest.mark.parametrize(
    "outcome, writes_build, writes_infra",
    [
        (Outcome.SKIPPED, False, False),
        (Outcome.INVALID, False, False),
        (Outcome.STALE, False, False),
        (Outcome.UNCHANGED, True, False),
        (Outcome.UPDATED, True, True),
        (Outcome.FAILED, False, False),
    ],
)
def test_only_unchanged_and_updated_builds_are_written(outcome, writes_build, writes_infra):
    update = Update(outcome)

    assert (update.writes_build, update.writes_infra) == (writes_build, writes_infra)


# --- decide_update: what a BuildInfra keeps when the merged task would not fit -----------------


def details_of(keys: range, value_bytes: int) -> dict:
    return {f"k{i}": "v" * value_bytes for i in keys}


def test_details_keys_piling_up_over_updates_keep_the_newest_task_whole_once_they_would_not_fit():
    build, infra = make_build(), make_infra(make_task(update_id=1, link="https://old"))
    updates = []
    for update_id in range(2, 32):  # 30 updates, each ~45 KB of new keys: merged, 1.35 MB
        fetched = make_task(update_id=update_id)
        fetched.details.update(details_of(range(update_id * 100, update_id * 100 + 45), 1000))
        updates.append(decide_update(build, infra, fetched, None, NOW, task_success=False))
        assert infra.ByteSize() <= MAX_INFRA_BYTES
    assert all(u.outcome is Outcome.UPDATED for u in updates)
    trimmed = [u for u in updates if u.reason]
    assert trimmed and "the newest task is kept whole" in trimmed[0].reason
    assert updates.index(trimmed[0]) > 15, "merged as upstream does while it fits"
    kept = set(infra.backend.task.details)
    assert {f"k{i}" for i in range(3100, 3145)} <= kept and "k200" not in kept, "the newest whole, the oldest gone"
    assert infra.backend.task.id.id == "t1" and infra.backend.task.update_id == 31


def test_a_newest_task_too_big_even_alone_keeps_its_identity_and_status_and_ends_the_build():
    build, infra = make_build(), make_infra(make_task(update_id=1))
    infra.backend.config.update({"kept": "backend config is not ours to drop"})
    fetched = make_task(update_id=2, status=pb.FAILURE, summary_markdown="s" * 600_000, link="https://l")
    fetched.details.update(details_of(range(40), 1000))
    fetched.MergeFromString(UNKNOWN_FIELD)
    fetched.summary_html = "h" * 600_000

    update = decide_update(build, infra, fetched, None, NOW, task_success=False)

    assert (update.outcome, update.status_changed, build.status) == (Outcome.UPDATED, True, pb.FAILURE)
    assert "kept without its details, summaries, link and unknown fields" in update.reason
    task = infra.backend.task
    assert (task.id.id, task.update_id, task.status) == ("t1", 2, pb.FAILURE)
    assert not task.HasField("details") and not task.summary_markdown and not task.link
    assert infra.backend.config["kept"] == "backend config is not ours to drop"
    assert infra.ByteSize() <= MAX_INFRA_BYTES


def test_a_task_that_fits_is_merged_as_upstream_merges_with_no_reason():
    build, infra = make_build(), make_infra(make_task(update_id=1, link="https://old"))
    update = decide_update(build, infra, make_task(update_id=2, summary_markdown="x" * 300_000), None, NOW, False)
    assert update.reason == "" and infra.backend.task.link == "https://old"


def test_status_details_bloated_with_unknown_fields_reach_the_build_without_them():
    build, infra = make_build(), make_infra(make_task(update_id=1))
    fetched = make_task(update_id=2, status=pb.INFRA_FAILURE)
    fetched.status_details.timeout.SetInParent()
    fetched.status_details.MergeFromString(b"\xba\x3e" + bytes([0x80, 0x80, 0x48]) + b"u" * (0x48 << 14))

    update = decide_update(build, infra, fetched, None, NOW, task_success=False)

    assert (update.outcome, build.status) == (Outcome.UPDATED, pb.INFRA_FAILURE)
    assert build.status_details.HasField("timeout") and build.ByteSize() < 10_000
    assert "status_details without unknown fields" in update.reason
