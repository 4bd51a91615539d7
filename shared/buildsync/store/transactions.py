"""Datastore transactions with the retry the client library leaves to us.

`client.transaction()` does not retry on contention; Buildbucket's other
writers touch the same builds, so conflicts are expected. The whole
read-decide-write is retried with jittered exponential backoff, a bounded
number of times, and only for errors that `errors.is_transient` accepts. That
includes a pessimistic lock's timeout (Firestore in Datastore mode: Aborted,
"Transaction lock timeout"), which is contention like any other.

How a transaction begins is a setting (`TransactionBegin`). Production begins
it with its first lookup, saving a round trip; the Firestore emulator cannot
write what such a transaction read (its own lock blocks the commit until the
lock times out, firebase-tools issue 8105), so there it begins explicitly.

A read-only transaction, a dry run's included, ends with a rollback: it has
nothing to commit, and the Firestore emulator refuses to commit one.
"""

from __future__ import annotations

import enum
import random
import time
from typing import Callable, TypeVar

from google.cloud import datastore

from buildsync import metrics
from buildsync.errors import SettingsError, as_sync_error, is_transient

T = TypeVar("T")

# Enough to ride out a burst of contention on one group; few enough that a
# stuck group fails its batch in seconds rather than minutes.
DEFAULT_ATTEMPTS = 5
_FIRST_BACKOFF_SECONDS = 0.1
_MAX_BACKOFF_SECONDS = 2.0


class TransactionBegin(enum.Enum):
    """When a transaction starts on the server."""

    LAZY = "lazy"  # with its first lookup (the default, for production)
    EXPLICIT = "explicit"  # with a BeginTransaction call first (for the Firestore emulator)


def parse_transaction_begin(text: str | None, source: str) -> TransactionBegin:
    """`lazy` (also when unset) or `explicit`; anything else is a SettingsError naming `source`."""
    text = text or TransactionBegin.LAZY.value
    try:
        return TransactionBegin(text)
    except ValueError:
        choices = " or ".join(repr(b.value) for b in TransactionBegin)
        raise SettingsError(f"{source}={text!r}: expected {choices}") from None


def run_in_transaction(
    client: datastore.Client,
    work: Callable[[datastore.Transaction], T],
    *,
    begin: TransactionBegin = TransactionBegin.LAZY,
    attempts: int = DEFAULT_ATTEMPTS,
    read_only: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Runs `work` in a fresh transaction until one commits or attempts run out.

    Raises TransientError or PermanentError (see errors.py) when it gives up.
    """
    for attempt in range(1, attempts + 1):
        try:
            with client.transaction(read_only=read_only, begin_later=begin is TransactionBegin.LAZY) as transaction:
                result = work(transaction)
                if read_only:
                    transaction.rollback()  # leaving the block would commit it
                return result
        except Exception as error:  # sorted by the one table in errors.py
            retried = is_transient(error) and attempt < attempts
            metrics.transaction_retry(type(error).__name__, attempt, final=not retried)
            if not retried:
                raise as_sync_error(error, f"transaction failed after {attempt} attempt(s)") from error
            backoff = min(_MAX_BACKOFF_SECONDS, _FIRST_BACKOFF_SECONDS * 2 ** (attempt - 1))
            sleep(backoff * random.uniform(0.5, 1.0))
    raise AssertionError("unreachable: the loop returns or raises")
