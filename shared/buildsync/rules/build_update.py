"""What one build becomes given its freshly fetched task (docs/rules.md "Updating one build").

`decide_update` works on decoded protos and plain values, no Datastore: the
sync stage reads the entities inside the transaction, calls it, and writes back
whatever it says changed.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum

from buildsync.proto import buildbucket_pb2 as pb
from buildsync.rules import sync_time
from buildsync.rules.status_rules import apply_status, derive_status, is_ended
from buildsync.rules.task_rules import TaskChange, compare_tasks


class Outcome(enum.Enum):
    """What happened to one build; the names are the counters in a sync report."""

    SKIPPED = "skipped"  # gone, ended, taskless, or updated by someone else since planning
    INVALID = "invalid"  # no usable task came back for it
    STALE = "stale"  # the backend returned an older task than we have
    UNCHANGED = "unchanged"  # same task update: still running, only the sync time moves
    UPDATED = "updated"  # newer task merged (the status may have changed too)
    FAILED = "failed"  # could not be read, decided or written; the next run tries again


@dataclasses.dataclass(frozen=True)
class Update:
    outcome: Outcome
    reason: str = ""
    status_changed: bool = False
    ended: bool = False

    @property
    def writes_build(self) -> bool:
        return self.outcome in (Outcome.UNCHANGED, Outcome.UPDATED)

    @property
    def writes_infra(self) -> bool:
        return self.outcome is Outcome.UPDATED

    @property
    def completed(self) -> bool:
        """The build reached an ended status in this update."""
        return self.status_changed and self.ended


# docs/rules.md "A missing BuildStatus entity": Buildbucket's status updater
# fails with NotFound when the build's BuildStatus is missing, and its sync
# then saves nothing for that build, not even the merged task.
NO_BUILD_STATUS = Update(
    Outcome.FAILED,
    "BuildStatus entity is missing, so the status change cannot be recorded; nothing of the build was saved",
)


def skip_reason(
    build: pb.Build | None, infra: pb.BuildInfra | None, next_sync_key: str, planned_at: datetime.datetime
) -> str | None:
    """Why a build must be left alone whatever its task says, or None."""
    if build is None or infra is None:
        return "Build or BuildInfra entity is missing"
    if is_ended(build.status):
        return "build has already ended"
    if not infra.backend.task.id.id:
        return "build has no backend task"
    if not next_sync_key:
        return "build has no next_backend_sync_time"
    if sync_time.parse_time(next_sync_key) > sync_time.truncate_to_minute(planned_at):
        return "build was updated after this sync was planned"
    return None


@dataclasses.dataclass(frozen=True)
class Skip:
    """Why a build is left alone. A misrouted build is worth a warning: no batch should name it."""

    reason: str
    misrouted: bool = False


def skip_before_fetch(
    infra: pb.BuildInfra | None,
    backend: str,
    build: pb.Build | None = None,
    next_sync_key: str = "",
    planned_at: datetime.datetime | None = None,
) -> Skip | None:
    """Why a build of a batch for `backend` is left out before FetchTasks, or None to fetch its task.

    `build` is given only for a late batch, whose Build was read before the
    fetch: then skip_reason is asked here, saving its task a fetch. For a
    prompt batch (or a build gone missing) the transaction asks it instead.
    """
    task = infra.backend.task if infra is not None else None
    if task is None or not task.id.id:
        return Skip("no BuildInfra or no backend task")
    reason = _task_misrouted(task.id.target, backend)
    if reason:
        return Skip(reason, misrouted=True)
    if build is None or planned_at is None:
        return None
    reason = skip_reason(build, infra, next_sync_key, planned_at)
    return Skip(reason) if reason else None


def misrouted(
    build: pb.Build, infra: pb.BuildInfra, backend_target: str | None, backend: str, project: str
) -> str | None:
    """Why a build (stored with `backend_target`) does not belong to a batch of `backend` and `project`, or None."""
    if backend_target != backend:
        return f"build's backend_target {backend_target!r} is not the batch's backend {backend!r}"
    reason = _task_misrouted(infra.backend.task.id.target, backend)
    if reason:
        return reason
    if build.builder.project != project:
        return f"build's project {build.builder.project!r} is not the batch's project {project!r}"
    return None


def _task_misrouted(task_target: str, backend: str) -> str | None:
    """A task on another backend is never asked of this one, nor its answer applied."""
    if task_target and task_target != backend:
        return f"build's task is on {task_target!r}, not on the batch's backend {backend!r}"
    return None


def decide_update(
    build: pb.Build,
    infra: pb.BuildInfra,
    fetched: pb.Task | None,
    rejection: str | None,
    now: datetime.datetime,
    task_success: bool,
) -> Update:
    """Applies `fetched` to `build` and `infra` in place and says what changed.

    The caller has already checked `skip_reason`. `rejection` says why no
    usable task came back when `fetched` is None.
    """
    stored = infra.backend.task
    if fetched is None:
        return Update(Outcome.INVALID, rejection or "task missing from the FetchTasks response")
    change = compare_tasks(stored, fetched)
    if change is TaskChange.STALE:
        return Update(Outcome.STALE, f"fetched update_id {fetched.update_id} < stored {stored.update_id}")
    build.update_time.FromDatetime(now)
    if change is TaskChange.UNCHANGED:
        return Update(Outcome.UNCHANGED)
    stored.MergeFrom(fetched)
    trimmed = fit_task(infra, fetched)
    decision = derive_status(
        build_status=build.status,
        output_status=build.output.status,
        task_status=fetched.status,
        cancel_requested=build.HasField("cancel_time"),
        task_success=task_success,
    )
    changed = decision is not None and apply_status(build, decision, fetched, now)
    if build.ByteSize() > MAX_INFRA_BYTES and build.HasField("status_details"):
        # The task's status_details, copied into the Build, are two empty
        # messages upstream; anything else in them is unknown and may go.
        build.status_details.DiscardUnknownFields()
        trimmed = "; ".join(filter(None, [trimmed, "the Build keeps the task's status_details without unknown fields"]))
    return Update(Outcome.UPDATED, reason=trimmed or "", status_changed=changed, ended=is_ended(build.status))


# What a BuildInfra (or Build) proto may weigh and still be stored: Datastore's
# entity limit (1,048,572 bytes) less room for the entity's key, its other
# properties, their names and framing (docs/platform.md "Datastore").
MAX_INFRA_BYTES = 1_000_000


def fit_task(infra: pb.BuildInfra, fetched: pb.Task) -> str | None:
    """Makes `infra`, its task just merged with `fetched`, fit in one entity; says what it dropped, or None.

    Merging, as upstream does, lets a task's `details` keys pile up over
    updates until the entity cannot be written, and then the build could
    never end. So when the merge would not fit, the newest task is kept
    whole instead (the stored id's fields it leaves unset stay); when even
    that would not fit, its details, summaries, link and unknown fields go,
    and its identity and status stay, which is all a sync needs to end the
    build (docs/rules.md "Updating one build").
    """
    if infra.ByteSize() <= MAX_INFRA_BYTES:
        return None
    stored = infra.backend.task
    task_id = pb.TaskID()
    task_id.CopyFrom(stored.id)
    stored.Clear()
    stored.id.CopyFrom(task_id)
    stored.MergeFrom(fetched)
    if infra.ByteSize() <= MAX_INFRA_BYTES:
        return f"the merged task would be over {MAX_INFRA_BYTES} bytes of BuildInfra: the newest task is kept whole"
    for name in ("details", "summary_html", "summary_markdown", "link"):
        stored.ClearField(name)
    stored.DiscardUnknownFields()
    return (
        f"even the newest task alone would be over {MAX_INFRA_BYTES} bytes of BuildInfra: "
        "it is kept without its details, summaries, link and unknown fields"
    )
