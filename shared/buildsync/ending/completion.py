"""What happens when a build ends, after its transaction: one core for the functions and the CLI.

In the ending transaction, `Targets.effects_for` names the effects the build
needs and the sync writes them into its outbox entry (outbox.py). After the
commit, `Completer.complete` re-reads the builds whole (build_reader.py) and
does each effect: the notifications (notifications.py), the ResultDB
finalization (resultdb.py) and the completion metrics. What fails stays in
the outbox for the planner's sweep, tried again later and later (outbox.py)
for a day at most (a publish to the builds topic whatever the error, ResultDB
unless its answer is final); what can never succeed (an entity that does not
decode, a malformed callback topic, a callback topic that is missing or
closed to us, ResultDB's PERMISSION_DENIED) is logged and dropped.
A dry run only describes the effects.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime
import itertools
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Callable

from google.cloud import datastore

from buildsync import logs, metrics
from buildsync.ending import build_reader, notifications
from buildsync.ending.resultdb import Finalizer, Outcome, invocation_of
from buildsync.errors import PermanentError, SyncError, TransientError, is_permanent
from buildsync.proto import buildbucket_pb2 as pb
from buildsync.proto import notification_pb2 as npb
from buildsync.rules.status_rules import status_name
from buildsync.store import outbox
from buildsync.store.outbox import Completion, Effect

if TYPE_CHECKING:
    from google.cloud import pubsub_v1

# ResultDB calls of one batch made side by side.
RESULTDB_WORKERS = 8

# Builds whose effects are done together, then settled: a sweep of 1000 ended
# builds never holds more than this many builds' entities and notifications.
BUILDS_PER_CHUNK = 25


@dataclasses.dataclass(frozen=True)
class Targets:
    """Where this deployment sends completion effects (the environment names them, runtime.py)."""

    builds_topic: str | None = None
    builds_compression: int = npb.ZLIB

    def effects_for(self, build_entity: datastore.Entity, infra: pb.BuildInfra) -> frozenset[Effect]:
        """The effects an ending build needs, decided in its transaction."""
        effects = {Effect.METRICS}
        if self.builds_topic:
            effects.add(Effect.BUILDS_TOPIC)
        if build_entity.get("pubsub_callback.topic"):
            effects.add(Effect.CALLBACK)
        if invocation_of(infra) is not None:
            effects.add(Effect.RESULTDB)
        return frozenset(effects)

    def describe(self, build_entity: datastore.Entity, infra: pb.BuildInfra) -> list[str]:
        """One line per effect of an ending build, for a dry run."""
        lines = []
        effects = self.effects_for(build_entity, infra)
        if Effect.BUILDS_TOPIC in effects:
            compression = npb.Compression.Name(self.builds_compression)
            lines.append(f"publish BuildsV2PubSub ({compression}) to {self.builds_topic}")
        if Effect.CALLBACK in effects:
            lines.append(f"publish PubSubCallBack (ZLIB) to {build_entity['pubsub_callback.topic']}")
        if Effect.RESULTDB in effects:
            host, invocation = invocation_of(infra)
            lines.append(f"finalize ResultDB invocation {invocation} on {host}")
        lines.append("record the completed-build metrics")
        return lines


@dataclasses.dataclass
class CompletionReport:
    """Effects done, left for a retry, and given up, over a set of builds."""

    done: int = 0
    retry: int = 0
    gave_up: int = 0


class Completer:
    """Does the effects of ended builds and settles their outbox entries; thread-safe."""

    def __init__(
        self,
        client: datastore.Client,
        targets: Targets,
        finalizer: Finalizer,
        publisher: pubsub_v1.PublisherClient | None = None,
        make_publisher: Callable[[], pubsub_v1.PublisherClient] | None = None,
    ) -> None:
        """`make_publisher` makes the publisher on the first notification (the CLI, which may send none)."""
        self.client = client
        self.targets = targets
        self.finalizer = finalizer
        self._publisher = publisher
        self._make_publisher = make_publisher
        self._lock = threading.Lock()

    def publisher(self) -> pubsub_v1.PublisherClient:
        with self._lock:
            if self._publisher is None:
                if self._make_publisher is None:
                    raise TransientError("notifications to publish but no Pub/Sub publisher")
                self._publisher = self._make_publisher()
            return self._publisher

    def complete(self, completions: list[Completion]) -> CompletionReport:
        """Does the effects of `completions`, then rewrites or deletes their outbox entries.

        Builds are done BUILDS_PER_CHUNK at a time, each chunk settled before
        the next is read, so memory holds one chunk's builds and messages.
        Retry behaviour: raises TransientError when Datastore cannot be read
        or the outbox cannot be settled (the entries stay, the sweep redoes
        them); single effects that fail are counted in the report instead.
        """
        report = CompletionReport()
        for start in range(0, len(completions), BUILDS_PER_CHUNK):
            self._complete_chunk(completions[start : start + BUILDS_PER_CHUNK], report)
        if completions:
            logs.event("INFO", "completion effects", builds=len(completions), **dataclasses.asdict(report))
        return report

    def _complete_chunk(self, completions: list[Completion], report: CompletionReport) -> None:
        now = datetime.datetime.now(datetime.timezone.utc)
        stored = build_reader.read_builds(self.client, [c.build_id for c in completions])
        left: dict[int, set[Effect]] = {c.build_id: set(c.effects) for c in completions}
        for completion in completions:
            if completion.build_id not in stored:
                logs.event("WARNING", "ended build is gone; its effects are dropped", build_id=completion.build_id)
                report.gave_up += len(left.pop(completion.build_id))
        self._notify(stored, left, report)
        self._finalize(stored, left, report)
        self._record_metrics(stored, left, report)
        for completion in completions:
            if left.get(completion.build_id) and outbox.out_of_budget(completion, now):
                why = f"still failing {outbox.RETRY_BUDGET} after the build ended"
                self._give_up(completion.build_id, set(left[completion.build_id]), left, report, why)
        done = [c for c in completions if not left.get(c.build_id)]
        kept = [
            dataclasses.replace(c, effects=frozenset(left[c.build_id]), attempts=c.attempts + 1)
            for c in completions
            if left.get(c.build_id)
        ]
        outbox.settle(self.client, done, kept, now)

    def complete_after_commit(self, completions: list[Completion]) -> CompletionReport | None:
        """`complete` for a sync that has committed: a failure is logged and left to the sweep."""
        try:
            return self.complete(completions)
        except SyncError as error:
            logs.event("WARNING", "completion effects left for the sweep", builds=len(completions), error=str(error))
            return None

    def sweep(self, now: datetime.datetime, min_age: datetime.timedelta = outbox.SWEEP_MIN_AGE) -> int:
        """Redoes the outbox entries due more than `min_age` ago (outbox.due); returns how many builds.

        Retry behaviour: raises TransientError when the outbox cannot be read
        or settled; the next sweep tries again.
        """
        completions = outbox.due(self.client, now, min_age)
        if completions:
            self.complete(completions)
            logs.event("INFO", "swept leftover completion effects", builds=len(completions))
        return len(completions)

    def _give_up(self, build_id: int, effects: set[Effect], left: dict, report: CompletionReport, why: str) -> None:
        logs.event("ERROR", "completion effects dropped", build_id=build_id, effects=sorted(effects), error=why)
        left[build_id] -= effects
        report.gave_up += len(effects)

    def _notify(self, stored: dict, left: dict[int, set[Effect]], report: CompletionReport) -> None:
        outgoing = self._messages(stored, left, report)
        first = next(outgoing, None)
        if first is None:
            return
        for message, error in notifications.publish_each(self.publisher(), itertools.chain([first], outgoing)):
            if error is None:
                left[message.build_id].discard(message.effect)
                report.done += 1
            elif message.effect is Effect.CALLBACK and is_permanent(error):
                # The creator's topic, missing or closed to us: no retry will change that.
                self._give_up(message.build_id, {Effect.CALLBACK}, left, report, str(error))
            else:
                # The deployment's own builds topic is retried whatever the error:
                # a topic deleted by mistake must not lose the notifications meanwhile.
                logs.event("WARNING", "notification left for the sweep", build_id=message.build_id, error=str(error))
                report.retry += 1

    def _messages(
        self, stored: dict, left: dict[int, set[Effect]], report: CompletionReport
    ) -> Iterator[notifications.Outgoing]:
        """The notifications each build still needs, made one build at a time as they are published."""
        wanted = {Effect.BUILDS_TOPIC, Effect.CALLBACK}
        for build_id, effects in left.items():
            mine = effects & wanted
            problem = notifications.callback_topic_problem(stored[build_id]) if Effect.CALLBACK in mine else None
            if problem:
                self._give_up(build_id, {Effect.CALLBACK}, left, report, problem)
                mine.discard(Effect.CALLBACK)
            if not mine:
                continue
            try:
                build = build_reader.api_build(stored[build_id])
                messages = notifications.messages_for(
                    stored[build_id],
                    build,
                    frozenset(mine),
                    self.targets.builds_topic,
                    self.targets.builds_compression,
                )
            except PermanentError as error:
                self._give_up(build_id, mine, left, report, str(error))
                continue
            # An effect with no message (no topic configured any more, no callback) is done.
            unsent = mine - {message.effect for message in messages}
            report.done += len(unsent)
            left[build_id] -= unsent
            yield from messages

    def _finalize(self, stored: dict, left: dict[int, set[Effect]], report: CompletionReport) -> None:
        build_ids = [build_id for build_id, effects in left.items() if Effect.RESULTDB in effects]

        def finalize(build_id: int) -> Outcome:
            build = stored[build_id]
            try:
                infra = build.build_infra()
            except PermanentError as error:
                logs.event(
                    "ERROR", "BuildInfra does not decode; invocation left open", build_id=build_id, error=str(error)
                )
                return Outcome.GAVE_UP
            return self.finalizer.finalize(build_id, build.project, infra, build.resultdb_update_token)

        with concurrent.futures.ThreadPoolExecutor(max_workers=RESULTDB_WORKERS) as pool:
            for build_id, outcome in zip(build_ids, pool.map(finalize, build_ids), strict=True):
                if outcome is Outcome.RETRY:
                    report.retry += 1
                    continue
                left[build_id].discard(Effect.RESULTDB)
                if outcome is Outcome.DONE:
                    report.done += 1
                else:
                    report.gave_up += 1

    def _record_metrics(self, stored: dict, left: dict[int, set[Effect]], report: CompletionReport) -> None:
        for build_id, effects in left.items():
            if Effect.METRICS not in effects:
                continue
            try:
                build = stored[build_id].build_proto()
            except PermanentError as error:
                self._give_up(build_id, {Effect.METRICS}, left, report, str(error))
                continue
            record_completed(build)
            effects.discard(Effect.METRICS)
            report.done += 1


def record_completed(build: pb.Build) -> None:
    """The completed-build metrics of `build` (upstream's completed count and durations)."""
    end = build.end_time.ToDatetime(datetime.timezone.utc)
    cycle = (end - build.create_time.ToDatetime(datetime.timezone.utc)).total_seconds()
    run = None
    if build.HasField("start_time"):
        run = (end - build.start_time.ToDatetime(datetime.timezone.utc)).total_seconds()
    metrics.build_completed(
        build_id=build.id,
        status=status_name(build.status),
        project=build.builder.project,
        bucket=build.builder.bucket,
        builder=build.builder.builder,
        cycle_seconds=cycle,
        run_seconds=run,
    )
