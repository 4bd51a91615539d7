"""Buildbucket's rules for a build's status once its task has moved on.

Pure functions over status values and protos: the sync stage reads and writes,
these decide. docs/rules.md ("The build's status from a newer task") is the spec.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum

from buildsync.proto import buildbucket_pb2 as pb

ENDED_MASK = pb.ENDED_MASK


def is_ended(status: int) -> bool:
    """Buildbucket's protoutil.IsEnded: the ended bit, whatever the rest (ENDED_MASK itself included)."""
    return status & ENDED_MASK == ENDED_MASK


def status_name(status: int) -> str:
    """The status's name, or its number when undeclared (Go's String() for an enum it does not know)."""
    return pb.Status.Name(status) if status in pb.Status.values() else str(status)


class DetailsSource(enum.Enum):
    """Whose `status_details` the build takes along with a new status.

    NONE is for a status the rules make up themselves (a successful task
    without task-success, a task that ended before the build started): no
    one reported details for it, so the build's are cleared, as upstream.
    """

    TASK = "task"
    OUTPUT = "output"
    NONE = "none"


@dataclasses.dataclass(frozen=True)
class StatusDecision:
    status: int
    details_from: DetailsSource


def derive_status(
    build_status: int,
    output_status: int,
    task_status: int,
    cancel_requested: bool,
    task_success: bool,
) -> StatusDecision | None:
    """The build's new status, or None when the task does not change it.

    `task_success` is the backend's `succeed_build_if_task_is_succeeded`.
    """
    if is_ended(build_status) or not is_ended(task_status):
        return None
    from_task = StatusDecision(task_status, DetailsSource.TASK)
    # Any output status with the ended bit is ended, as upstream: ENDED_MASK
    # itself, or a value this schema does not declare, is copied like FAILURE.
    if not is_ended(output_status):
        if task_status == pb.SUCCESS:
            return StatusDecision(pb.SUCCESS if task_success else pb.INFRA_FAILURE, DetailsSource.NONE)
        if build_status == pb.SCHEDULED:
            return StatusDecision(pb.INFRA_FAILURE, DetailsSource.NONE)
        return from_task
    if output_status == pb.SUCCESS:
        return from_task
    if output_status == pb.CANCELED:
        if cancel_requested:
            return StatusDecision(pb.CANCELED, DetailsSource.OUTPUT)
        return StatusDecision(pb.INFRA_FAILURE, DetailsSource.NONE) if task_status == pb.SUCCESS else from_task
    return StatusDecision(output_status, DetailsSource.OUTPUT)


def apply_status(build: pb.Build, decision: StatusDecision, task: pb.Task, now: datetime.datetime) -> bool:
    """Sets the decided status on `build`; returns whether the status changed."""
    if build.status == decision.status:
        return False
    build.status = decision.status
    build.update_time.FromDatetime(now)
    if decision.status == pb.STARTED and not build.HasField("start_time"):
        build.start_time.FromDatetime(now)
    if is_ended(decision.status) and not build.HasField("end_time"):
        build.end_time.FromDatetime(now)
    # Task and Build.Output both carry `status_details`; an unset one stays unset.
    sources = {DetailsSource.TASK: task, DetailsSource.OUTPUT: build.output}
    source = sources.get(decision.details_from)
    if source is not None and source.HasField("status_details"):
        build.status_details.CopyFrom(source.status_details)
    else:
        build.ClearField("status_details")
    return True
