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
    decision = derive_status(
        build_status=build.status,
        output_status=build.output.status,
        task_status=fetched.status,
        cancel_requested=build.HasField("cancel_time"),
        task_success=task_success,
    )
    changed = decision is not None and apply_status(build, decision, fetched, now)
    return Update(Outcome.UPDATED, status_changed=changed, ended=is_ended(build.status))
