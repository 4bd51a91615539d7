"""Backlog: the sync function held back while triggers keep coming, then let go.

Time runs TIME_SCALE times faster than in production, and every duration
scales alike: a trigger every 6 s stands for Cloud Scheduler's one a minute,
a 30 s hold for 5 minutes, the message-age cut-off a deployment gets
(deploy/variables.tf, else the edge's default) divided by TIME_SCALE, carried
by the stages' Runtime as a deployment's is, and the sync's LATE_BATCH_AGE (one
trigger interval) likewise.

The three stages run in this process on real Pub/Sub topics (the emulator)
with pull subscriptions, and every message goes through the edge
(buildsync.edge.events.handle) with its publish time, as functions-framework hands
a push over, so the edge alone decides to run, retry or drop it as too old.
The Datastore client counts every RPC. While held, the sync subscription is
not pulled; the planner and shard stages go on, so each trigger queues another
batch for every due build. After the release SYNC_INSTANCES messages are
handled at once, as that many function instances would.
"""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import dataclasses
import datetime
import logging
import pathlib
import re
import threading
import time
import uuid
from unittest import mock

from buildsync import logs, metrics
from buildsync.edge import events
from buildsync.edge.handlers import handle_batch, handle_job, handle_trigger
from buildsync.edge.runtime import Runtime
from buildsync.ending import resultdb
from buildsync.ending.completion import Completer, Targets
from buildsync.env import DEFAULT_MAX_EVENT_AGE
from buildsync.remote.backend import BackendPool
from buildsync.remote.publishing import topic_path
from buildsync.stages import sync
from buildsync.stages.messages import ShardJob, SyncBatch, SyncTrigger
from cloudevents.http import CloudEvent
from google.cloud import pubsub_v1

from tools.bench.environment import BenchEnvironment
from tools.bench.results import Results
from tools.bench.runs import utc_now
from tools.bench.seeding import PROJECT, still_due
from tools.emulators import pubsub_clients
from tools.stack import REPO

TIME_SCALE = 10
TRIGGER_INTERVAL_SECONDS = 60 / TIME_SCALE
# The hold; --backlog-hold-minutes over the cut-off shows messages dropped as too old.
DEFAULT_HOLD_MINUTES = 5.0
SYNC_INSTANCES = 8
BACKLOG_BUILDS = 1000
# How long after the release the backlog may take before the scenario gives up.
CONVERGE_TIMEOUT_SECONDS = 300
_PULL_SECONDS = 1.0
# Each look for builds still due is 16 queries; once a second is often enough.
_CONVERGED_CHECK_SECONDS = 1.0


@dataclasses.dataclass
class BacklogFigures:
    builds: int
    triggers: int
    task_fetches: int
    fetch_calls: int
    counts: dict[str, float]
    converge_seconds: float
    dropped: dict[str, int]
    handled: dict[str, int]
    cut_off_seconds: float
    hold_seconds: float
    note: str = ""


class _DropCounter(logging.Handler):
    """Counts the edge's dropped-message lines (metrics.message_dropped) by stage."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.dropped: dict[str, int] = {"planner": 0, "shard": 0, "sync": 0}
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        fields = getattr(record, "fields", {})
        if fields.get(metrics.METRIC_FIELD) == "message_dropped":
            with self._lock:
                self.dropped[fields["stage"]] = self.dropped.get(fields["stage"], 0) + 1


def _event(message: pubsub_v1.types.PubsubMessage) -> CloudEvent:
    """The CloudEvent functions-framework makes of a pushed Pub/Sub message."""
    published = message.publish_time.isoformat().replace("+00:00", "Z")
    attributes = {
        "id": message.message_id,
        "source": "//pubsub.googleapis.com/",
        "type": "google.cloud.pubsub.topic.v1.messagePublished",
        "time": published,
    }
    data = {"message": {"data": base64.b64encode(message.data).decode(), "messageId": message.message_id}}
    return CloudEvent(attributes, data)


class _Stage:
    """One function: pulls its subscription and hands each message to the edge, `instances` at a time."""

    def __init__(
        self, subscriber, subscription: str, name: str, work, instances: int, max_age: datetime.timedelta
    ) -> None:
        self.subscriber = subscriber
        self.max_age = max_age
        self.subscription = subscription
        self.name = name
        self.work = work
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=instances, thread_name_prefix=f"bench-{name}")
        self.instances = instances
        self.handled = 0
        self.in_flight = 0
        self._lock = threading.Lock()

    def _one(self, received) -> None:
        try:
            events.handle(_event(received.message), self.name, self.work, lambda: self.max_age)
        except Exception:
            # Retry: Pub/Sub redelivers once the ack deadline is reset.
            self.subscriber.modify_ack_deadline(
                subscription=self.subscription, ack_ids=[received.ack_id], ack_deadline_seconds=0
            )
        else:
            self.subscriber.acknowledge(subscription=self.subscription, ack_ids=[received.ack_id])
        finally:
            with self._lock:
                self.handled += 1
                self.in_flight -= 1

    def pull_once(self) -> int:
        """Pulls what there is (up to the free instances) and starts handling it; returns how many."""
        with self._lock:
            free = self.instances - self.in_flight
        if free <= 0:
            return 0
        response = self.subscriber.pull(subscription=self.subscription, max_messages=free, timeout=_PULL_SECONDS)
        with self._lock:
            self.in_flight += len(response.received_messages)
        for received in response.received_messages:
            self.pool.submit(self._one, received)
        return len(response.received_messages)

    def idle(self) -> bool:
        with self._lock:
            return self.in_flight == 0

    def close(self) -> None:
        self.pool.shutdown(wait=True)


def deployed_max_event_age_seconds(variables: pathlib.Path = REPO / "deploy" / "variables.tf") -> float:
    """The cut-off a deployment gets: Terraform's max_event_age_seconds default, else the edge's own default."""
    match = re.search(r'variable "max_event_age_seconds".*?default\s*=\s*(\d+)', variables.read_text(), re.S)
    return float(match.group(1)) if match else DEFAULT_MAX_EVENT_AGE.total_seconds()


def hold_seconds(minutes: float) -> float:
    """A hold of `minutes` in production, in the scenario's scaled time."""
    return minutes * 60 / TIME_SCALE


def run_backlog(env: BenchEnvironment, hold_minutes: float = DEFAULT_HOLD_MINUTES) -> BacklogFigures:
    """Seeds BACKLOG_BUILDS due builds, holds the sync stage `hold_minutes` (scaled) under triggers, then lets it go."""
    n = BACKLOG_BUILDS
    env.fresh_builds(n)
    cut_off = datetime.timedelta(seconds=deployed_max_event_age_seconds() / TIME_SCALE)
    client, counter = env.counting_client()
    clients = pubsub_clients(env.pubsub_emulator.host)
    publisher, subscriber = clients.publisher, clients.subscriber
    suffix = uuid.uuid4().hex[:8]
    topics = {stage: f"bench-backlog-{stage}-{suffix}" for stage in ("trigger", "shard", "sync")}
    subscriptions = {}
    for stage, topic in topics.items():
        publisher.create_topic(name=topic_path(PROJECT, topic))
        subscriptions[stage] = f"projects/{PROJECT}/subscriptions/{topic}"
        subscriber.create_subscription(
            name=subscriptions[stage], topic=topic_path(PROJECT, topic), ack_deadline_seconds=60
        )
    drops = _DropCounter()
    logs.LOGGER.addHandler(drops)
    with contextlib.ExitStack() as stack:
        stack.callback(logs.LOGGER.removeHandler, drops)
        # The sync's late-batch age is one trigger interval: it scales with the interval.
        stack.enter_context(mock.patch.object(sync, "LATE_BATCH_AGE", sync.LATE_BATCH_AGE / TIME_SCALE))
        backends = stack.enter_context(contextlib.closing(BackendPool(deadline_seconds=60)))
        runtime = Runtime(
            datastore=client,
            publisher=publisher,
            settings=env.settings,
            backends=backends,
            shard_topic=topic_path(PROJECT, topics["shard"]),
            sync_topic=topic_path(PROJECT, topics["sync"]),
            # The builds stay running: nothing ends, so no effect is ever done.
            completer=Completer(client, Targets(), resultdb.prpc_finalizer(env.settings.resultdb_hostname), publisher),
            transaction_begin=env.transaction_begin,
            max_event_age=cut_off,
        )
        stages = {
            "planner": _Stage(
                subscriber,
                subscriptions["trigger"],
                "planner",
                lambda d: handle_trigger(runtime, SyncTrigger.from_json(d)),
                1,
                cut_off,
            ),
            "shard": _Stage(
                subscriber,
                subscriptions["shard"],
                "shard",
                lambda d: handle_job(runtime, ShardJob.from_json(d)),
                4,
                cut_off,
            ),
            "sync": _Stage(
                subscriber,
                subscriptions["sync"],
                "sync",
                lambda d: handle_batch(runtime, SyncBatch.from_json(d)),
                SYNC_INSTANCES,
                cut_off,
            ),
        }
        for stage in stages.values():
            stack.callback(stage.close)
        env.server.backend.calls.clear()
        counter.reset()
        started = time.monotonic()
        release_at = started + hold_seconds(hold_minutes)
        next_trigger, triggers = started, 0
        released_at = converged_at = None
        next_check = next_progress = 0.0
        note = ""
        while True:
            now = time.monotonic()
            if now >= next_trigger:
                publisher.publish(topic_path(PROJECT, topics["trigger"]), SyncTrigger().to_json()).result(timeout=30)
                triggers += 1
                next_trigger += TRIGGER_INTERVAL_SECONDS
            stages["planner"].pull_once()
            stages["shard"].pull_once()
            if now >= release_at:
                if released_at is None:
                    released_at = now
                    env.log(f"  released the sync stage after {triggers} triggers")
                stages["sync"].pull_once()
                if converged_at is None and now >= next_check:
                    next_check = now + _CONVERGED_CHECK_SECONDS
                    due = still_due(env.client(), env.layout, utc_now())
                    if due == 0:
                        converged_at = time.monotonic()
                        env.log(f"  converged {converged_at - released_at:.1f}s after the release")
                    elif now >= next_progress:
                        next_progress = now + 10
                        handled = ", ".join(f"{name} {stage.handled}" for name, stage in stages.items())
                        env.log(f"  {now - released_at:.0f}s after the release: {due} builds due; handled {handled}")
                # Done once converged and a full trigger interval has passed with nothing left to handle.
                if converged_at is not None and now - converged_at > TRIGGER_INTERVAL_SECONDS:
                    if all(s.idle() for s in stages.values()) and stages["sync"].pull_once() == 0:
                        break
                if now - released_at > CONVERGE_TIMEOUT_SECONDS:
                    note = f"gave up {CONVERGE_TIMEOUT_SECONDS}s after the release"
                    break
        for topic in topics.values():
            publisher.delete_topic(topic=topic_path(PROJECT, topic))
        for subscription in subscriptions.values():
            subscriber.delete_subscription(subscription=subscription)
    calls = env.server.backend.calls
    return BacklogFigures(
        builds=n,
        triggers=triggers,
        task_fetches=sum(calls),
        fetch_calls=len(calls),
        counts=dict(counter.reset()),
        converge_seconds=(converged_at - released_at) if converged_at and released_at else float("nan"),
        dropped=dict(drops.dropped),
        handled={name: stage.handled for name, stage in stages.items()},
        cut_off_seconds=cut_off.total_seconds(),
        hold_seconds=hold_seconds(hold_minutes),
        note=note,
    )


def add_backlog(results: Results, figures: BacklogFigures) -> None:
    n = figures.builds
    results.add("backlog_task_fetches_per_build", n, figures.task_fetches / n, "per build")
    results.add("backlog_fetch_calls_per_1000_builds", n, figures.fetch_calls * 1000 / n, "calls")
    for name in ("entity_reads", "entity_writes", "query_rpcs", "lookup_rpcs", "commit_rpcs"):
        results.add(f"backlog_{name}_per_build", n, figures.counts.get(name, 0) / n, "per build")
    ops = sum(figures.counts.get(name, 0) for name in ("entity_reads", "entity_writes", "query_rpcs"))
    results.add("backlog_datastore_ops_per_build", n, ops / n, "reads+writes+queries per build")
    results.add("backlog_converge_seconds", n, figures.converge_seconds, f"s (time scaled 1/{TIME_SCALE})")
    results.add("backlog_triggers", n, figures.triggers, "triggers")
    results.add("backlog_cut_off_seconds", n, figures.cut_off_seconds, f"s (scaled 1/{TIME_SCALE})")
    results.add("backlog_hold_seconds", n, figures.hold_seconds, f"s (scaled 1/{TIME_SCALE})")
    for stage, count in figures.dropped.items():
        results.add(f"backlog_dropped_{stage}_messages", n, count, "messages")
    for stage, count in figures.handled.items():
        results.add(f"backlog_handled_{stage}_messages", n, count, "messages")
    if figures.note:
        results.notes.append(f"backlog: {figures.note}")
