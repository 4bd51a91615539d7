"""The outbox: which completion effects of an ended build are still to be done.

The transaction that ends a build also writes its outbox entry, a child of the
Build (so the transaction still touches one entity group per build). The entry
holds identity only: the build (its key) and the names of the effects left.
Whoever does the effects re-reads the build, so an entry can be redone at any
time; after the effects it is rewritten with what is left, or deleted. The
planner's sweep redoes entries whose first attempt died. Effects therefore
happen at least once; subscribers de-duplicate by build id.

The sweep takes entries by their next attempt, not by when they were made: an
entry rewritten with effects left is tried again after a growing delay
(`retry_delay`), behind every entry that is due sooner, so entries that keep
failing never hold newer ones back.

The next attempt is indexed as `sweep_at`, "<shard>--<unix millis>", the
shard a hash of the build id: every ended build writes and deletes an index
entry at "now", and one time-ordered range takes only about 500 writes a
second (docs/platform.md "Datastore"), so the entries are spread over
SWEEP_SHARDS ranges and the sweep reads each range apart (docs/capacity.md
"The outbox").

In `buildbucket` completion mode the entry also names the Cloud Tasks to
create in Buildbucket's queues, each with the task name chosen in the ending
transaction: a redone entry creates the same names again, which Cloud Tasks
refuses as duplicates, so each task is created once (docs/handoff.md
"The Cloud Tasks request").
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import zlib

from google.cloud import datastore

from buildsync import logs
from buildsync.errors import as_sync_error
from buildsync.store import model

# The kind of the JSON-notification outbox this replaces, so that its
# leftovers are swept after an upgrade (an entry without `effects`).
OUTBOX_KIND = "BuildsyncNotification"

# An entry younger than this may still be worked on by the sync that wrote
# it; the sweep leaves it alone to avoid most double effects.
SWEEP_MIN_AGE = datetime.timedelta(minutes=1)

# Entries read from one sweep range at a time: the sweep completes them (25 a
# chunk, completion.py) before it reads the next, so memory stays bounded.
SWEEP_CHUNK = 100

# Ranges the sweep key is spread over. Two index writes per ended build (the
# entry made, then deleted): 32 ranges at half of 500 writes a second each
# hold 4,000 endings a second, 7 million running 30-minute builds.
SWEEP_SHARDS = 32

# Legacy indexed times the sweep still reads, oldest form first: entries
# written before `sweep_at` existed, each rewritten in the new form once swept.
LEGACY_SWEEP_PROPERTIES = ("created", "next_attempt")

# An entry left over is tried again at the next sweep, then after 1, 2, 4, ...
# minutes up to this ceiling: a topic or host that is down for hours costs a
# few tries an hour, not one a minute.
MAX_RETRY_DELAY = datetime.timedelta(minutes=30)

# An effect still not done this long after its build ended is given up with an
# ERROR (completion.py): a topic deleted for good or an invocation ResultDB
# never accepts cannot keep an entry forever.
RETRY_BUDGET = datetime.timedelta(days=1)

# Datastore takes at most 500 mutations in one commit.
MUTATIONS_PER_COMMIT = 500


class Effect(enum.StrEnum):
    """One thing Buildbucket does after a build ends (docs/rules.md "When a build ends")."""

    BUILDS_TOPIC = "builds_topic"  # BuildsV2PubSub to BUILDSYNC_BUILDS_TOPIC
    CALLBACK = "callback"  # PubSubCallBack to the build's pubsub_callback.topic
    RESULTDB = "resultdb"  # FinalizeInvocation of the build's invocation
    METRICS = "metrics"  # the completed-build count and durations
    PROJECT_TOPICS = "project_topics"  # BuildsV2PubSub to the project's builds_notification_topics


ALL_EFFECTS = frozenset(Effect)


@dataclasses.dataclass(frozen=True, order=True)
class TaskRef:
    """One Cloud Task to create in Buildbucket's queues: its task class and the id its name ends with."""

    class_id: str
    task_id: str

    def to_text(self) -> str:
        return f"{self.class_id}/{self.task_id}"

    __str__ = to_text

    @classmethod
    def from_text(cls, text: str) -> TaskRef:
        class_id, _, task_id = text.partition("/")
        return cls(class_id, task_id)


@dataclasses.dataclass(frozen=True)
class Completion:
    """An ended build and the effects it still needs."""

    build_id: int
    effects: frozenset[Effect]
    created: datetime.datetime
    # How many times the effects were tried and some were left over.
    attempts: int = 0
    # The Cloud Tasks still to create (buildbucket completion mode), names fixed.
    tasks: frozenset[TaskRef] = frozenset()


def entry_key(client: datastore.Client, build_id: int) -> datastore.Key:
    return model.child_key(client, build_id, OUTBOX_KIND)


def retry_delay(attempts: int) -> datetime.timedelta:
    """How long after its `attempts`-th try an entry waits: none after the first, then doubling to the ceiling."""
    if attempts <= 1:
        return datetime.timedelta(0)
    return min(SWEEP_MIN_AGE * 2 ** min(attempts - 2, 32), MAX_RETRY_DELAY)


def out_of_budget(completion: Completion, now: datetime.datetime) -> bool:
    """Whether the effects left of `completion` have been retried for as long as they may be."""
    return now - completion.created >= RETRY_BUDGET


def sweep_shard(build_id: int) -> int:
    """The sweep range of a build's entry: a hash, since Buildbucket ids end in a constant version nibble
    (buildbucket/appengine/internal/buildid/buildid.go)."""
    return zlib.crc32(build_id.to_bytes(8, "big", signed=True)) % SWEEP_SHARDS


def sweep_key(build_id: int, next_attempt: datetime.datetime) -> str:
    """The indexed `sweep_at` of an entry: its range, then its next attempt, both zero-padded to sort as numbers."""
    return f"{sweep_shard(build_id):02d}--{_millis(next_attempt):015d}"


def _millis(moment: datetime.datetime) -> int:
    return max(0, int(moment.timestamp() * 1000))


def entry_entity(
    client: datastore.Client, completion: Completion, next_attempt: datetime.datetime | None = None
) -> datastore.Entity:
    """The entry of `completion`, due at `next_attempt` (default: when it was made).

    Only `sweep_at` is indexed: the sweep reads it range by range.
    """
    unindexed = ("effects", "attempts", "created", "tasks")
    entity = datastore.Entity(entry_key(client, completion.build_id), exclude_from_indexes=unindexed)
    entity.update(
        {
            "effects": sorted(completion.effects),
            "created": completion.created,
            "attempts": completion.attempts,
            "sweep_at": sweep_key(completion.build_id, next_attempt or completion.created),
        }
    )
    if completion.tasks:  # buildbucket mode only; a standalone entry stays as it was
        entity["tasks"] = sorted(task.to_text() for task in completion.tasks)
    return entity


def from_entity(entity: datastore.Entity) -> Completion:
    """The entry's completion; an entry of the JSON era (no `effects`) needs them all."""
    names = entity.get("effects")
    if names is None:
        effects = ALL_EFFECTS
    else:
        known = {name for name in names if name in ALL_EFFECTS}
        if len(known) != len(names):
            logs.event("WARNING", "outbox entry names unknown effects", key=str(entity.key.flat_path), effects=names)
        effects = frozenset(Effect(name) for name in known)
    created = entity.get("created") or datetime.datetime.fromtimestamp(0, datetime.timezone.utc)
    tasks = frozenset(TaskRef.from_text(text) for text in entity.get("tasks") or ())
    return Completion(model.build_id_of(entity.key), effects, created, int(entity.get("attempts") or 0), tasks)


def due(
    client: datastore.Client,
    now: datetime.datetime,
    min_age: datetime.timedelta = SWEEP_MIN_AGE,
    limit: int = SWEEP_CHUNK,
    *,
    shard: int,
) -> list[Completion]:
    """Up to `limit` entries of sweep range `shard` whose next attempt is more than `min_age` ago, longest due first.

    Range 0 also takes the entries of the legacy forms (LEGACY_SWEEP_PROPERTIES)
    first; settling rewrites them in the new form, so each is read this way
    once. Raises TransientError or PermanentError (errors.py) when Datastore fails.
    """
    cutoff = now - min_age
    found: list[Completion] = []
    try:
        if shard == 0:
            for name in LEGACY_SWEEP_PROPERTIES:
                query = client.query(kind=OUTBOX_KIND, order=[name])
                query.add_filter(filter=datastore.query.PropertyFilter(name, "<", cutoff))
                found += [from_entity(entity) for entity in query.fetch(limit=limit - len(found))]
                if len(found) >= limit:
                    return found
        query = client.query(kind=OUTBOX_KIND, order=["sweep_at"])
        query.add_filter(filter=datastore.query.PropertyFilter("sweep_at", ">", f"{shard:02d}--"))
        query.add_filter(filter=datastore.query.PropertyFilter("sweep_at", "<", f"{shard:02d}--{_millis(cutoff):015d}"))
        found += [from_entity(entity) for entity in query.fetch(limit=limit - len(found))]
    except Exception as error:  # sorted by the one table in errors.py
        raise as_sync_error(error, f"reading sweep range {shard} of the completion outbox") from error
    return found


def settle(
    client: datastore.Client,
    done: list[Completion],
    left: list[Completion],
    now: datetime.datetime | None = None,
) -> None:
    """Deletes the entries of `done` and rewrites those of `left` with what is still to do.

    Each of `left` is due again `retry_delay(attempts)` after `now` (default:
    the current time). Raises TransientError or PermanentError (errors.py);
    the entries then stay as they were, and their effects are redone.
    """
    now = now or datetime.datetime.now(datetime.timezone.utc)
    deletes = [entry_key(client, c.build_id) for c in done]
    puts = [entry_entity(client, c, now + retry_delay(c.attempts)) for c in left]
    try:
        for start in range(0, len(deletes), MUTATIONS_PER_COMMIT):
            client.delete_multi(deletes[start : start + MUTATIONS_PER_COMMIT])
        for start in range(0, len(puts), MUTATIONS_PER_COMMIT):
            client.put_multi(puts[start : start + MUTATIONS_PER_COMMIT])
    except Exception as error:  # sorted by the one table in errors.py
        raise as_sync_error(error, f"settling {len(done) + len(left)} outbox entries") from error
