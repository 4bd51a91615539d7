"""Datastore transactions with the retry the client library leaves to us.

`client.transaction()` does not retry on contention; Buildbucket's other
writers touch the same builds, so conflicts are expected. The whole
read-decide-write is retried with jittered exponential backoff, a bounded
number of times, and only for errors that `errors.is_transient` accepts.
"""

from __future__ import annotations

import random
import time
from typing import Callable, TypeVar

from google.cloud import datastore

from buildsync.errors import as_sync_error, is_transient

T = TypeVar("T")

# Enough to ride out a burst of contention on one group; few enough that a
# stuck group fails its batch in seconds rather than minutes.
DEFAULT_ATTEMPTS = 5
_FIRST_BACKOFF_SECONDS = 0.1
_MAX_BACKOFF_SECONDS = 2.0


def run_in_transaction(
    client: datastore.Client,
    work: Callable[[datastore.Transaction], T],
    *,
    attempts: int = DEFAULT_ATTEMPTS,
    read_only: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Runs `work` in a fresh transaction until one commits or attempts run out.

    Raises TransientError or PermanentError (see errors.py) when it gives up.
    """
    for attempt in range(1, attempts + 1):
        try:
            # begin_later: the first lookup starts the transaction, saving a round trip.
            with client.transaction(read_only=read_only, begin_later=True) as transaction:
                return work(transaction)
        except Exception as error:  # sorted by the one table in errors.py
            if not is_transient(error) or attempt == attempts:
                raise as_sync_error(error, f"transaction failed after {attempt} attempt(s)") from error
            backoff = min(_MAX_BACKOFF_SECONDS, _FIRST_BACKOFF_SECONDS * 2 ** (attempt - 1))
            sleep(backoff * random.uniform(0.5, 1.0))
    raise AssertionError("unreachable: the loop returns or raises")
