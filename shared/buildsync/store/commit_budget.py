"""How many builds one commit can carry: Datastore takes at most 10 MiB per commit.

A group of 25 builds usually writes well under a megabyte, but a build that
ends may rewrite a BuildSteps of up to a million bytes, and its Build and
BuildInfra may each come close to the 1 MiB entity limit. A commit over the
limit fails whole, and would fail again on every run, so those builds would
never end. A group whose writes exceed the budget therefore commits the
builds that fit and leaves the rest to a transaction of their own
(docs/platform.md "Datastore").
"""

from __future__ import annotations

from google.cloud import datastore
from google.cloud.datastore import helpers

from buildsync.store import model

# docs/platform.md "Datastore": 10 MiB per commit; the margin leaves room for
# the request's framing and whatever the size of an encoded entity leaves out.
COMMIT_BUDGET_BYTES = 9 * 1024 * 1024


# The most framing protobuf adds around one value (its tags, length prefixes,
# meaning and index flags) or one key path element; a scalar value's own bytes.
_FRAMING_BYTES = 40
_SCALAR_BYTES = 24


def encoded_size(entity: datastore.Entity) -> int:
    """The bytes `entity` takes in a commit request."""
    return helpers.entity_to_protobuf(entity)._pb.ByteSize()


def size_bound(entity: datastore.Entity) -> int:
    """At least `encoded_size(entity)`, without encoding it.

    Encoding an entity costs as much CPU as the commit that sends it; a group
    whose bound fits the budget needs no exact size at all.
    """
    return _key_bound(entity.key) + sum(len(name) + _value_bound(value) for name, value in entity.items())


def _key_bound(key: datastore.Key | None) -> int:
    if key is None:
        return _FRAMING_BYTES
    partition = len(key.project or "") + len(key.namespace or "") + len(getattr(key, "database", None) or "")
    return _FRAMING_BYTES + partition + sum(_FRAMING_BYTES + len(str(part)) for part in key.flat_path)


def _value_bound(value: object) -> int:
    if isinstance(value, bytes):
        return _FRAMING_BYTES + len(value)
    if isinstance(value, str):
        return _FRAMING_BYTES + len(value.encode())
    if isinstance(value, (list, tuple)):
        return _FRAMING_BYTES + sum(_value_bound(item) for item in value)
    if isinstance(value, datastore.Entity):
        return _FRAMING_BYTES + size_bound(value)
    if isinstance(value, datastore.Key):
        return _FRAMING_BYTES + _key_bound(value)
    if isinstance(value, dict):
        return _FRAMING_BYTES + sum(len(name) + _value_bound(item) for name, item in value.items())
    return _FRAMING_BYTES + _SCALAR_BYTES  # int, float, bool, None, datetime, GeoPoint


def builds_that_fit(sizes: list[int], budget: int) -> int:
    """How many builds, taken in order, fit in one commit; at least one, which always fits alone.

    `sizes` are the bytes each build writes. One build writes a few entities
    of at most about 1 MiB each, well within any budget worth setting.
    """
    total = 0
    for count, size in enumerate(sizes):
        total += size
        if total > budget and count > 0:
            return count
    return len(sizes)


def split_writes(
    build_ids: list[int], entities: list[datastore.Entity], budget: int
) -> tuple[list[datastore.Entity], list[int]]:
    """The entities of the leading builds that fit in `budget`, and the ids of the builds left over.

    Every entity belongs to one build (its key's root); a build is kept or
    left over whole, so each build's writes stay in one transaction. The sync
    passes COMMIT_BUDGET_BYTES unless told otherwise (sync.SyncOptions).
    """
    by_build: dict[int, list[datastore.Entity]] = {build_id: [] for build_id in build_ids}
    for entity in entities:
        by_build[model.build_id_of(entity.key)].append(entity)
    writing = [build_id for build_id in build_ids if by_build[build_id]]
    if sum(size_bound(entity) for entity in entities) <= budget:
        return entities, []  # the usual group: no entity needs encoding twice
    fit = builds_that_fit([sum(encoded_size(e) for e in by_build[build_id]) for build_id in writing], budget)
    kept = [entity for build_id in writing[:fit] for entity in by_build[build_id]]
    return kept, writing[fit:]
