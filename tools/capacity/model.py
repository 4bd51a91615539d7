"""The capacity model: what a load of running builds asks of each limit (pure arithmetic, no I/O).

Every rate follows from four facts: N builds run at once, each is due once
per sync interval, the trigger comes once a minute, and a build ending is
N / (mean build duration) a second (Little's law). Where the work lands
follows from the plan: every (backend, project) pair gets `shards` shard jobs
per trigger, each job's due builds become batches of at most 1000, and a
batch costs the sync one fixed part plus a share per build.

How the builds spread is an assumption the caller gives: the busiest
(backend, project) pair holds `busiest_pair_share` of all builds, the other
pairs share the rest evenly, and a pair's builds spread evenly over its shards
(they get a random shard when created, docs/storage.md).

A limit's utilisation is demand over capacity. Instances are counted as the
deployment sizes them (deploy/variables.tf, `max_instance_count`): busy
instance-seconds per minute over 60, so a utilisation under 0.5 is the
"2 x" headroom that lets a burst's 429s drain within the retry budget.
"""

from __future__ import annotations

import dataclasses
import math

# Utilisation every recommended setting keeps below: the 2 x headroom above.
HEADROOM = 0.5

# The limits of the failures a deployment must ride out, apart from normal running.
FAILURE_LIMITS = frozenset({"sync instances, busiest backend hung", "outbox sweep, after an effect's outage"})


@dataclasses.dataclass(frozen=True)
class Load:
    """What runs: N builds over projects and backends, and how the sync is set up for them."""

    builds: int  # running: incomplete, with a backend task
    projects: int  # with running builds on every backend (the most shard jobs)
    backends: int  # full-mode ones
    shards: int = 1  # each backend's build_sync_setting.shards
    interval_seconds: float = 300.0  # sync_interval_seconds
    busiest_pair_share: float = 0.5  # of all builds, in the busiest (backend, project) pair: an assumption
    build_minutes: float = 30.0  # a build's mean duration: how fast builds end (an assumption)


@dataclasses.dataclass(frozen=True)
class Deployment:
    """The deployment's limits (deploy/variables.tf and the code's constants)."""

    max_instances: dict[str, int]  # max_instance_count per function
    fetch_deadline_seconds: float = 60.0  # how long a hung backend holds a sync instance
    # Batches a trigger of a backend whose circuit breaker is open; None: no breaker, all of them.
    probe_batches_per_trigger: float | None = 1.0
    trigger_seconds: float = 60.0  # the Cloud Scheduler job's period
    batch_limit: int = 1000  # build ids per sync batch (FetchTasks' limit)
    sweep_budget_seconds: float = 40.0  # how long one sweep keeps taking chunks while entries are due
    outbox_index_ranges: int = 32  # sequential ranges the outbox's indexed time is spread over
    # docs/platform.md "Datastore": writes a second to one sequential index range.
    hot_range_writes_per_second: float = 500.0


@dataclasses.dataclass(frozen=True)
class UnitCosts:
    """Measured (or assumed) seconds and operations per unit of work, at 30 ms per Datastore RPC."""

    batch_fixed_seconds: float
    batch_seconds_per_build: float
    query_page_seconds: float
    query_keys_per_second: float
    distinct_seconds_per_build: float
    publish_seconds_per_message: float
    reads_per_build: float
    writes_per_build: float
    sweep_builds_per_second: float  # one sweep, on the planner's vCPU
    outbox_writes_per_ended_build: float = 2.0


@dataclasses.dataclass(frozen=True)
class Limit:
    """One limit: what the load asks of it, what it holds, and where that capacity comes from."""

    name: str
    demand: float
    capacity: float | None
    unit: str
    source: str

    @property
    def utilisation(self) -> float | None:
        return None if self.capacity is None else self.demand / self.capacity


@dataclasses.dataclass(frozen=True)
class JobGroup:
    """`count` shard jobs per trigger of `due` builds each, on the backend numbered `backend`."""

    backend: int
    due: float
    count: int


def due_per_trigger(load: Load, deployment: Deployment) -> float:
    return load.builds * deployment.trigger_seconds / load.interval_seconds


def ended_per_second(load: Load) -> float:
    return load.builds / (load.build_minutes * 60)


def job_groups(load: Load, deployment: Deployment) -> list[JobGroup]:
    """The shard jobs of one trigger, grouped by size: the busiest pair's, then the others' per backend.

    Backend 0 holds the busiest pair; every project has builds on every backend (the most jobs).
    """
    due = due_per_trigger(load, deployment)
    pairs = load.projects * load.backends
    busiest = due * (load.busiest_pair_share if pairs > 1 else 1.0)
    other = (due - busiest) / (pairs - 1) if pairs > 1 else 0.0
    shards = load.shards
    groups = [JobGroup(0, busiest / shards, shards)]
    if load.projects > 1:
        groups.append(JobGroup(0, other / shards, (load.projects - 1) * shards))
    if load.backends > 1:
        groups += [JobGroup(backend, other / shards, load.projects * shards) for backend in range(1, load.backends)]
    return groups


def batches_per_job(due: float, batch_limit: int) -> float:
    """Expected batches of a job with `due` builds on average: ceil(due / limit), or under 1 for a job that
    often finds nothing (Poisson: the chance of at least one due build)."""
    if due >= 1:
        return math.ceil(due / batch_limit)
    return 1 - math.exp(-due)


def batch_seconds(builds: float, costs: UnitCosts) -> float:
    return costs.batch_fixed_seconds + builds * costs.batch_seconds_per_build


def query_seconds(keys: float, costs: UnitCosts, deployment: Deployment) -> float:
    """One shard job's query: a page (one round trip) per `batch_limit` keys, plus reading the keys."""
    pages = max(1, math.ceil(keys / deployment.batch_limit))
    return pages * costs.query_page_seconds + keys / costs.query_keys_per_second


def job_seconds(group: JobGroup, costs: UnitCosts, deployment: Deployment) -> float:
    """One shard job: its sync-lag query and its share of the stray ranges (a page each when there are no
    strays), its due-builds query, publishing its batches."""
    batches = batches_per_job(group.due, deployment.batch_limit)
    return (
        2 * costs.query_page_seconds
        + query_seconds(group.due, costs, deployment)
        + batches * costs.publish_seconds_per_message
    )


def sync_seconds(groups: list[JobGroup], costs: UnitCosts, deployment: Deployment) -> dict[int, float]:
    """Busy sync instance-seconds per trigger, per backend."""
    per_backend: dict[int, float] = {}
    for group in groups:
        batches = batches_per_job(group.due, deployment.batch_limit)
        size = group.due / batches if batches else 0.0
        seconds = group.count * batches * batch_seconds(size, costs)
        per_backend[group.backend] = per_backend.get(group.backend, 0.0) + seconds
    return per_backend


def batches_per_trigger(groups: list[JobGroup], deployment: Deployment, backend: int | None = None) -> float:
    return sum(
        g.count * batches_per_job(g.due, deployment.batch_limit)
        for g in groups
        if backend is None or g.backend == backend
    )


def instance_limits(load: Load, deployment: Deployment, costs: UnitCosts) -> list[Limit]:
    """Busy instances of each function per trigger, against its max_instance_count."""
    groups = job_groups(load, deployment)
    period = deployment.trigger_seconds
    sync = sum(sync_seconds(groups, costs, deployment).values())
    shard = sum(g.count * job_seconds(g, costs, deployment) for g in groups)
    jobs = sum(g.count for g in groups)
    planner = load.builds * costs.distinct_seconds_per_build + jobs * costs.publish_seconds_per_message
    source = "deploy/variables.tf max_instance_count"
    return [
        Limit("sync instances", sync / period, deployment.max_instances["sync"], "instances", source),
        Limit("shard instances", shard / period, deployment.max_instances["shard"], "instances", source),
        # One trigger a minute: a plan longer than the minute overlaps the next one's.
        Limit("planner time per trigger", planner, period, "s", "the schedule: a trigger a minute"),
    ]


def hung_backend_seconds(load: Load, deployment: Deployment, costs: UnitCosts, hung_batches: float) -> float:
    """Busy sync instance-seconds a trigger while the busiest backend is hung and `hung_batches` of its batches a
    trigger each hold an instance for the FetchTasks deadline."""
    groups = job_groups(load, deployment)
    healthy = sum(s for backend, s in sync_seconds(groups, costs, deployment).items() if backend != 0)
    return healthy + hung_batches * deployment.fetch_deadline_seconds


def hung_backend_limit(load: Load, deployment: Deployment, costs: UnitCosts) -> Limit:
    """Sync instances while the busiest backend is hung and its circuit breaker is open (docs/isolation.md): the
    healthy backends' batches and the backend's probe batches, each of which holds an instance for the deadline.
    Without a breaker every batch of it does, trigger after trigger (first deliveries only; each redelivery within
    the cut-off asks as much again).

    The minute before the breaker opens is `hung_backend_burst`.
    """
    if deployment.probe_batches_per_trigger is None:
        probes = batches_per_trigger(job_groups(load, deployment), deployment, backend=0)
    else:
        probes = deployment.probe_batches_per_trigger
    seconds = hung_backend_seconds(load, deployment, costs, probes)
    return Limit(
        "sync instances, busiest backend hung",
        seconds / deployment.trigger_seconds,
        deployment.max_instances["sync"],
        "instances",
        "deploy/variables.tf max_instance_count; one probe batch a trigger (rules/breaker.py)",
    )


def hung_backend_burst(load: Load, deployment: Deployment, costs: UnitCosts) -> float:
    """Sync instances the first trigger of an outage asks for, before its breaker opens: every batch of the hung
    backend holds an instance for the deadline (the breaker opens on the first failures, which come only then)."""
    groups = job_groups(load, deployment)
    hung = batches_per_trigger(groups, deployment, backend=0)
    return hung_backend_seconds(load, deployment, costs, hung) / deployment.trigger_seconds


def index_limits(load: Load, deployment: Deployment, costs: UnitCosts) -> list[Limit]:
    """Writes a second to the hottest sequential index range: a shard's sync times, the outbox's `created`."""
    due_per_second = due_per_trigger(load, deployment) / deployment.trigger_seconds
    share = load.busiest_pair_share if load.projects * load.backends > 1 else 1.0
    ended_writes = ended_per_second(load) * costs.outbox_writes_per_ended_build
    capacity = deployment.hot_range_writes_per_second
    source = "Firestore's sequential-index write limit (docs/platform.md)"
    busiest = job_groups(load, deployment)[0]
    return [
        Limit(
            "next_backend_sync_time writes per shard range",
            due_per_second * share / load.shards,
            capacity,
            "writes/s",
            source,
        ),
        Limit(
            "outbox index writes per range", ended_writes / deployment.outbox_index_ranges, capacity, "writes/s", source
        ),
        Limit(
            "largest shard query",
            query_seconds(busiest.due, costs, deployment),
            deployment.trigger_seconds,
            "s",
            "the schedule: a trigger a minute",
        ),
    ]


def sweep_per_trigger(deployment: Deployment, costs: UnitCosts) -> float:
    """Ended builds whose effects one sweep can redo: its rate for as long as its budget lasts."""
    return costs.sweep_builds_per_second * deployment.sweep_budget_seconds


def outbox_limit(load: Load, deployment: Deployment, costs: UnitCosts) -> Limit:
    """Builds ending per trigger against what one sweep redoes.

    After an outage of a completion effect (ResultDB, a topic) every build that
    ended meanwhile waits for the sweep: at utilisation u the sweep needs u
    minutes per minute of outage to catch up.
    """
    ended = ended_per_second(load) * deployment.trigger_seconds
    return Limit(
        "outbox sweep, after an effect's outage",
        ended,
        sweep_per_trigger(deployment, costs),
        "builds/trigger",
        "completion.SWEEP_BUDGET x the probe's sweep rate",
    )


def rates(load: Load, deployment: Deployment, costs: UnitCosts) -> list[Limit]:
    """Rates with no fixed ceiling of ours: FetchTasks on the busiest backend, Datastore operations."""
    groups = job_groups(load, deployment)
    period = deployment.trigger_seconds
    due_per_second = due_per_trigger(load, deployment) / period
    ended = ended_per_second(load)
    return [
        Limit(
            "FetchTasks calls, busiest backend",
            batches_per_trigger(groups, deployment, 0) / period,
            None,
            "calls/s",
            "the backend's own quota",
        ),
        Limit(
            "Datastore entity reads",
            due_per_second * costs.reads_per_build,
            None,
            "reads/s",
            "no fixed ceiling; ramp new traffic by 500/50/5",
        ),
        Limit(
            "Datastore entity writes",
            due_per_second * costs.writes_per_build + ended * costs.outbox_writes_per_ended_build,
            None,
            "writes/s",
            "no fixed ceiling; ramp new traffic by 500/50/5",
        ),
    ]


def all_limits(load: Load, deployment: Deployment, costs: UnitCosts) -> list[Limit]:
    """Every limit: normal running, then the two failures it must ride out (a backend hung, an effect's outage)."""
    return [
        *instance_limits(load, deployment, costs),
        *index_limits(load, deployment, costs),
        hung_backend_limit(load, deployment, costs),
        outbox_limit(load, deployment, costs),
        *rates(load, deployment, costs),
    ]


def sweep_catch_up_minutes(load: Load, deployment: Deployment, costs: UnitCosts, outage_minutes: float) -> float:
    """Minutes the sweep needs to redo what an outage of a completion effect left in the outbox."""
    left = ended_per_second(load) * 60 * outage_minutes
    return left / (sweep_per_trigger(deployment, costs) * 60 / deployment.trigger_seconds)
