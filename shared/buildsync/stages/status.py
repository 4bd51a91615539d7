"""`buildsync status`: how many builds are incomplete and due, and how far behind the sync is.

For each backend, project and shard it counts the incomplete builds, those due
now (exactly the builds the shard query would return at this moment) and the
age of the oldest due one, which is the sync's lag. Builds on lite-mode
backends, or on backends missing from the settings, are never synced: they are
listed apart.

It reads only indexes the deployment already has (deploy/index.yaml): a
distinct projection of (backend_target, project) over incomplete builds, and
per pair a projection of next_backend_sync_time, whose shard and time parts
say the rest. A projection reads index entries, never the builds themselves.
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

from google.cloud import datastore
from google.cloud.datastore.query import PropertyFilter

from buildsync.errors import as_sync_error
from buildsync.rules import sync_time
from buildsync.rules.settings import Settings
from buildsync.store import model

LITE_MODE = "lite mode: not synced"
NOT_IN_SETTINGS = "not in the settings: not synced"


@dataclasses.dataclass(frozen=True)
class ShardStatus:
    """One row: a shard of one (backend, project)."""

    backend: str
    project: str
    shard: int
    incomplete: int
    due: int
    # Seconds since the oldest due build became due; None when nothing is due.
    oldest_due_age_seconds: int | None


@dataclasses.dataclass(frozen=True)
class NotSynced:
    """Incomplete builds on a backend the sync never visits, and why."""

    backend: str
    reason: str
    incomplete: int


@dataclasses.dataclass(frozen=True)
class SyncStatus:
    as_of: datetime.datetime
    rows: tuple[ShardStatus, ...]
    not_synced: tuple[NotSynced, ...]
    # Problems worth a line each, such as sync keys this code cannot read.
    problems: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of.isoformat(),
            "rows": [dataclasses.asdict(row) for row in self.rows],
            "not_synced": [dataclasses.asdict(item) for item in self.not_synced],
            "problems": list(self.problems),
        }


def pairs_with_incomplete_builds(client: datastore.Client) -> list[tuple[str, str]]:
    """Every (backend, project) that has an incomplete build, sorted.

    A value stored as something other than a string (a foreign or hostile
    writer's) is shown as its text, "" for null, so that the pairs still sort.
    """
    pairs = _project_incomplete(client, (model.BACKEND_TARGET, model.PROJECT), distinct=True)
    return sorted((_text(entity.get(model.BACKEND_TARGET)), _text(entity.get(model.PROJECT))) for entity in pairs)


def _text(value: object) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else repr(value)


def sync_times(client: datastore.Client, backend: str, project: str) -> list[str]:
    """The next_backend_sync_time of every incomplete build of (backend, project)."""
    entities = _project_incomplete(client, (model.NEXT_SYNC_TIME,), backend_target=backend, project=project)
    return [entity[model.NEXT_SYNC_TIME] for entity in entities]


def _project_incomplete(
    client: datastore.Client, properties: tuple[str, ...], distinct: bool = False, **equal: str
) -> list[datastore.Entity]:
    """The index entries of incomplete builds matching `equal`, projected on `properties`.

    Retry behaviour: Datastore failures raise TransientError.
    """
    query = client.query(
        kind=model.BUILD_KIND, projection=list(properties), distinct_on=list(properties) if distinct else ()
    )
    for name, value in {model.INCOMPLETE: True, **equal}.items():
        query.add_filter(filter=PropertyFilter(name, "=", value))
    try:
        return list(query.fetch())
    except Exception as error:  # sorted by the one table in errors.py
        where = "/".join(equal.values()) or "every backend"
        raise as_sync_error(error, f"reading {', '.join(properties)} of the incomplete builds of {where}") from error


def shard_rows(
    backend: str, project: str, keys: list[str], now: datetime.datetime, shards: int = 0
) -> tuple[list[ShardStatus], int]:
    """The rows of one (backend, project) from its sync keys, and how many keys were unreadable.

    Every shard below `shards` gets a row, even an empty one, so that an
    uneven spread shows; a shard seen in the keys beyond it gets one too.
    """
    seen: dict[int, list[str]] = {shard: [] for shard in range(shards)}
    unreadable = 0
    for key in keys:
        try:
            parsed = sync_time.parse_key(key, backend)
        except sync_time.SyncTimeKeyError:
            unreadable += 1
            continue
        if parsed.project != project:
            unreadable += 1
            continue
        seen.setdefault(parsed.shard, []).append(key)
    now_unix = int(now.timestamp())
    rows = []
    for shard in sorted(seen):
        lower, upper = sync_time.shard_range(backend, project, shard, now)
        # The shard query's own bounds, compared as Datastore compares strings.
        due = [sync_time.parse_time(key) for key in seen[shard] if lower < key < upper]
        oldest = now_unix - min(due) if due else None
        rows.append(ShardStatus(backend, project, shard, len(seen[shard]), len(due), oldest))
    return rows, unreadable


def collect_status(
    client: datastore.Client,
    settings: Settings,
    now: datetime.datetime,
    backend: str | None = None,
    project: str | None = None,
) -> SyncStatus:
    """The status of every (backend, project) with incomplete builds, narrowed by `backend` and `project`.

    Retry behaviour: Datastore failures raise TransientError.
    """
    known = {b.target for b in settings.backends}
    synced = {b.target: b for b in settings.full_mode_backends()}  # Settings owns the lite-mode rule
    rows: list[ShardStatus] = []
    not_synced: dict[str, NotSynced] = {}
    problems = []
    for pair_backend, pair_project in pairs_with_incomplete_builds(client):
        if backend not in (None, pair_backend) or project not in (None, pair_project):
            continue
        shards = synced[pair_backend].shards if pair_backend in synced else 0
        pair_rows, unreadable = shard_rows(
            pair_backend, pair_project, sync_times(client, pair_backend, pair_project), now, shards
        )
        rows += pair_rows
        if unreadable:
            problems.append(
                f"{unreadable} incomplete builds of {pair_backend}/{pair_project} have a next_backend_sync_time "
                "that is not <backend>--<project>--<shard>--<unix seconds>; no shard query finds them"
            )
        reason = NOT_IN_SETTINGS if pair_backend not in known else None if pair_backend in synced else LITE_MODE
        if reason is not None:
            count = sum(row.incomplete for row in pair_rows)
            previous = not_synced.get(pair_backend)
            not_synced[pair_backend] = NotSynced(pair_backend, reason, count + (previous.incomplete if previous else 0))
    return SyncStatus(now, tuple(rows), tuple(not_synced.values()), tuple(problems))


def projects_hint(pairs: list[tuple[str, str]], backend: str | None, project: str) -> str | None:
    """When `project` has no incomplete builds (on `backend`), a line saying so and naming those that do."""
    if any(p == project and backend in (None, b) for b, p in pairs):
        return None
    where = f" on {backend}" if backend else ""
    others = sorted({p for b, p in pairs if backend in (None, b)})
    listed = ", ".join(others) if others else "none"
    return f"project {project!r} has no incomplete builds{where}; projects that do: {listed}"


def format_age(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    hours, rest = divmod(max(seconds, 0), 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def format_table(status: SyncStatus) -> str:
    """A table for people: one line per shard, a marker on backends the sync skips, totals."""
    reasons = {item.backend: item.reason for item in status.not_synced}
    header = ("backend", "project", "shard", "incomplete", "due", "oldest due", "")
    lines = [
        (
            row.backend,
            row.project,
            str(row.shard),
            str(row.incomplete),
            str(row.due),
            format_age(row.oldest_due_age_seconds),
            reasons.get(row.backend, ""),
        )
        for row in status.rows
    ]
    widths = [max(len(cells[i]) for cells in [header, *lines]) for i in range(len(header))]
    right = {2, 3, 4, 5}

    def render(cells):
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    out = [f"as of {status.as_of.isoformat(timespec='seconds')}", render(header)]
    out += [render(cells) for cells in lines]
    synced = [row for row in status.rows if row.backend not in reasons]
    ages = [row.oldest_due_age_seconds for row in synced if row.oldest_due_age_seconds is not None]
    out.append(
        f"synced backends in all: {sum(r.incomplete for r in synced)} incomplete, {sum(r.due for r in synced)} "
        f"due now, oldest due {format_age(max(ages) if ages else None)}"
    )
    out += [
        f"not synced: {item.incomplete} incomplete builds on {item.backend} ({item.reason})"
        for item in status.not_synced
    ]
    out += [f"warning: {problem}" for problem in status.problems]
    return "\n".join(out)
