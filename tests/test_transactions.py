"""Transactions: how they begin, how they end, and what is retried — on both Datastore emulators."""

from __future__ import annotations

import threading

import pytest
from buildsync.edge.environment import transaction_begin
from buildsync.errors import SettingsError
from buildsync.store.transactions import TransactionBegin, run_in_transaction
from google.cloud import datastore

from tests.harness import PROJECT
from tools.emulators import datastore_client as emulator_client


@pytest.mark.parametrize(
    "env, begin",
    [
        ({}, TransactionBegin.LAZY),
        ({"BUILDSYNC_TRANSACTION_BEGIN": ""}, TransactionBegin.LAZY),
        ({"BUILDSYNC_TRANSACTION_BEGIN": "lazy"}, TransactionBegin.LAZY),
        ({"BUILDSYNC_TRANSACTION_BEGIN": "explicit"}, TransactionBegin.EXPLICIT),
    ],
)
def test_transaction_begin_is_lazy_unless_the_environment_says_explicit(env, begin):
    assert transaction_begin(env) is begin


def test_an_unknown_transaction_begin_is_a_settings_error_naming_the_choices():
    with pytest.raises(SettingsError, match="BUILDSYNC_TRANSACTION_BEGIN='Explicit': expected 'lazy' or 'explicit'"):
        transaction_begin({"BUILDSYNC_TRANSACTION_BEGIN": "Explicit"})


def counter(client: datastore.Client, value: int) -> datastore.Entity:
    entity = datastore.Entity(client.key("Counter", 1))
    entity["value"] = value
    return entity


def increment(client: datastore.Client) -> int:
    entity = client.get(client.key("Counter", 1))
    entity["value"] += 1
    client.put(entity)
    return entity["value"]


@pytest.mark.both_emulators
def test_a_transaction_writes_what_it_read(datastore_client, transaction_begin):
    datastore_client.put(counter(datastore_client, 1))

    assert run_in_transaction(datastore_client, lambda _: increment(datastore_client), begin=transaction_begin) == 2
    assert datastore_client.get(datastore_client.key("Counter", 1))["value"] == 2


@pytest.mark.both_emulators
def test_a_read_only_transaction_ends_in_a_rollback_not_a_commit(datastore_client, transaction_begin):
    # The Firestore emulator answers a read-only commit with INVALID_ARGUMENT; a dry run must not commit.
    datastore_client.put(counter(datastore_client, 5))

    def read(transaction: datastore.Transaction) -> int:
        return datastore_client.get(datastore_client.key("Counter", 1))["value"]

    assert run_in_transaction(datastore_client, read, read_only=True, begin=transaction_begin, attempts=1) == 5


@pytest.mark.parametrize("datastore_kind", ["firestore"], indirect=True)
def test_a_lock_timeout_is_retried_as_contention(datastore_client, datastore_emulator, transaction_begin):
    """Under pessimistic locking a second reader waits, then gets 409 Transaction lock timeout; a retry succeeds."""
    datastore_client.put(counter(datastore_client, 0))
    other = emulator_client(datastore_emulator.host, PROJECT)
    locked, release = threading.Event(), threading.Event()

    def hold_the_lock() -> None:
        with other.transaction():  # explicit: the lock is taken by this lookup
            entity = other.get(other.key("Counter", 1))
            locked.set()
            release.wait(timeout=60)
            entity["value"] += 10
            other.put(entity)

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    assert locked.wait(timeout=30)
    backoffs: list[float] = []

    def backoff(seconds: float) -> None:  # the first attempt timed out on the lock: let the holder commit
        backoffs.append(seconds)
        release.set()
        holder.join(timeout=30)

    try:
        value = run_in_transaction(
            datastore_client, lambda _: increment(datastore_client), begin=transaction_begin, sleep=backoff
        )
    finally:
        release.set()
        holder.join(timeout=30)

    assert len(backoffs) == 1
    assert value == 11  # the holder's +10 and ours: nothing lost
    assert datastore_client.get(datastore_client.key("Counter", 1))["value"] == 11
