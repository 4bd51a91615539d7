"""docs/rules.md "The build's status from a newer task": derive_status and apply_status."""

import datetime

import pytest
from buildsync.proto import buildbucket_pb2 as pb
from buildsync.rules.status_rules import DetailsSource, StatusDecision, apply_status, derive_status, is_ended

TASK = DetailsSource.TASK
OUTPUT = DetailsSource.OUTPUT
NONE = DetailsSource.NONE
UNSET = pb.STATUS_UNSPECIFIED
ENDED = [pb.SUCCESS, pb.FAILURE, pb.INFRA_FAILURE, pb.CANCELED]

NOW = datetime.datetime(2024, 5, 17, 12, 0, tzinfo=datetime.timezone.utc)
EARLIER = datetime.datetime(2024, 5, 17, 11, 0, tzinfo=datetime.timezone.utc)


@pytest.mark.parametrize(
    "status, ended",
    [
        (pb.STATUS_UNSPECIFIED, False),
        (pb.SCHEDULED, False),
        (pb.STARTED, False),
        (pb.ENDED_MASK, True),
        (pb.SUCCESS, True),
        (pb.FAILURE, True),
        (pb.INFRA_FAILURE, True),
        (pb.CANCELED, True),
    ],
)
def test_is_ended_means_the_ended_mask_bit_is_set(status, ended):
    assert is_ended(status) is ended


# (rule, build status, output status, task status, cancel_time set, task-success) → decision or None
RULES = [
    # 1. The build already ended: nothing changes, whatever the task says.
    *[
        (f"1 build {pb.Status.Name(b)} ended", b, UNSET, t, False, True, None)
        for b in ENDED
        for t in (pb.SUCCESS, pb.FAILURE, pb.STARTED)
    ],
    ("1 build ended with ended output and cancel", pb.FAILURE, pb.CANCELED, pb.CANCELED, True, False, None),
    # 2. The task is not ended: the status stays.
    *[
        (f"2 task {pb.Status.Name(t)} not ended, build {pb.Status.Name(b)}", b, o, t, c, True, None)
        for t in (pb.SCHEDULED, pb.STARTED)
        for b in (pb.SCHEDULED, pb.STARTED)
        for o, c in ((UNSET, False), (pb.SUCCESS, False), (pb.CANCELED, True))
    ],
    # 3a. Output unset or not ended.
    ("3a output unset, task SUCCESS, task-success", pb.STARTED, UNSET, pb.SUCCESS, False, True, (pb.SUCCESS, NONE)),
    (
        "3a output unset, task SUCCESS, no task-success",
        pb.STARTED,
        UNSET,
        pb.SUCCESS,
        False,
        False,
        (pb.INFRA_FAILURE, NONE),
    ),
    (
        "3a output STARTED, task SUCCESS, task-success",
        pb.STARTED,
        pb.STARTED,
        pb.SUCCESS,
        False,
        True,
        (pb.SUCCESS, NONE),
    ),
    (
        "3a output STARTED, task SUCCESS, no task-success",
        pb.STARTED,
        pb.STARTED,
        pb.SUCCESS,
        False,
        False,
        (pb.INFRA_FAILURE, NONE),
    ),
    (
        "3a scheduled build, task SUCCESS, task-success",
        pb.SCHEDULED,
        UNSET,
        pb.SUCCESS,
        False,
        True,
        (pb.SUCCESS, NONE),
    ),
    (
        "3a scheduled build, task SUCCESS, no task-success",
        pb.SCHEDULED,
        UNSET,
        pb.SUCCESS,
        False,
        False,
        (pb.INFRA_FAILURE, NONE),
    ),
    ("3a scheduled build, task FAILURE", pb.SCHEDULED, UNSET, pb.FAILURE, False, False, (pb.INFRA_FAILURE, NONE)),
    ("3a scheduled build, task CANCELED", pb.SCHEDULED, UNSET, pb.CANCELED, True, True, (pb.INFRA_FAILURE, NONE)),
    (
        "3a scheduled build, output SCHEDULED, task INFRA_FAILURE",
        pb.SCHEDULED,
        pb.SCHEDULED,
        pb.INFRA_FAILURE,
        False,
        True,
        (pb.INFRA_FAILURE, NONE),
    ),
    ("3a started build, task FAILURE", pb.STARTED, UNSET, pb.FAILURE, False, False, (pb.FAILURE, TASK)),
    (
        "3a started build, task INFRA_FAILURE",
        pb.STARTED,
        UNSET,
        pb.INFRA_FAILURE,
        False,
        True,
        (pb.INFRA_FAILURE, TASK),
    ),
    ("3a started build, task CANCELED", pb.STARTED, UNSET, pb.CANCELED, False, False, (pb.CANCELED, TASK)),
    (
        "3a started build, output STARTED, task CANCELED, cancel set",
        pb.STARTED,
        pb.STARTED,
        pb.CANCELED,
        True,
        False,
        (pb.CANCELED, TASK),
    ),
    ("3a unspecified build, task FAILURE", pb.STATUS_UNSPECIFIED, UNSET, pb.FAILURE, False, False, (pb.FAILURE, TASK)),
    # 3b. Output SUCCESS: the task's status.
    (
        "3b output SUCCESS, task SUCCESS, no task-success",
        pb.STARTED,
        pb.SUCCESS,
        pb.SUCCESS,
        False,
        False,
        (pb.SUCCESS, TASK),
    ),
    (
        "3b output SUCCESS, task SUCCESS, task-success",
        pb.STARTED,
        pb.SUCCESS,
        pb.SUCCESS,
        False,
        True,
        (pb.SUCCESS, TASK),
    ),
    ("3b output SUCCESS, task FAILURE", pb.STARTED, pb.SUCCESS, pb.FAILURE, False, True, (pb.FAILURE, TASK)),
    (
        "3b output SUCCESS, task INFRA_FAILURE",
        pb.STARTED,
        pb.SUCCESS,
        pb.INFRA_FAILURE,
        False,
        True,
        (pb.INFRA_FAILURE, TASK),
    ),
    (
        "3b output SUCCESS, task CANCELED, cancel set",
        pb.STARTED,
        pb.SUCCESS,
        pb.CANCELED,
        True,
        True,
        (pb.CANCELED, TASK),
    ),
    (
        "3b output SUCCESS, scheduled build, task SUCCESS",
        pb.SCHEDULED,
        pb.SUCCESS,
        pb.SUCCESS,
        False,
        False,
        (pb.SUCCESS, TASK),
    ),
    # 3c. Output CANCELED.
    (
        "3c output CANCELED, cancel set, task SUCCESS",
        pb.STARTED,
        pb.CANCELED,
        pb.SUCCESS,
        True,
        True,
        (pb.CANCELED, OUTPUT),
    ),
    (
        "3c output CANCELED, cancel set, task FAILURE",
        pb.STARTED,
        pb.CANCELED,
        pb.FAILURE,
        True,
        False,
        (pb.CANCELED, OUTPUT),
    ),
    (
        "3c output CANCELED, cancel set, task INFRA_FAILURE",
        pb.STARTED,
        pb.CANCELED,
        pb.INFRA_FAILURE,
        True,
        False,
        (pb.CANCELED, OUTPUT),
    ),
    (
        "3c output CANCELED, no cancel, task SUCCESS",
        pb.STARTED,
        pb.CANCELED,
        pb.SUCCESS,
        False,
        False,
        (pb.INFRA_FAILURE, NONE),
    ),
    (
        "3c output CANCELED, no cancel, task SUCCESS, task-success",
        pb.STARTED,
        pb.CANCELED,
        pb.SUCCESS,
        False,
        True,
        (pb.INFRA_FAILURE, NONE),
    ),
    (
        "3c output CANCELED, no cancel, task FAILURE",
        pb.STARTED,
        pb.CANCELED,
        pb.FAILURE,
        False,
        False,
        (pb.FAILURE, TASK),
    ),
    (
        "3c output CANCELED, no cancel, task CANCELED",
        pb.STARTED,
        pb.CANCELED,
        pb.CANCELED,
        False,
        False,
        (pb.CANCELED, TASK),
    ),
    (
        "3c output CANCELED, no cancel, task INFRA_FAILURE",
        pb.STARTED,
        pb.CANCELED,
        pb.INFRA_FAILURE,
        False,
        True,
        (pb.INFRA_FAILURE, TASK),
    ),
    # 3d. Any other ended output: the output's status.
    ("3d output FAILURE, task SUCCESS", pb.STARTED, pb.FAILURE, pb.SUCCESS, False, True, (pb.FAILURE, OUTPUT)),
    (
        "3d output FAILURE, task INFRA_FAILURE",
        pb.STARTED,
        pb.FAILURE,
        pb.INFRA_FAILURE,
        True,
        False,
        (pb.FAILURE, OUTPUT),
    ),
    (
        "3d output INFRA_FAILURE, task SUCCESS",
        pb.STARTED,
        pb.INFRA_FAILURE,
        pb.SUCCESS,
        False,
        True,
        (pb.INFRA_FAILURE, OUTPUT),
    ),
    (
        "3d output INFRA_FAILURE, task CANCELED",
        pb.STARTED,
        pb.INFRA_FAILURE,
        pb.CANCELED,
        True,
        False,
        (pb.INFRA_FAILURE, OUTPUT),
    ),
    ("3d output FAILURE, scheduled build", pb.SCHEDULED, pb.FAILURE, pb.FAILURE, False, False, (pb.FAILURE, OUTPUT)),
    # Output status ENDED_MASK rule: it has the ended bit, so it is ended and copied, as upstream.
    ("3d output ENDED_MASK, task SUCCESS", pb.STARTED, pb.ENDED_MASK, pb.SUCCESS, False, True, (pb.ENDED_MASK, OUTPUT)),
    (
        "3d output ENDED_MASK, task FAILURE",
        pb.STARTED,
        pb.ENDED_MASK,
        pb.FAILURE,
        False,
        False,
        (pb.ENDED_MASK, OUTPUT),
    ),
    ("3d output undeclared 100, task FAILURE", pb.STARTED, 100, pb.FAILURE, False, False, (100, OUTPUT)),
    ("3a output undeclared 3 (no ended bit)", pb.STARTED, 3, pb.FAILURE, False, False, (pb.FAILURE, TASK)),
]


@pytest.mark.parametrize(
    "build_status, output_status, task_status, cancel_requested, task_success, expected",
    [row[1:] for row in RULES],
    ids=[row[0] for row in RULES],
)
def test_derive_status_follows_the_contract(
    build_status, output_status, task_status, cancel_requested, task_success, expected
):
    decision = derive_status(
        build_status=build_status,
        output_status=output_status,
        task_status=task_status,
        cancel_requested=cancel_requested,
        task_success=task_success,
    )

    assert decision == (StatusDecision(*expected) if expected else None)


# --- apply_status ------------------------------------------------------------------------


def timeout_details():
    return pb.StatusDetails(timeout=pb.StatusDetails.Timeout())


def exhaustion_details():
    return pb.StatusDetails(resource_exhaustion=pb.StatusDetails.ResourceExhaustion())


def make_build(status=pb.SCHEDULED, output_details=None, build_details=None, **times):
    build = pb.Build(id=1, status=status)
    build.update_time.FromDatetime(EARLIER)
    for name, value in times.items():
        getattr(build, name).FromDatetime(value)
    if output_details is not None:
        build.output.status_details.CopyFrom(output_details)
    if build_details is not None:
        build.status_details.CopyFrom(build_details)
    return build


def make_task(status=pb.SUCCESS, details=None):
    task = pb.Task(id=pb.TaskID(target="swarming://s", id="t1"), status=status, update_id=2)
    if details is not None:
        task.status_details.CopyFrom(details)
    return task


def at(timestamp_field):
    return timestamp_field.ToDatetime(datetime.timezone.utc)


def test_same_status_returns_false_and_changes_nothing():
    build = make_build(status=pb.STARTED, start_time=EARLIER, build_details=exhaustion_details())
    before = build.SerializeToString()

    changed = apply_status(build, StatusDecision(pb.STARTED, TASK), make_task(pb.SUCCESS, timeout_details()), NOW)

    assert changed is False
    assert build.SerializeToString() == before


def test_new_status_is_set_and_update_time_is_now():
    build = make_build(status=pb.STARTED)

    changed = apply_status(build, StatusDecision(pb.FAILURE, TASK), make_task(pb.FAILURE), NOW)

    assert changed is True
    assert build.status == pb.FAILURE
    assert at(build.update_time) == NOW


def test_started_sets_start_time_when_unset():
    build = make_build(status=pb.SCHEDULED)

    apply_status(build, StatusDecision(pb.STARTED, TASK), make_task(pb.STARTED), NOW)

    assert at(build.start_time) == NOW
    assert not build.HasField("end_time")


def test_started_keeps_an_existing_start_time():
    build = make_build(status=pb.SCHEDULED, start_time=EARLIER)

    apply_status(build, StatusDecision(pb.STARTED, TASK), make_task(pb.STARTED), NOW)

    assert at(build.start_time) == EARLIER


@pytest.mark.parametrize("status", ENDED)
def test_ended_status_sets_end_time_when_unset_and_not_start_time(status):
    build = make_build(status=pb.STARTED)

    apply_status(build, StatusDecision(status, TASK), make_task(status), NOW)

    assert at(build.end_time) == NOW
    assert not build.HasField("start_time")


def test_ended_status_keeps_an_existing_end_time():
    build = make_build(status=pb.STARTED, end_time=EARLIER)

    apply_status(build, StatusDecision(pb.FAILURE, TASK), make_task(pb.FAILURE), NOW)

    assert at(build.end_time) == EARLIER


def test_scheduled_sets_neither_start_nor_end_time():
    build = make_build(status=pb.STATUS_UNSPECIFIED)

    apply_status(build, StatusDecision(pb.SCHEDULED, TASK), make_task(pb.SCHEDULED), NOW)

    assert not build.HasField("start_time")
    assert not build.HasField("end_time")


def test_status_details_come_from_the_task_when_the_task_is_the_source():
    build = make_build(status=pb.STARTED, output_details=exhaustion_details())

    apply_status(build, StatusDecision(pb.INFRA_FAILURE, TASK), make_task(pb.INFRA_FAILURE, timeout_details()), NOW)

    assert build.status_details == timeout_details()


def test_status_details_come_from_the_output_when_the_output_is_the_source():
    build = make_build(status=pb.STARTED, output_details=exhaustion_details())

    apply_status(build, StatusDecision(pb.FAILURE, OUTPUT), make_task(pb.SUCCESS, timeout_details()), NOW)

    assert build.status_details == exhaustion_details()


@pytest.mark.parametrize(
    "source, build_kwargs, task_details",
    [
        (TASK, {"output_details": exhaustion_details()}, None),
        (OUTPUT, {}, timeout_details()),
    ],
    ids=["task", "output"],
)
def test_unset_details_of_the_source_clear_the_builds_details(source, build_kwargs, task_details):
    build = make_build(status=pb.STARTED, build_details=exhaustion_details(), **build_kwargs)

    apply_status(build, StatusDecision(pb.FAILURE, source), make_task(pb.FAILURE, task_details), NOW)

    assert not build.HasField("status_details")


def test_a_status_the_rules_make_up_clears_details_that_task_and_output_carry():
    build = make_build(status=pb.STARTED, output_details=exhaustion_details(), build_details=exhaustion_details())

    apply_status(build, StatusDecision(pb.INFRA_FAILURE, NONE), make_task(pb.SUCCESS, timeout_details()), NOW)

    assert build.status == pb.INFRA_FAILURE
    assert not build.HasField("status_details")


def test_apply_status_leaves_the_output_and_other_fields_alone():
    build = make_build(status=pb.STARTED, output_details=exhaustion_details(), create_time=EARLIER)
    build.output.status = pb.FAILURE
    build.summary_markdown = "kept"

    apply_status(build, StatusDecision(pb.FAILURE, OUTPUT), make_task(pb.SUCCESS), NOW)

    assert build.output.status == pb.FAILURE
    assert build.output.status_details == exhaustion_details()
    assert build.summary_markdown == "kept"
    assert at(build.create_time) == EARLIER
