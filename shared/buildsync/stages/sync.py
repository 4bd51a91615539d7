"""The sync stage: fetch the tasks of one batch of builds and bring the builds up to date.

Reads BuildInfra to learn the task ids, makes one FetchTasks call for the whole
batch, then updates the builds 25 to a transaction (the entity-group limit),
re-reading and re-checking each build inside its transaction. A group whose
transaction fails is reported with its own error and never stops the others.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime
import functools
from typing import Callable, NamedTuple

from google.cloud import datastore

from buildsync import logs
from buildsync.ending import builder_metrics
from buildsync.ending.completion import Completer, Targets
from buildsync.errors import BackendResponseError, StoredDataError, SyncError, TransientError, as_sync_error
from buildsync.proto import buildbucket_pb2 as pb
from buildsync.remote.backend import BackendPool, TaskFetcher, fetch_in_halves
from buildsync.rules.build_update import (
    NO_BUILD_STATUS,
    Outcome,
    Skip,
    Update,
    decide_update,
    misrouted,
    skip_before_fetch,
    skip_reason,
)
from buildsync.rules.settings import BackendSettings, Settings
from buildsync.rules.status_rules import status_name
from buildsync.rules.task_rules import FetchedTasks, sort_responses, task_key
from buildsync.stages import isolation
from buildsync.stages.messages import SyncBatch
from buildsync.stages.report import SyncReport
from buildsync.store import children, commit_budget, dscache, model, outbox
from buildsync.store.outbox import Completion
from buildsync.store.transactions import TransactionBegin, run_in_transaction

# docs/rules.md "Limits": a transaction touches at most 25 entity groups, one per build.
BUILDS_PER_TRANSACTION = 25

# Transactions of one batch run side by side. A transaction is two round trips
# (its first lookup begins it, then the commit), so at 30 ms a Datastore RPC a
# 1000-build batch's 40 transactions take 40 x 60 ms / 8 = 0.3 s of waiting with
# 8 at once; more gain little and add contention (README "Speed and robustness").
DEFAULT_GROUP_WORKERS = 8

# A batch handled this long after it was planned (a backlog drained late, a
# retry after long backoff) likely repeats builds that a newer copy has synced
# since: it reads Build with BuildInfra and leaves out, before FetchTasks, the
# builds that skip_reason would leave anyway. A prompt batch skips that read;
# its transactions check the same thing. One trigger interval.
LATE_BATCH_AGE = datetime.timedelta(minutes=1)

# A build whose stored entities do not decode, or hold what cannot be saved
# again (a time outside Datastore's years), fails alone, not its whole group.
# Nothing else is caught per build: any other error is a bug, and the batch retries.
_BAD_ENTITY_ERRORS = (StoredDataError,)

Clock = Callable[[], datetime.datetime]


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


@dataclasses.dataclass(frozen=True)
class SyncOptions:
    """How batches are synced: one value for all the batches of a function's process or a pipeline run."""

    # A dry run writes nothing and reports the completion effects it would have.
    dry_run: bool = False
    # With targets, each build ended gets an outbox entry naming its completion effects.
    targets: Targets | None = None
    # The group transactions run this many at once, or on `executor` when given
    # (the pipeline shares one over all its batches).
    group_workers: int = DEFAULT_GROUP_WORKERS
    executor: concurrent.futures.Executor | None = None
    clock: Clock = utc_now
    transaction_begin: TransactionBegin = TransactionBegin.LAZY
    # The bytes one commit may carry (commit_budget.py).
    commit_budget: int = commit_budget.COMMIT_BUDGET_BYTES
    # Buildbucket's Redis cache, whose BuildStatus keys a commit must lock (dscache.py).
    dscache: dscache.Cache | None = None


@dataclasses.dataclass(frozen=True)
class Syncer:
    """What syncing a batch and completing it takes, alike for the sync function and the pipeline."""

    client: datastore.Client
    settings: Settings
    backends: BackendPool
    # What ending a build does after its commit; None: ended builds get no
    # outbox entry and no completion effects (the benchmarks).
    completer: Completer | None = None
    options: SyncOptions = SyncOptions()

    def sync_and_complete(self, batch: SyncBatch) -> SyncReport | None:
        """Syncs `batch` on its backend's client, then does the completion effects of the builds it ended.

        Returns None when the backend is in lite mode: it has nothing to sync.
        Retry behaviour: as sync_batch's, and an unknown backend is permanent;
        a batch of a backend whose breaker is open raises BreakerOpenError
        (isolation.py), before FetchTasks, unless it is a probe.
        Completion effects that fail stay in the outbox for the sweep and do
        not fail the batch.
        """
        backends = self.settings.full_mode_backends(batch.backend)
        if not backends:
            logs.event("INFO", "backend is in lite mode; nothing to sync", backend=batch.backend)
            return None
        (backend,) = backends
        options = self.options
        # A dry run reads the breaker and writes nothing to it.
        begin = None if options.dry_run else options.transaction_begin
        fetcher = isolation.guard(
            self.client, self.backends.get(backend.target, backend.hostname), batch, options.clock, begin
        )
        if self.completer is not None:
            options = dataclasses.replace(options, targets=self.completer.targets)
        report = sync_batch(self.client, fetcher, backend, batch, options)
        if self.completer is not None:
            self.completer.complete_after_commit(report.completions)
        return report


def sync_batch(
    client: datastore.Client,
    fetcher: TaskFetcher,
    backend: BackendSettings,
    batch: SyncBatch,
    options: SyncOptions = SyncOptions(),
) -> SyncReport:
    """Syncs the builds of `batch` with their tasks.

    With `options.targets`, each build ended gets an outbox entry in its
    transaction naming the completion effects it needs (outbox.py); doing them
    is the caller's (completion.Completer). A dry run writes nothing and
    reports the effects it would have instead.

    Retry behaviour: raises TransientError when the whole batch failed in a way
    a redelivery may fix (Datastore or the backend unreachable), and
    PermanentError when it never will (a FetchTasks response with the wrong
    number of entries). Failures of single groups or builds are counted in the
    returned report instead; `report.retry` says whether redelivering the batch
    may fix them (builds already synced are skipped on redelivery).
    """
    build_ids = list(dict.fromkeys(batch.build_ids))  # a repeated id would be written twice in one commit
    report = SyncReport(due=len(build_ids))
    late = options.clock() - batch.planned_at > LATE_BATCH_AGE
    task_ids, syncable = _read_task_ids(client, batch, build_ids, report, check_builds=late)
    if not task_ids:
        return report
    response = fetch_in_halves(fetcher, task_ids, batch.project)
    try:
        fetched = sort_responses(task_ids, response)
    except BackendResponseError as error:
        raise BackendResponseError(f"backend {batch.backend}, project {batch.project}: {error}") from error
    report.fetched = len(task_ids)
    for (_, task_id), reason in fetched.rejected.items():
        logs.event("WARNING", "backend task rejected", backend=batch.backend, task_id=task_id, reason=reason)

    # Every transaction locks its builds in one order, ascending build id (each
    # lookup in key order, children.py's too), so that under pessimistic
    # locking (Firestore) no two groups wait on each other in a cycle.
    syncable.sort()
    groups = [syncable[i : i + BUILDS_PER_TRANSACTION] for i in range(0, len(syncable), BUILDS_PER_TRANSACTION)]
    group = _Group(client, fetched, backend, batch, options)
    # Each group's lines carry the request's trace (logs.in_current_context).
    update_group = logs.in_current_context(functools.partial(_update_group, group))
    if options.executor is not None:
        group_reports = list(options.executor.map(update_group, groups))
    else:
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, options.group_workers)) as pool:
            group_reports = list(pool.map(update_group, groups))
    for group_report in group_reports:
        report.add(group_report)
    return report


def _read_task_ids(
    client: datastore.Client, batch: SyncBatch, build_ids: list[int], report: SyncReport, check_builds: bool
) -> tuple[list[pb.TaskID], list[int]]:
    """The distinct task ids to fetch and the builds worth a transaction.

    With `check_builds` (a late batch), Build is read too, so that the builds
    skip_reason leaves alone are counted as skipped here, before FetchTasks
    (build_update.skip_before_fetch decides).
    """
    keys = [model.infra_key(client, build_id) for build_id in build_ids]
    if check_builds:
        keys += [model.build_key(client, build_id) for build_id in build_ids]
    try:
        entities = list(model.lookup(client, keys).values())
    except Exception as error:  # sorted by the one table in errors.py
        raise as_sync_error(error, f"reading BuildInfra of {len(build_ids)} builds") from error
    infras = {model.build_id_of(e.key): e for e in entities if e.key.kind == model.BUILD_INFRA_KIND}
    builds = {model.build_id_of(e.key): e for e in entities if e.key.kind == model.BUILD_KIND}
    task_ids: dict[str, pb.TaskID] = {}
    syncable = []
    for build_id in build_ids:
        infra_entity, build_entity = infras.get(build_id), builds.get(build_id)
        try:
            infra = model.read_infra(infra_entity) if infra_entity is not None else None
            late_build = build_entity if build_entity is not None and infra is not None else None
            build = model.read_build(late_build) if late_build is not None else None
            next_sync = model.next_sync_key_of(late_build) if late_build is not None else ""
        except _BAD_ENTITY_ERRORS as error:
            _count(report, build_id, Update(Outcome.FAILED, f"Build or BuildInfra does not decode: {error}"))
            continue
        skip = skip_before_fetch(infra, batch.backend, build, next_sync, batch.planned_at)
        if skip is not None:
            _skip(report, build_id, skip)
            continue
        task_ids.setdefault(infra.backend.task.id.id, pb.TaskID(target=batch.backend, id=infra.backend.task.id.id))
        syncable.append(build_id)
    return list(task_ids.values()), syncable


@dataclasses.dataclass(frozen=True)
class _Group:
    """What every group transaction of one batch shares."""

    client: datastore.Client
    fetched: FetchedTasks
    backend: BackendSettings
    batch: SyncBatch
    options: SyncOptions


class _BuildResult(NamedTuple):
    """One build's part in a group transaction, counted once the transaction committed."""

    build_id: int
    update: Update
    # The build, when this update ended it.
    completed: pb.Build | None = None
    ending: _Ending | None = None


@dataclasses.dataclass(frozen=True)
class _Ending:
    """A build ended in the transaction: its outbox entry, and in a dry run what it would do."""

    completion: Completion
    described: list[str]


def _update_group(group: _Group, build_ids: list[int]) -> SyncReport:
    """Up to 25 builds, in one transaction unless their writes exceed one commit (commit_budget.py).

    A group whose commit fails permanently is retried one build at a time,
    so that one build's bad write fails only that build.
    """
    report = SyncReport()
    while build_ids:
        try:
            committed, build_ids = _commit_builds(group, build_ids)
        except SyncError as error:
            logs.event("ERROR", "transaction for a group of builds failed", build_ids=build_ids, error=str(error))
            if len(build_ids) > 1 and not isinstance(error, TransientError):
                # One build's write can fail the commit of all (an entity over
                # Datastore's size limit): one at a time, only that build fails.
                for build_id in build_ids:
                    report.add(_update_group(group, [build_id]))
            else:
                report.count(Outcome.FAILED, len(build_ids))
                if isinstance(error, TransientError):
                    report.retry = True
                    report.retry_ids.extend(build_ids)
            break
        report.add(committed)
    return report


def _commit_builds(group: _Group, build_ids: list[int]) -> tuple[SyncReport, list[int]]:
    """One transaction over `build_ids`; the report counts them once it committed; raises SyncError.

    Also returns the builds left out because their writes did not fit in
    the commit: nothing of theirs was written, and they need a transaction
    of their own.
    """
    client, options = group.client, group.options
    locks = options.dscache.write_locks() if options.dscache is not None and not options.dry_run else None

    def work(_: datastore.Transaction) -> tuple[list[_BuildResult], list[int]]:
        pairs = [(model.build_key(client, i), model.infra_key(client, i)) for i in build_ids]
        entities = model.lookup(client, [key for pair in pairs for key in pair])
        now = options.clock()
        results, to_put, changed, changed_entities = [], [], {}, {}
        for build_id, (build_key, infra_key) in zip(build_ids, pairs, strict=True):
            build_entity = entities.get(build_key.flat_path)
            infra_entity = entities.get(infra_key.flat_path)
            try:
                update, build, infra = _update_build(group, build_entity, infra_entity, now)
            except _BAD_ENTITY_ERRORS as error:
                # Nothing of this build is written; the rest of the group goes on.
                results.append(_BuildResult(build_id, Update(Outcome.FAILED, f"build cannot be synced: {error}")))
                continue
            if update.writes_build:
                to_put.append(build_entity)
            if update.writes_infra:
                to_put.append(infra_entity)
            if update.status_changed:
                changed[build_id] = build
                changed_entities[build_id] = build_entity
            ending = None
            if update.completed and options.targets is not None:
                completion = options.targets.completion_for(client, build_entity, build, infra, now)
                described = options.targets.describe(completion, build_entity, infra) if options.dry_run else []
                ending = _Ending(completion, described)
                to_put.append(outbox.entry_entity(client, completion))
            results.append(_BuildResult(build_id, update, build if update.completed else None, ending))
        written = children.changed_children(client, changed)
        if written.missing_status:  # nothing of theirs is saved (build_update.NO_BUILD_STATUS)
            to_put = [entity for entity in to_put if model.build_id_of(entity.key) not in written.missing_status]
            results = [
                _BuildResult(r.build_id, NO_BUILD_STATUS) if r.build_id in written.missing_status else r
                for r in results
            ]
        to_put += written.entities
        saved = {i: entity for i, entity in changed_entities.items() if i not in written.missing_status}
        builder_metrics.record(client, saved)  # into Build entities already in to_put
        to_put, left_out = commit_budget.split_writes(build_ids, to_put, options.commit_budget)
        if to_put and not options.dry_run:
            client.put_multi(to_put)
            if locks is not None:  # the last step before the commit (docs/handoff.md "The dscache write protocol")
                locks.lock(entity.key.flat_path for entity in to_put)
        return [result for result in results if result.build_id not in left_out], left_out

    results, left_out = run_in_transaction(client, work, read_only=options.dry_run, begin=options.transaction_begin)
    if locks is not None:  # committed: readers may cache the new values now
        locks.release()
    return _committed_report(results, options.dry_run), left_out


def _committed_report(results: list[_BuildResult], dry_run: bool) -> SyncReport:
    """The report of a committed transaction: counted only now, so that a retried transaction counts once."""
    report = SyncReport()
    for result in results:
        _count(report, result.build_id, result.update)
        if result.completed is None:
            continue
        report.completed += 1
        status = status_name(result.completed.status)
        logs.event("INFO", "build completed", build_id=result.build_id, status=status, dry_run=dry_run)
        if result.ending is not None and dry_run:
            report.planned_effects[result.build_id] = result.ending.described
        elif result.ending is not None:
            report.completions.append(result.ending.completion)
    return report


def _update_build(
    group: _Group,
    build_entity: datastore.Entity | None,
    infra_entity: datastore.Entity | None,
    now: datetime.datetime,
) -> tuple[Update, pb.Build | None, pb.BuildInfra | None]:
    """Decides one build and writes the decision into its entities (not yet to Datastore)."""
    batch = group.batch
    build = model.read_build(build_entity) if build_entity is not None else None
    infra = model.read_infra(infra_entity) if infra_entity is not None else None
    next_sync = model.next_sync_key_of(build_entity) if build_entity is not None else ""
    reason = skip_reason(build, infra, next_sync, batch.planned_at)
    if reason:
        return Update(Outcome.SKIPPED, reason), build, infra
    reason = misrouted(build, infra, build_entity.get(model.BACKEND_TARGET), batch.backend, batch.project)
    if reason:
        _warn_misrouted(build_entity.key.id, reason)
        return Update(Outcome.SKIPPED, reason), build, infra
    key = task_key(infra.backend.task.id, batch.backend)
    update = decide_update(
        build,
        infra,
        group.fetched.usable.get(key),
        group.fetched.rejected.get(key),
        now,
        group.backend.succeed_build_if_task_is_succeeded,
    )
    if update.writes_build:
        model.save_build(build_entity, build, update.status_changed, group.backend.shards)
    if update.writes_infra:
        model.write_infra(infra_entity, infra)
    return update, build, infra


def _skip(report: SyncReport, build_id: int, skip: Skip) -> None:
    _count(report, build_id, Update(Outcome.SKIPPED, skip.reason))
    if skip.misrouted:
        _warn_misrouted(build_id, skip.reason)


def _warn_misrouted(build_id: int, reason: str) -> None:
    logs.event("WARNING", "build skipped: not the batch's", build_id=build_id, reason=reason)


def _count(report: SyncReport, build_id: int, update: Update) -> None:
    report.count(update.outcome)
    if update.outcome in (Outcome.INVALID, Outcome.STALE, Outcome.FAILED):
        logs.event(
            "WARNING" if update.outcome is Outcome.STALE else "ERROR",
            f"build {update.outcome.value}",
            build_id=build_id,
            reason=update.reason,
        )
    elif update.reason:  # an update that had to drop part of the task to fit (build_update.fit_task)
        logs.event("WARNING", "task trimmed to fit its BuildInfra", build_id=build_id, reason=update.reason)
