"""What the tests share: the constants, the settings they write, and the one way to capture logs.

The fixtures that start things (emulators, the TaskBackend, the stack) are in
conftest.py; this module holds what they and the tests import by name.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import json
import logging
import sys
import threading
import uuid
import warnings
import zlib
from collections.abc import Callable, Iterator
from typing import NoReturn, TypeVar

import pytest
import zstandard
from buildsync import logs
from buildsync.proto import buildbucket_pb2 as pb
from buildsync.proto import notification_pb2 as npb
from buildsync.remote.backend import BackendPool
from buildsync.remote.backend_options import GRPC, PRPC, DeploymentOptions
from buildsync.store import commit_budget, model, outbox
from google.cloud import datastore, pubsub_v1

from tools.emulators import Emulator, EmulatorUnavailable, wait_until
from tools.emulators import datastore_client as emulator_client

PROJECT = "buildsync-test"
BACKEND = "swarming://test-swarm"
# The clock of the in-process syncs: a batch planned at PLANNED_AT (whole
# seconds, as a message carries it) is handled 10 s LATER; builds last updated
# LONG_AGO are due.
PLANNED_AT = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
LATER = PLANNED_AT + datetime.timedelta(seconds=10)
LONG_AGO = PLANNED_AT - datetime.timedelta(hours=1)
# The second backend of the isolation tests, whose TaskBackend never answers (conftest.py, hung_backend).
HUNG = "swarming://hung-swarm"

# How long a test waits for messages it expects on a topic.
PULL_SECONDS = 30

# Generous: three Python processes and two Java emulators share two cores.
SETTLE_SECONDS = 90


def utc(*args) -> datetime.datetime:
    return datetime.datetime(*args, tzinfo=datetime.timezone.utc)


# The transports a test marked both_transports runs over (conftest.py parametrizes `transport`).
TRANSPORTS = (PRPC, GRPC)


def backend_pool(transport: str, **pool_options) -> BackendPool:
    """A BackendPool that calls the test backend over `transport`, as a deployment's options say."""
    return BackendPool(options=DeploymentOptions({BACKEND: {"transport": transport}}), **pool_options)


def settings_text(hostname: str, **options) -> str:
    """A SettingsCfg with one full-mode backend at `hostname` and one lite-mode backend.

    `resultdb` names the ResultDB host the settings allow (none when left out).
    """
    shards = options.get("shards", 1)
    task_success = str(options.get("task_success", False)).lower()
    resultdb = f'resultdb {{ hostname: "{options["resultdb"]}" }}' if options.get("resultdb") else ""
    return f"""
{resultdb}
backends {{
  target: "{options.get("target", BACKEND)}"
  hostname: "{hostname}"
  full_mode {{
    succeed_build_if_task_is_succeeded: {task_success}
    build_sync_setting {{ shards: {shards} }}
  }}
}}
backends {{ target: "lite://backend" lite_mode {{}} }}
"""


def backend_text(target: str, hostname: str, shards: int) -> str:
    """One more full-mode backend for a SettingsCfg in text."""
    return f"""
backends {{
  target: "{target}"
  hostname: "{hostname}"
  full_mode {{ build_sync_setting {{ shards: {shards} }} }}
}}
"""


class CapturedLogs:
    """The JSON log lines buildsync wrote while captured."""

    def __init__(self) -> None:
        self.stream = io.StringIO()

    def events(self) -> list[dict]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines() if line.startswith("{")]


@contextlib.contextmanager
def captured_logs() -> Iterator[CapturedLogs]:
    """Sends buildsync's logs to memory for the block, then restores the default."""
    captured = CapturedLogs()
    logs.configure(captured.stream)
    try:
        yield captured
    finally:
        reset_logging()


def reset_logging() -> None:
    """Undoes logs.configure: no handler, the default level, and lines passed on to the root logger again."""
    for handler in list(logs.LOGGER.handlers):
        logs.LOGGER.removeHandler(handler)
    logs.LOGGER.propagate = True
    logs.LOGGER.setLevel(logging.NOTSET)


def start_emulator(kind: str) -> Emulator:
    """Starts the `kind` emulator, or skips the calling test loudly: a warning and the reason."""
    try:
        return Emulator(kind, PROJECT).start()
    except EmulatorUnavailable as error:
        skip_loudly(f"THE {kind.upper()} EMULATOR IS NOT AVAILABLE; its tests are skipped: {error}")


def skip_loudly(message: str) -> NoReturn:
    """Skips the calling test with a warning and a printed line, so that no run misses it."""
    warnings.warn(message, stacklevel=3)
    print(f"\n\n!!! {message}\n", flush=True)
    pytest.skip(message)


class Subscribed:
    """A topic on the emulator with a pull subscription that sees everything published to it."""

    def __init__(self, role: str) -> None:
        suffix = uuid.uuid4().hex[:8]
        self.topic = f"projects/{PROJECT}/topics/{role}-{suffix}"
        self.subscription = f"projects/{PROJECT}/subscriptions/{role}-{suffix}"
        pubsub_v1.PublisherClient().create_topic(name=self.topic)
        self.subscriber = pubsub_v1.SubscriberClient()
        self.subscriber.create_subscription(name=self.subscription, topic=self.topic)

    def pull(self, at_least: int = 1) -> list[pubsub_v1.types.PubsubMessage]:
        received: list = []

        def more() -> bool:
            response = self.subscriber.pull(subscription=self.subscription, max_messages=100, timeout=5)
            if response.received_messages:
                ack_ids = [m.ack_id for m in response.received_messages]
                self.subscriber.acknowledge(subscription=self.subscription, ack_ids=ack_ids)
                received.extend(m.message for m in response.received_messages)
            return len(received) >= at_least

        wait_until(more, PULL_SECONDS, f"{at_least} messages on {self.topic}", interval=0.2)
        return received

    def pull_nothing_more(self) -> list:
        response = self.subscriber.pull(subscription=self.subscription, max_messages=100, timeout=5)
        return list(response.received_messages)


def large_fields(notification, build_class=pb.Build):
    """The Build in a notification's build_large_fields, decompressed as its `compression` says."""
    data = notification.build_large_fields
    if notification.compression == npb.ZSTD:
        raw = zstandard.ZstdDecompressor().decompressobj().decompress(data)
    else:
        raw = zlib.decompress(data)
    return build_class.FromString(raw)


T = TypeVar("T")


def with_deep_stack(work: Callable[[], T]) -> T:
    """`work()` in a thread with the stack and recursion limit that json_format and json need for Go's
    10,000 levels: how a test reads (or writes, as an oracle) what buildsync writes without recursion."""
    result: list = []

    def run() -> None:
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(100_000)
        try:
            result.append(work())
        except BaseException as error:  # handed back to the caller's thread
            result.append(error)
        finally:
            sys.setrecursionlimit(limit)

    threading.stack_size(256 << 20)
    try:
        worker = threading.Thread(target=run)
        worker.start()
    finally:
        threading.stack_size(0)
    worker.join()
    if isinstance(result[0], BaseException):
        raise result[0]
    return result[0]


def outbox_due(
    client, now: datetime.datetime, min_age: datetime.timedelta = outbox.SWEEP_MIN_AGE, limit: int | None = None
) -> list[outbox.Completion]:
    """Every sweep range's due outbox entries, by next attempt: what sweeps of all the ranges would find."""
    found = [c for shard in range(outbox.SWEEP_SHARDS) for c in outbox.due(client, now, min_age, 10**6, shard=shard)]
    # Read once more for the order; an entry a running sweep settled meanwhile is gone, and left out.
    entries = {c.build_id: client.get(outbox.entry_key(client, c.build_id)) for c in found}
    found = [c for c in found if entries[c.build_id] is not None]

    def next_attempt(completion: outbox.Completion) -> float:
        swept = entries[completion.build_id].get("sweep_at")
        return int(swept.rpartition("--")[2]) / 1000 if swept else completion.created.timestamp()

    return sorted(found, key=next_attempt)[:limit]


class RecordingClient(datastore.Client):
    """The real client, recording what the code under test asks of it.

    `lookups`: each lookup's (kind, build id) keys in the order asked, and
    `transaction_lookups` those made inside a transaction as (build id, kind);
    `writes`: each entity put; `commits`: the encoded bytes of each put_multi.
    """

    lookups: list[list[tuple[str, int]]]
    transaction_lookups: list[list[tuple[int, str]]]
    writes: list[tuple[str, int]]
    commits: list[int]

    def get_multi(self, keys, *args, **kwargs):
        self.lookups.append([(key.kind, model.build_id_of(key)) for key in keys])
        if self.current_transaction is not None:
            self.transaction_lookups.append([(model.build_id_of(key), key.kind) for key in keys])
        return super().get_multi(keys, *args, **kwargs)

    def put_multi(self, entities, *args, **kwargs):
        self.writes += [(entity.key.kind, model.build_id_of(entity.key)) for entity in entities]
        self.commits.append(sum(commit_budget.encoded_size(entity) for entity in entities))
        return super().put_multi(entities, *args, **kwargs)


def recording_client(emulator: Emulator) -> RecordingClient:
    """A RecordingClient on `emulator`, nothing recorded yet."""
    client = emulator_client(emulator.host, PROJECT, RecordingClient)
    client.lookups, client.transaction_lookups, client.writes, client.commits = [], [], [], []
    return client
