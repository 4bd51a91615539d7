"""dscache's write protocol: the sync keeps Buildbucket's cached BuildStatus true.

The encodings are checked against upstream's own test vectors (cmpbin) and
against an independent reader (tools/dscache_reader.py); the protocol on a
real redis-server and the Datastore emulator, with a reader that follows
dscache's Get.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import socket
import threading

import pytest
from buildsync.errors import TransientError
from buildsync.proto import buildbucket_pb2 as pb
from buildsync.stages.messages import SyncBatch
from buildsync.stages.sync import SyncOptions, sync_batch
from buildsync.store import dscache, model
from buildsync.store.transactions import TransactionBegin
from google.cloud import datastore
from hypothesis import given
from hypothesis import strategies as st

from tests.builds import BACKEND, put_build
from tests.harness import LATER, LONG_AGO, PLANNED_AT, PROJECT
from tools import dscache_reader
from tools.delay_proxy import CommitGate, DelayProxy
from tools.dscache_reader import DscacheReader, Source
from tools.emulators import datastore_client as emulator_client
from tools.emulators import free_port, wait_until

# --- the encodings (pure) ---

# common/data/cmpbin/number_test.go's table, a sample of it.
CMPBIN_INTS = [
    (-(2**63), [0b01000000, 0b01111111, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]),
    (-129, [0b01111000, 0b01111110]),
    (-64, [0b01111001, 0b01111111]),
    (-1, [0b01111111, 0b01111111]),
    (0, [0b10000000, 0b00000000]),
    (5, [0b10000010, 0b10100000]),
    (65, [0b10000110, 0b10000010]),
    (2**31, [0b10011111, 0b10000000, 0, 0, 0]),
    (2**63 - 1, [0b10111110, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0b11111110]),
]


@pytest.mark.parametrize("value, expected", CMPBIN_INTS, ids=[str(v) for v, _ in CMPBIN_INTS])
def test_integers_are_written_as_cmpbin_writes_them(value, expected):
    assert dscache.cmpbin_int(value) == bytes(expected)


def test_strings_are_written_as_cmpbin_writes_them():
    assert dscache.cmpbin_bytes(b"1") == bytes([0b00110001, 0b10000000])
    assert dscache.cmpbin_bytes(b"") == b"\x00"
    assert dscache.cmpbin_bytes(b"this is a test")[:8] == bytes(
        [0b01110101, 0b00110101, 0b00011011, 0b00101111, 0b00110011, 0b00000011, 0b10100101, 0b11100111]
    )
    assert len(dscache.cmpbin_bytes(b"this is a test")) == 14 * 8 // 7 + 1


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1), st.binary(max_size=40))
def test_the_reader_reads_back_what_the_writer_writes(number, data):
    assert dscache_reader._read_int(io.BytesIO(dscache.cmpbin_int(number))) == number
    assert dscache_reader._read_bytes(io.BytesIO(dscache.cmpbin_bytes(data))) == data


def test_a_build_status_key_is_hashed_from_its_path_alone():
    path = ("Build", 5, "BuildStatus", 1)
    serialized = bytes([0, 1]) + dscache.cmpbin_bytes(b"Build") + bytes([1, 0x82, 0xA0])
    serialized += bytes([1]) + dscache.cmpbin_bytes(b"BuildStatus") + bytes([1, 0x80, 0x80, 0])
    assert dscache.serialize_key(path) == serialized
    key = dscache.cache_key(path)
    assert key.startswith("gae:1:0:") and len(key) == len("gae:1:0:") + 27 and "=" not in key


def test_a_named_key_carries_the_string_type():
    path = ("Project", "chromium")
    expected = bytes([0, 1]) + dscache.cmpbin_bytes(b"Project") + bytes([5]) + dscache.cmpbin_bytes(b"chromium")
    assert dscache.serialize_key(path) == expected + b"\x00"


def test_a_cached_entity_reads_back_with_its_types():
    entity = datastore.Entity(datastore.Key("BuildStatus", 1, project="p"), exclude_from_indexes=("status",))
    entity.update({"status": pb.STARTED, "build_address": "proj/ci/builder/b1", "flags": [True, None]})
    value = dscache_reader.encode_value(entity, b"D")
    assert value[:2] == b"D\x00"
    assert dscache_reader.decode_value(value[1:]) == dict(entity)
    assert dscache_reader.decode_value(b"") is None, "a cached missing entity"


# --- the protocol, on a real redis-server and the emulator ---


def end_build(client, fetcher, backend, build_id: int, cache: dscache.Cache | None, begin=TransactionBegin.LAZY):
    batch = SyncBatch(BACKEND, "proj", (build_id,), PLANNED_AT)
    options = SyncOptions(clock=lambda: LATER, dscache=cache, transaction_begin=begin)
    return sync_batch(client, fetcher, backend, batch, options)


@pytest.mark.both_emulators
def test_a_cached_started_status_is_replaced_by_the_ended_one_at_once(
    datastore_client, task_backend, fetcher, backend, redis_server, redis_client, transaction_begin
):
    put_build(datastore_client, 1, updated=LONG_AGO)
    reader = DscacheReader(redis_client, datastore_client)
    status_key = model.status_key(datastore_client, 1)
    assert reader.get(status_key)[1] is Source.FILLED
    assert reader.get(status_key) == ({"status": pb.STARTED, "build_address": "proj/ci/builder/b1"}, Source.CACHE)
    task_backend.backend.set_task("task-1", pb.FAILURE, 2)

    report = end_build(datastore_client, fetcher, backend, 1, dscache.Cache.at(redis_server.address), transaction_begin)

    assert report.completed == 1
    properties, source = reader.get(status_key)
    assert (properties["status"], source) == (pb.FAILURE, Source.FILLED), "the lock's DEL emptied the key"
    assert reader.get(status_key)[1] is Source.CACHE
    assert redis_client.keys("*") == [dscache.cache_key(status_key.flat_path).encode()]


def test_without_the_protocol_the_cached_status_stays_stale(
    datastore_client, task_backend, fetcher, backend, redis_client
):
    put_build(datastore_client, 2, updated=LONG_AGO)
    reader = DscacheReader(redis_client, datastore_client)
    status_key = model.status_key(datastore_client, 2)
    reader.get(status_key)
    task_backend.backend.set_task("task-2", pb.SUCCESS, 2)
    assert end_build(datastore_client, fetcher, backend, 2, None).completed == 1
    assert reader.get(status_key) == ({"status": pb.STARTED, "build_address": "proj/ci/builder/b2"}, Source.CACHE)


def test_a_lock_left_by_a_failed_commit_keeps_readers_off_the_cache_until_it_expires(datastore_client, redis_client):
    put_build(datastore_client, 3, updated=LONG_AGO)
    status_key = model.status_key(datastore_client, 3)
    locks = dscache.Cache(redis_client).write_locks()
    locks.lock([status_key.flat_path, model.build_key(datastore_client, 3).flat_path])  # Build is not cached

    reader = DscacheReader(redis_client, datastore_client)
    assert reader.get(status_key)[1] is Source.DATASTORE, "a writer's lock: read Datastore, store nothing"
    item = dscache.cache_key(status_key.flat_path)
    assert redis_client.get(item) == b"L" and 0 < redis_client.ttl(item) <= dscache.MUTATION_LOCK_SECONDS
    assert redis_client.keys("*") == [item.encode()]
    locks.release()
    assert reader.get(status_key)[1] is Source.FILLED


def test_a_failed_lock_is_tried_once_the_transaction_owns_the_retries(datastore_client):
    """redis-py retries a broken connection by itself; under five transaction attempts that would multiply."""
    hanging_up = socket.create_server(("127.0.0.1", 0))
    accepted = []

    def hang_up() -> None:
        with contextlib.suppress(OSError):
            while True:
                connection, _ = hanging_up.accept()
                accepted.append(connection)
                connection.close()

    threading.Thread(target=hang_up, daemon=True).start()
    locks = dscache.Cache.at(f"127.0.0.1:{hanging_up.getsockname()[1]}").write_locks()
    try:
        with pytest.raises(TransientError, match="locking 1 dscache keys"):
            locks.lock([model.status_key(datastore_client, 5).flat_path])
    finally:
        hanging_up.close()
    assert len(accepted) == 1


def test_a_redis_that_cannot_take_the_locks_fails_the_transaction_and_the_build_stays_as_it_was(
    datastore_client, task_backend, fetcher, backend
):
    put_build(datastore_client, 4, updated=LONG_AGO)
    task_backend.backend.set_task("task-4", pb.SUCCESS, 2)
    unreachable = dscache.Cache.at(f"127.0.0.1:{free_port()}")  # nothing listens there

    report = end_build(datastore_client, fetcher, backend, 4, unreachable)

    assert (report.completed, report.failed, report.retry) == (0, 1, True)
    build = model.read_build(datastore_client.get(model.build_key(datastore_client, 4)))
    assert build.status == pb.STARTED, "nothing committed while the cache could serve the old status"


# --- a real sync process killed between its locks and its commit ---


class StatusWatcher:
    """Reads a build's status through dscache over and over on its own thread, as `bb collect` polls it.

    A read is stale when Datastore held an ended status before the read
    began and the read still answered STARTED.
    """

    def __init__(self, redis_server, datastore_host: str, key: datastore.Key) -> None:
        self._client = emulator_client(datastore_host, PROJECT)
        self._reader = DscacheReader(redis_server.client(), self._client)
        self._key = key
        self.stale: list[Source] = []
        self.reads_after_end = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True, name="status-watcher")

    def __enter__(self) -> StatusWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _watch(self) -> None:
        while not self._stop.wait(0.02):  # the polling interval
            ended = self._client.get(self._key)["status"] != pb.STARTED
            properties, source = self._reader.get(self._key)
            if ended:
                self.reads_after_end += 1
                if properties["status"] == pb.STARTED:
                    self.stale.append(source)


# On the legacy emulator only: on the Firestore emulator the dead process's open
# transaction keeps its locks until they time out, and the redelivered batch
# waits about a minute for them (measured: 72 s against 8 s).
def test_a_sync_process_killed_between_its_locks_and_its_commit_leaves_no_stale_status_to_readers(
    datastore_client, datastore_emulator, make_stack, task_backend, settings_file, redis_server, redis_client
):
    put_build(datastore_client, 31, updated=LONG_AGO)
    status_key = model.status_key(datastore_client, 31)
    reader = DscacheReader(redis_client, datastore_client)
    assert reader.get(status_key)[1] is Source.FILLED, "STARTED cached, as a poller leaves it"
    task_backend.backend.set_task("task-31", pb.FAILURE, 2)
    item = dscache.cache_key(status_key.flat_path)
    batch = SyncBatch(BACKEND, "proj", (31,), datetime.datetime.now(datetime.timezone.utc)).to_json()
    gate = CommitGate(let_through=0)  # the ending transaction's Commit waits in the link

    with (
        DelayProxy(datastore_emulator.host, 0, gate=gate) as link,
        make_stack(
            settings_file, datastore_host=link.host, extra_env={"BUILDSYNC_DSCACHE_REDIS": redis_server.address}
        ) as stack,
        StatusWatcher(redis_server, datastore_emulator.host, status_key) as watcher,
    ):
        stack.publish(stack.topics.sync, batch)
        assert gate.holding.wait(90), "the sync function never sent its Commit"
        locked = (redis_client.get(item), redis_client.ttl(item))
        stack.functions["sync"].kill()
        link.close()  # the Commit is dropped with the dead process's connection
        while_locked = reader.get(status_key)
        unchanged = model.read_build(datastore_client.get(model.build_key(datastore_client, 31))).status

        stack.restart("sync", DATASTORE_EMULATOR_HOST=datastore_emulator.host)
        stack.publish(stack.topics.sync, batch)  # the batch redelivered
        wait_until(lambda: watcher.reads_after_end >= 5, 90, "the redelivered batch to end the build", interval=0.1)

    assert locked[0] == dscache.LOCK_VALUE, "locked before the Commit was sent"
    assert 0 < locked[1] <= dscache.MUTATION_LOCK_SECONDS, "a lock that expires"
    assert unchanged == pb.STARTED, "the dead process never committed"
    assert while_locked == ({"status": pb.STARTED, "build_address": "proj/ci/builder/b31"}, Source.DATASTORE)
    assert watcher.stale == [], "no read after the end answered STARTED"
    assert reader.get(status_key)[0]["status"] == pb.FAILURE
