"""What happens when a build ends, after its transaction: one core for the functions and the CLI.

In the ending transaction, `Targets.completion_for` names the effects the
build needs (and in buildbucket mode the Cloud Tasks, handoff.py) and the sync
writes them into its outbox entry (outbox.py). After the commit,
`Completer.complete` re-reads the builds whole (build_reader.py) and does each
effect: the notifications (notifications.py), the ResultDB finalization
(resultdb.py), the Cloud Tasks (handoff.py) and the completion metrics. What fails stays in
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
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Callable

from google.cloud import datastore
from google.protobuf import timestamp_pb2

from buildsync import logs, metrics
from buildsync.ending import build_reader, notifications
from buildsync.ending.handoff import Handoff
from buildsync.ending.resultdb import Finalization, Finalizer, invocation_of
from buildsync.errors import PermanentError, SyncError, TransientError, as_sync_error, is_permanent
from buildsync.proto import buildbucket_pb2 as pb
from buildsync.proto import notification_pb2 as npb
from buildsync.remote.cloud_tasks import Created, TaskCreator
from buildsync.rules.status_rules import status_name
from buildsync.store import configs, model, outbox
from buildsync.store.outbox import Completion, Effect, TaskRef

if TYPE_CHECKING:
    from google.cloud import pubsub_v1

# ResultDB calls, and Cloud Tasks created, of one batch made side by side.
RESULTDB_WORKERS = 8
HANDOFF_WORKERS = 8

# Builds whose effects are done together, then settled: a completion never
# holds more than this many builds' entities and notifications at once.
BUILDS_PER_CHUNK = 25

# Sweep ranges read side by side (outbox.py), one worker each.
SWEEP_WORKERS = 8
# How long one sweep keeps taking chunks while entries are due: most of the
# trigger's minute, so a backlog drains as fast as one instance can and the
# next trigger's sweep starts after this one ended.
SWEEP_BUDGET = datetime.timedelta(seconds=40)


@dataclasses.dataclass(frozen=True)
class Targets:
    """Where this deployment sends completion effects (the environment names them, edge/environment.py).

    With `handoff` (`buildbucket` completion mode) an ended build gets the
    Cloud Tasks Buildbucket's own sync would enqueue, and buildsync publishes,
    exports and finalizes nothing itself; without it (`standalone`) buildsync
    does that work itself.
    """

    builds_topic: str | None = None
    builds_compression: int = npb.ZLIB
    handoff: Handoff | None = None
    # buildsync's own topics (builds, shard, sync): never a callback's or a project's (notifications.topic_problem).
    own_topics: frozenset[str] = frozenset()

    def completion_for(
        self,
        client: datastore.Client,
        build_entity: datastore.Entity,
        build: pb.Build,
        infra: pb.BuildInfra,
        now: datetime.datetime,
    ) -> Completion:
        """The outbox entry of an ending build, decided in its transaction.

        In buildbucket mode the builder's entity is read outside the
        transaction, as Buildbucket does, so that busy builders are not locked.
        """
        stored = build_reader.StoredBuild(build_entity)
        if self.handoff is not None:
            found = configs.read_outside_transaction(client, [configs.builder_key(client, build.builder)])
            limit = configs.max_concurrent_builds(next(iter(found.values()), None))
            tasks = self.handoff.plan(stored, infra, limit)
            return Completion(stored.build_id, frozenset({Effect.METRICS}), now, tasks=tasks)
        effects = {Effect.METRICS, Effect.PROJECT_TOPICS}
        if self.builds_topic:
            effects.add(Effect.BUILDS_TOPIC)
        if stored.has_callback:
            effects.add(Effect.CALLBACK)
        if invocation_of(infra) is not None:
            effects.add(Effect.RESULTDB)
        return Completion(stored.build_id, frozenset(effects), now)

    def describe(self, completion: Completion, build_entity: datastore.Entity, infra: pb.BuildInfra) -> list[str]:
        """One line per effect of an ending build, for a dry run."""
        lines = []
        effects = completion.effects
        if Effect.BUILDS_TOPIC in effects:
            compression = npb.Compression.Name(self.builds_compression)
            lines.append(f"publish BuildsV2PubSub ({compression}) to {self.builds_topic}")
        if Effect.PROJECT_TOPICS in effects:
            lines.append(f"publish BuildsV2PubSub to the builds_notification_topics of {build_entity.get('project')}")
        if Effect.CALLBACK in effects:
            lines.append(f"publish PubSubCallBack (ZLIB) to {build_entity['pubsub_callback.topic']}")
        if Effect.RESULTDB in effects:
            host, invocation = invocation_of(infra)
            lines.append(f"finalize ResultDB invocation {invocation} on {host}")
        if self.handoff is not None:
            lines += self.handoff.describe(completion.tasks)
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
        handoff = targets.handoff
        self.task_creator = TaskCreator(handoff.endpoint) if handoff is not None else None

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
        # What each build still needs: effects, and Cloud Tasks to create.
        left: dict[int, set[Effect | TaskRef]] = {c.build_id: {*c.effects, *c.tasks} for c in completions}
        for completion in completions:
            if completion.build_id not in stored:
                logs.event("WARNING", "ended build is gone; its effects are dropped", build_id=completion.build_id)
                report.gave_up += len(left.pop(completion.build_id))
            elif outbox.out_of_budget(completion, now):
                # Given up before anything is tried, so that an entry whose effects raise what no table
                # knows (a bug: this chunk is never settled) is still retried for a day, not forever.
                why = f"still not done {outbox.RETRY_BUDGET} after the build ended"
                self._give_up(completion.build_id, set(left[completion.build_id]), left, report, why)
        self._notify(stored, left, report)
        self._finalize(stored, left, report)
        self._hand_off(stored, left, {c.build_id: c.created for c in completions}, report)
        self._record_metrics(stored, left, report)
        done = [c for c in completions if not left.get(c.build_id)]
        kept = [
            dataclasses.replace(
                c,
                effects=frozenset(item for item in left[c.build_id] if isinstance(item, Effect)),
                tasks=frozenset(item for item in left[c.build_id] if isinstance(item, TaskRef)),
                attempts=c.attempts + 1,
            )
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

    def sweep(
        self,
        now: datetime.datetime,
        min_age: datetime.timedelta = outbox.SWEEP_MIN_AGE,
        budget: datetime.timedelta = SWEEP_BUDGET,
        chunk: int = outbox.SWEEP_CHUNK,
    ) -> int:
        """Redoes the outbox entries due more than `min_age` ago, SWEEP_WORKERS sweep ranges at once; returns
        how many builds.

        Each range is read `chunk` entries at a time, each chunk
        completed before the next is read, for as long as the range has due
        entries and `budget` lasts: the throughput grows with the backlog, up
        to what this instance does in `budget`, and memory holds one chunk per
        worker. Retry behaviour: raises TransientError when a range cannot be
        read or settled, once every range had its turn; the next sweep tries again.
        """
        deadline = time.monotonic() + budget.total_seconds()
        with concurrent.futures.ThreadPoolExecutor(max_workers=SWEEP_WORKERS) as pool:
            futures = [
                pool.submit(self._sweep_range, shard, now, min_age, deadline, chunk)
                for shard in range(outbox.SWEEP_SHARDS)
            ]
        swept, failures = 0, []
        for future in futures:
            try:
                swept += future.result()
            except SyncError as error:
                failures.append(error)
        if swept:
            logs.event("INFO", "swept leftover completion effects", builds=swept)
        if failures:
            raise failures[0]
        return swept

    def _sweep_range(
        self, shard: int, now: datetime.datetime, min_age: datetime.timedelta, deadline: float, chunk: int
    ) -> int:
        """One range's due entries, a chunk at a time, until it has none, the budget is spent, or a chunk holds
        only entries this sweep already tried (rewritten due before `now`, as when `now` is ahead of the clock)."""
        tried: set[int] = set()
        while True:
            read = outbox.due(self.client, now, min_age, chunk, shard=shard)
            fresh = [completion for completion in read if completion.build_id not in tried]
            if fresh:
                self.complete(fresh)
                tried.update(completion.build_id for completion in fresh)
            if len(read) < chunk or not fresh or time.monotonic() >= deadline:
                return len(tried)

    def _give_up(self, build_id: int, effects: set, left: dict, report: CompletionReport, why: str) -> None:
        names = sorted(map(str, effects))
        logs.event("ERROR", "completion effects dropped", build_id=build_id, effects=names, error=why)
        left[build_id] -= effects
        report.gave_up += len(effects)

    def _notify(self, stored: dict, left: dict[int, set], report: CompletionReport) -> None:
        outgoing = self._messages(stored, left, report, self._project_topics(stored, left, report))
        first = next(outgoing, None)
        if first is None:
            return
        # An effect of several messages (the project's topics) is done when all are.
        sent, failed = set(), set()
        for message, error in notifications.publish_each(self.publisher(), itertools.chain([first], outgoing)):
            if error is None:
                sent.add((message.build_id, message.effect))
            elif message.effect in (Effect.CALLBACK, Effect.PROJECT_TOPICS) and is_permanent(error):
                # The creator's or the project's topic, missing or closed to us: no retry will change that.
                self._give_up(message.build_id, {message.effect}, left, report, str(error))
            else:
                # The deployment's own builds topic is retried whatever the error:
                # a topic deleted by mistake must not lose the notifications meanwhile.
                logs.event("WARNING", "notification left for the sweep", build_id=message.build_id, error=str(error))
                failed.add((message.build_id, message.effect))
        for build_id, effect in sent - failed:
            if effect in left[build_id]:  # not given up meanwhile
                left[build_id].discard(effect)
                report.done += 1
        report.retry += len(failed)

    def _project_topics(self, stored: dict, left: dict[int, set], report: CompletionReport) -> dict[int, tuple]:
        """The builds_notification_topics of the project of each build that still needs them (one lookup)."""
        needing = {}
        for build_id, effects in left.items():
            if Effect.PROJECT_TOPICS not in effects:
                continue
            try:
                needing[build_id] = stored[build_id].project
            except PermanentError as error:  # a project of another type: no project's topics are its
                self._give_up(build_id, {Effect.PROJECT_TOPICS}, left, report, str(error))
        projects = sorted(set(needing.values()))
        if not projects:
            return {}
        keys = [configs.project_key(self.client, project) for project in projects]
        try:
            found = model.lookup(self.client, keys)
        except Exception as error:  # sorted by the one table in errors.py
            raise as_sync_error(error, f"reading the Project entities of {len(projects)} projects") from error
        topics, broken = {}, {}
        for project, key in zip(projects, keys, strict=True):
            try:
                listed = configs.notification_topics(found.get(key.flat_path))
            except model.EntityDecodeError as error:
                broken[project] = str(error)
                continue
            topics[project] = tuple(topic for topic in listed if self._publishable(project, topic.name))
        for build_id, project in needing.items():
            if project in broken:
                self._give_up(build_id, {Effect.PROJECT_TOPICS}, left, report, broken[project])
        return {build_id: topics[project] for build_id, project in needing.items() if project in topics}

    def _publishable(self, project: str, topic: str) -> bool:
        """Whether a project's builds_notification_topics entry may be published to; if not, one ERROR says why."""
        problem = notifications.topic_problem(topic, self.targets.own_topics)
        if problem:
            logs.event("ERROR", "project notification topic refused", project=project, error=problem)
        return problem is None

    def _messages(
        self, stored: dict, left: dict[int, set], report: CompletionReport, project_topics: dict[int, tuple]
    ) -> Iterator[notifications.Outgoing]:
        """The notifications each build still needs, made one build at a time as they are published."""
        wanted = {Effect.BUILDS_TOPIC, Effect.CALLBACK, Effect.PROJECT_TOPICS}
        for build_id, effects in left.items():
            mine = effects & wanted
            own = self.targets.own_topics
            problem = notifications.callback_topic_problem(stored[build_id], own) if Effect.CALLBACK in mine else None
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
                    project_topics.get(build_id, ()),
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

        def finalize(build_id: int) -> Finalization:
            build = stored[build_id]
            try:
                infra, project, token = build.build_infra(), build.project, build.resultdb_update_token
            except PermanentError as error:
                logs.event("ERROR", "build cannot be read; invocation left open", build_id=build_id, error=str(error))
                return Finalization.GAVE_UP
            return self.finalizer.finalize(build_id, project, infra, token)

        with concurrent.futures.ThreadPoolExecutor(max_workers=RESULTDB_WORKERS) as pool:
            for build_id, outcome in zip(build_ids, pool.map(finalize, build_ids), strict=True):
                if outcome is Finalization.RETRY:
                    report.retry += 1
                    continue
                left[build_id].discard(Effect.RESULTDB)
                if outcome is Finalization.DONE:
                    report.done += 1
                else:
                    report.gave_up += 1

    def _hand_off(self, stored: dict, left: dict, created: dict, report: CompletionReport) -> None:
        """Creates the Cloud Tasks still to create; each by the name the ending transaction chose."""
        work = [(build_id, item) for build_id, items in left.items() for item in items if isinstance(item, TaskRef)]
        if not work:
            return

        def create(build_id: int, task: TaskRef) -> tuple[Created, Exception | None]:
            build = stored[build_id]
            try:
                request = self.targets.handoff.request(
                    task, build_id, build.build_proto(), build.callback_topic, created[build_id]
                )
            except PermanentError as error:
                return Created.GAVE_UP, error
            return self.task_creator.create(request)

        with concurrent.futures.ThreadPoolExecutor(max_workers=HANDOFF_WORKERS) as pool:
            verdicts = list(pool.map(lambda pair: create(*pair), work))
        for (build_id, task), (verdict, error) in zip(work, verdicts, strict=True):
            if verdict is Created.RETRY:
                logs.event(
                    "WARNING", "Cloud Task left for the sweep", build_id=build_id, task=str(task), error=str(error)
                )
                report.retry += 1
            elif verdict is Created.GAVE_UP:
                self._give_up(build_id, {task}, left, report, str(error))
            else:
                left[build_id].discard(task)
                report.done += 1

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
    """The completed-build metrics of `build` (upstream's completed count and durations).

    The durations are taken from the seconds and nanos as they are, as Go's
    AsTime takes any: a stored time outside what a datetime holds still
    gives a figure, not an error.
    """
    cycle = _seconds_between(build.create_time, build.end_time)
    run = _seconds_between(build.start_time, build.end_time) if build.HasField("start_time") else None
    metrics.build_completed(
        build_id=build.id,
        status=status_name(build.status),
        project=build.builder.project,
        bucket=build.builder.bucket,
        builder=build.builder.builder,
        cycle_seconds=cycle,
        run_seconds=run,
    )


def _seconds_between(start: timestamp_pb2.Timestamp, end: timestamp_pb2.Timestamp) -> float:
    return (end.seconds - start.seconds) + (end.nanos - start.nanos) / 1e9
