"""The outbox: which completion effects of an ended build are still to be done.

The transaction that ends a build also writes its outbox entry, a child of the
Build (so the transaction still touches one entity group per build). The entry
holds identity only: the build (its key) and the names of the effects left.
Whoever does the effects re-reads the build, so an entry can be redone at any
time; after the effects it is rewritten with what is left, or deleted. The
planner's sweep redoes entries whose first attempt died. Effects therefore
happen at least once; subscribers de-duplicate by build id.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum

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

# At most this many entries per sweep: one publish request holds 1000.
SWEEP_LIMIT = 1000

# Datastore takes at most 500 mutations in one commit.
MUTATIONS_PER_COMMIT = 500


class Effect(enum.StrEnum):
    """One thing Buildbucket does after a build ends (docs/rules.md "When a build ends")."""

    BUILDS_TOPIC = "builds_topic"  # BuildsV2PubSub to BUILDSYNC_BUILDS_TOPIC
    CALLBACK = "callback"  # PubSubCallBack to the build's pubsub_callback.topic
    RESULTDB = "resultdb"  # FinalizeInvocation of the build's invocation
    METRICS = "metrics"  # the completed-build count and durations


ALL_EFFECTS = frozenset(Effect)


@dataclasses.dataclass(frozen=True)
class Completion:
    """An ended build and the effects it still needs."""

    build_id: int
    effects: frozenset[Effect]
    created: datetime.datetime
    # How many times the effects were tried and some were left over.
    attempts: int = 0


def entry_key(client: datastore.Client, build_id: int) -> datastore.Key:
    return model.child_key(client, build_id, OUTBOX_KIND)


def entry_entity(client: datastore.Client, completion: Completion) -> datastore.Entity:
    entity = datastore.Entity(entry_key(client, completion.build_id), exclude_from_indexes=("effects", "attempts"))
    entity.update(
        {
            "effects": sorted(completion.effects),
            "created": completion.created,
            "attempts": completion.attempts,
        }
    )
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
    return Completion(model.build_id_of(entity.key), effects, created, int(entity.get("attempts") or 0))


def due(
    client: datastore.Client,
    now: datetime.datetime,
    min_age: datetime.timedelta = SWEEP_MIN_AGE,
    limit: int = SWEEP_LIMIT,
) -> list[Completion]:
    """Entries older than `min_age`, oldest first.

    Raises TransientError or PermanentError (errors.py) when Datastore fails.
    """
    query = client.query(kind=OUTBOX_KIND, order=["created"])
    query.add_filter(filter=datastore.query.PropertyFilter("created", "<", now - min_age))
    try:
        return [from_entity(entity) for entity in query.fetch(limit=limit)]
    except Exception as error:  # sorted by the one table in errors.py
        raise as_sync_error(error, "reading the completion outbox") from error


def settle(client: datastore.Client, done: list[Completion], left: list[Completion]) -> None:
    """Deletes the entries of `done` and rewrites those of `left` with what is still to do.

    Raises TransientError or PermanentError (errors.py); the entries then stay
    as they were, and their effects are redone.
    """
    deletes = [entry_key(client, c.build_id) for c in done]
    puts = [entry_entity(client, c) for c in left]
    try:
        for start in range(0, len(deletes), MUTATIONS_PER_COMMIT):
            client.delete_multi(deletes[start : start + MUTATIONS_PER_COMMIT])
        for start in range(0, len(puts), MUTATIONS_PER_COMMIT):
            client.put_multi(puts[start : start + MUTATIONS_PER_COMMIT])
    except Exception as error:  # sorted by the one table in errors.py
        raise as_sync_error(error, f"settling {len(done) + len(left)} outbox entries") from error
