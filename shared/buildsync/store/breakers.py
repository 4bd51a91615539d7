"""The backends' circuit breakers in Datastore: one small entity per backend target, shared by every instance.

buildsync's own kind, which Buildbucket never reads. The state and its rules
are rules/breaker.py's; this module only reads and writes them. An absent
entity is a closed breaker, so a healthy backend's breaker is read and never
written (docs/isolation.md).
"""

from __future__ import annotations

from typing import Callable

from google.cloud import datastore

from buildsync.errors import as_sync_error
from buildsync.rules.breaker import CLOSED, Breaker
from buildsync.store.transactions import TransactionBegin, run_in_transaction

BREAKER_KIND = "BuildsyncBackendBreaker"

# Nothing queries these entities: they are read by key, so no property is indexed.
_UNINDEXED = ("failures", "opened_at", "last_error")

# The stored last error is cut to this many characters (an unindexed string may be 1 MiB; an operator reads a line).
_MAX_ERROR_CHARS = 1000


def breaker_key(client: datastore.Client, target: str) -> datastore.Key:
    return client.key(BREAKER_KIND, target)


def read(client: datastore.Client, targets: list[str]) -> dict[str, Breaker]:
    """The breaker of each of `targets`, in one lookup. Retry behaviour: Datastore failures raise TransientError."""
    keys = [breaker_key(client, target) for target in targets]
    try:
        entities = client.get_multi(keys) if keys else []
    except Exception as error:  # sorted by the one table in errors.py
        raise as_sync_error(error, f"reading the breakers of {', '.join(targets)}") from error
    found = {entity.key.name: _from_entity(entity) for entity in entities}
    return {target: found.get(target, CLOSED) for target in targets}


def update(
    client: datastore.Client,
    target: str,
    change: Callable[[Breaker], Breaker],
    begin: TransactionBegin = TransactionBegin.LAZY,
) -> tuple[Breaker, Breaker]:
    """Applies `change` to the breaker of `target` in a transaction; returns its state before and after.

    Writes only when the state changed. Retry behaviour: raises TransientError
    or PermanentError as run_in_transaction does.
    """
    key = breaker_key(client, target)

    def work(_: datastore.Transaction) -> tuple[Breaker, Breaker]:
        entity = client.get(key)
        before = _from_entity(entity) if entity is not None else CLOSED
        after = change(before)
        if after != before:
            client.put(_to_entity(key, after))
        return before, after

    return run_in_transaction(client, work, begin=begin)


def _from_entity(entity: datastore.Entity) -> Breaker:
    return Breaker(
        failures=int(entity.get("failures") or 0),
        opened_at=entity.get("opened_at"),
        last_error=entity.get("last_error") or "",
    )


def _to_entity(key: datastore.Key, breaker: Breaker) -> datastore.Entity:
    entity = datastore.Entity(key, exclude_from_indexes=_UNINDEXED)
    entity.update(
        {
            "failures": breaker.failures,
            "opened_at": breaker.opened_at,
            "last_error": breaker.last_error[:_MAX_ERROR_CHARS],
        }
    )
    return entity
