"""What a fetched task is worth: validation, and how it compares to the stored one.

Pure functions over protos, so every rule of docs/rules.md ("Validating a fetched
task", "Updating one build") is tested directly.
"""

from __future__ import annotations

import dataclasses
import enum

from buildsync.errors import BackendResponseError
from buildsync.proto import buildbucket_pb2 as pb
from buildsync.rules import go_text

# docs/rules.md "Validating a fetched task": Buildbucket refuses details whose Go text form
# is over 50 KiB counted in whole KiB (`len(details.String())/1024 > 50`), that is from
# 51 × 1024 bytes on.
MAX_DETAILS_KIB = 50
FIRST_REFUSED_DETAILS_LENGTH = (MAX_DETAILS_KIB + 1) * 1024

# docs/rules.md "Limits": FetchTasks takes at most 1000 ids.
MAX_TASK_IDS = 1000

_USABLE_STATUSES = frozenset(pb.Status.values()) - {pb.STATUS_UNSPECIFIED, pb.ENDED_MASK}


def task_problem(task: pb.Task) -> str | None:
    """Why a fetched task cannot be used, or None when it can."""
    if not task.id.id:
        return "task id is empty"
    if task.update_id == 0:
        return "update_id is 0"
    if task.status not in _USABLE_STATUSES:
        return f"status {task.status} is not a usable task status"
    # No other field is bounded here, as upstream bounds none: what storage
    # cannot hold is build_update.fit_task's to decide, for the build alone.
    return details_problem(task)


def details_problem(task: pb.Task) -> str | None:
    """Why Buildbucket would refuse the task's details as too large, or None.

    Measured single-spaced (go_text.py): a Buildbucket binary that doubles
    its spaces measures `separators` more, and would refuse a little sooner.
    Unset details are "<nil>" to Go, 5 bytes.
    """
    if not task.HasField("details"):
        return None
    text = go_text.format_message(task.details, stop_after=FIRST_REFUSED_DETAILS_LENGTH)  # any depth decoded
    if text.complete and text.length < FIRST_REFUSED_DETAILS_LENGTH:
        return None
    size = f"{text.length:,} bytes" if text.complete else f"over {FIRST_REFUSED_DETAILS_LENGTH:,} bytes"
    return f"details are {size} in Go's text form, over Buildbucket's {MAX_DETAILS_KIB} KiB limit"


# A task is named by its backend and its id: ids are unique only within one backend.
TaskKey = tuple[str, str]


def task_key(task_id: pb.TaskID, default_target: str = "") -> TaskKey:
    """(target, id) of `task_id`; an empty target is `default_target` (the one asked of)."""
    return (task_id.target or default_target, task_id.id)


@dataclasses.dataclass(frozen=True)
class FetchedTasks:
    """A FetchTasks response sorted into usable tasks and rejected ids with reasons, by (target, id)."""

    usable: dict[TaskKey, pb.Task]
    rejected: dict[TaskKey, str]


def sort_responses(requested: list[pb.TaskID], response: pb.FetchTasksResponse) -> FetchedTasks:
    """Pairs each response with the id asked for at its index.

    Raises BackendResponseError when the response count is off, since then no
    response can be trusted to belong to its id.
    """
    if len(response.responses) != len(requested):
        raise BackendResponseError(
            f"FetchTasks returned {len(response.responses)} responses for {len(requested)} task ids"
        )
    requested_keys = {task_key(task_id) for task_id in requested}
    usable: dict[TaskKey, pb.Task] = {}
    rejected: dict[TaskKey, str] = {}
    for task_id, item in zip(requested, response.responses, strict=True):
        # An error can only be matched by position; a task names itself, as
        # the seed matched it (a task without a target is the asked backend's).
        asked = task_key(task_id)
        named = task_key(item.task.id, task_id.target)
        kind = item.WhichOneof("response")
        if kind == "error":
            rejected[asked] = f"backend error {item.error.code}: {item.error.message}"
        elif kind is None:
            rejected[asked] = "response has neither task nor error"
        elif item.task.id.id and named not in requested_keys:
            rejected[asked] = f"response is for task {named[1]!r} on {named[0]!r}, which was not asked for"
        elif (problem := task_problem(item.task)) is not None:
            rejected[named if item.task.id.id else asked] = problem
        else:
            usable[named] = item.task
    return FetchedTasks(usable=usable, rejected=rejected)


class TaskChange(enum.Enum):
    """How a fetched task relates to the one stored in BuildInfra."""

    STALE = "stale"  # older than what we have: a backend replica lagging
    UNCHANGED = "unchanged"  # the same update: the task is still running
    NEWER = "newer"  # something happened: merge it and re-derive the status


def compare_tasks(stored: pb.Task, fetched: pb.Task) -> TaskChange:
    if fetched.update_id < stored.update_id:
        return TaskChange.STALE
    if fetched.update_id == stored.update_id:
        return TaskChange.UNCHANGED
    return TaskChange.NEWER
