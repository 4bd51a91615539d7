"""The floors: the least Datastore work the same builds need, on the same emulator in the same run.

Both run the core's own shard query (buildsync.stages.shard.due_batches), none of
the sync's decoding or deciding, and write the entities back unchanged (so the
builds stay due and every floor can run on the same seeded builds):

- the *tight* floor is the least possible work: per shard one keys-only query;
  per batch one lookup of Build+BuildInfra (in Lookups of at most 1,000 keys,
  Datastore's limit, side by side); per 25 builds one write-only
  (non-transactional) Commit. 2 reads per build.
- the *contract* floor adds what correctness needs: per batch one lookup of
  BuildInfra (the task ids to fetch), then per 25 builds a transaction that
  re-reads Build+BuildInfra and commits them (buildsync.store.transactions, so it
  begins its transactions as the sync does). 3 reads per build, as the sync.

Each floor is run with every thread count of FLOOR_THREADS and the best
counts: the ratio to the best floor is the honest one.
"""

from __future__ import annotations

import collections
import concurrent.futures
import datetime
import threading
from typing import Callable

from buildsync.stages.shard import due_batches
from buildsync.stages.sync import BUILDS_PER_TRANSACTION
from buildsync.store import model
from buildsync.store.transactions import TransactionBegin, run_in_transaction
from google.cloud import datastore

from tools.bench.seeding import Layout

FLOOR_THREADS = (4, 8, 16)
FLOORS = ("tight", "contract")
# docs/platform.md: a Lookup takes at most 1,000 keys.
LOOKUP_KEYS = 1000


class _TaskTree:
    """A thread pool whose tasks may submit more tasks; `wait` returns when none is left (or raises the first error)."""

    def __init__(self, threads: int) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="floor")
        self._pending = 0
        self._errors: list[BaseException] = []
        self._done = threading.Condition()

    def submit(self, work: Callable, *args) -> None:
        with self._done:
            self._pending += 1
        self._pool.submit(work, *args).add_done_callback(self._finished)

    def _finished(self, future: concurrent.futures.Future) -> None:
        with self._done:
            self._pending -= 1
            if future.exception() is not None:
                self._errors.append(future.exception())
            self._done.notify_all()

    def wait(self) -> None:
        with self._done:
            self._done.wait_for(lambda: self._pending == 0)
        self._pool.shutdown()
        if self._errors:
            raise self._errors[0]


def run_floor(
    kind: str,
    client: datastore.Client,
    layout: Layout,
    planned_at: datetime.datetime,
    threads: int,
    begin: TransactionBegin = TransactionBegin.LAZY,
) -> int:
    """Runs the `kind` floor ("tight" or "contract") with `threads` threads; returns the builds written back.

    `begin` is how the contract floor's transactions begin, as the sync's do on the same emulator.
    """
    tree = _TaskTree(threads)
    written = collections.Counter()
    lock = threading.Lock()

    def add(builds: int) -> None:
        with lock:
            written["builds"] += builds

    def keys_of(ids) -> list[datastore.Key]:
        return [k for i in ids for k in (model.build_key(client, i), model.infra_key(client, i))]

    def write(entities: list[datastore.Entity]) -> None:
        client.put_multi(entities)
        add(len(entities) // 2)

    def transaction(ids: tuple[int, ...]) -> None:
        def work(_: datastore.Transaction) -> None:
            client.put_multi(client.get_multi(keys_of(ids)))

        run_in_transaction(client, work, begin=begin)
        add(len(ids))

    def read_tight(ids: tuple[int, ...]) -> None:
        builds_per_lookup = LOOKUP_KEYS // 2  # a build's two keys stay in one Lookup
        if len(ids) > builds_per_lookup:
            for start in range(0, len(ids), builds_per_lookup):
                tree.submit(read_tight, ids[start : start + builds_per_lookup])
            return
        by_build: dict[int, list[datastore.Entity]] = collections.defaultdict(list)
        for entity in client.get_multi(keys_of(ids)):
            by_build[model.build_id_of(entity.key)].append(entity)
        for start in range(0, len(ids), BUILDS_PER_TRANSACTION):
            tree.submit(write, [e for i in ids[start : start + BUILDS_PER_TRANSACTION] for e in by_build[i]])

    def read_contract(ids: tuple[int, ...]) -> None:
        found = {model.build_id_of(e.key) for e in client.get_multi([model.infra_key(client, i) for i in ids])}
        with_infra = tuple(i for i in ids if i in found)
        for start in range(0, len(with_infra), BUILDS_PER_TRANSACTION):
            tree.submit(transaction, with_infra[start : start + BUILDS_PER_TRANSACTION])

    read = {"tight": read_tight, "contract": read_contract}[kind]

    def query(job) -> None:
        for batch in due_batches(client, job):
            tree.submit(read, batch.build_ids)

    for job in layout.shard_jobs(planned_at):
        tree.submit(query, job)
    tree.wait()
    return written["builds"]
