"""Which custom builder metrics a build counts towards, decided when its status changes.

Buildbucket reports a custom builder metric by querying the builds that list
its name, so the predicates are checked when the build changes, and the names
that match are kept in one property per base (docs/rules.md "Custom builder
metrics"). `evaluate` reproduces that decision; the caller reads the build's
metrics and details and writes the names (ending/builder_metrics.py).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

from buildsync.proto import buildbucket_pb2 as pb
from buildsync.proto import service_config_pb2 as spb
from buildsync.rules import build_cel
from buildsync.rules.status_rules import is_ended

COUNT = spb.CUSTOM_METRIC_BASE_COUNT
MAX_AGE_SCHEDULED = spb.CUSTOM_METRIC_BASE_MAX_AGE_SCHEDULED
CONSECUTIVE_FAILURE_COUNT = spb.CUSTOM_METRIC_BASE_CONSECUTIVE_FAILURE_COUNT


@dataclasses.dataclass(frozen=True)
class CustomMetric:
    """One custom metric a build may report to, as Buildbucket copied it from the builder config."""

    base: int  # a CustomMetricBase
    name: str
    predicates: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class BuilderMetricNames:
    """The names of the builder metrics a build counts towards, one list per base."""

    count: tuple[str, ...] = ()
    max_age: tuple[str, ...] = ()
    consecutive_failures: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """The names after an evaluation, and why it stopped early (None when it did not).

    Buildbucket keeps the names matched before a failing predicate and skips
    the metrics after it; the build's status change goes on regardless.
    """

    names: BuilderMetricNames
    error: str | None = None


def bases_evaluated_at(status: int) -> tuple[int, ...]:
    """The bases whose metrics are (re)evaluated when a build reaches `status`; raises ValueError."""
    if status == pb.SCHEDULED:
        return (COUNT, MAX_AGE_SCHEDULED)
    if status == pb.STARTED:
        return (COUNT,)
    if is_ended(status):
        return (CONSECUTIVE_FAILURE_COUNT,)
    raise ValueError(f"no builder metric is evaluated at status {status}")


def evaluated_on_status_change(status: int, metrics: Sequence[CustomMetric]) -> bool:
    """Whether a status change to `status` evaluates the build, and so needs its details read.

    Buildbucket's status update evaluates only a build that ends other than
    successfully: only the consecutive-failure metrics are evaluated at the end.
    """
    return is_ended(status) and status != pb.SUCCESS and _evaluates(status, metrics)


def evaluate(build: pb.Build, metrics: Sequence[CustomMetric], current: BuilderMetricNames) -> Evaluation:
    """The names once `build` (as the API returns it, with its new status) is evaluated against `metrics`.

    As Buildbucket: the count list is rebuilt whenever COUNT is evaluated; the
    other lists only grow (each base is evaluated once in a build's life), a
    metric listed twice is added twice, and metrics keep their stored order.
    Buildbucket walks the bases in Go's random map order; here COUNT comes
    first, which matters only for what an error leaves behind at SCHEDULED.
    """
    lists = {
        COUNT: list(current.count),
        MAX_AGE_SCHEDULED: list(current.max_age),
        CONSECUTIVE_FAILURE_COUNT: list(current.consecutive_failures),
    }
    if not _evaluates(build.status, metrics):
        return Evaluation(current)
    error = None
    for base in bases_evaluated_at(build.status):
        if base == COUNT:
            lists[COUNT] = []  # even with no COUNT metric, as Buildbucket does
        error = _add_matches(build, [metric for metric in metrics if metric.base == base], lists[base])
        if error:
            break
    names = BuilderMetricNames(
        count=tuple(lists[COUNT]),
        max_age=tuple(lists[MAX_AGE_SCHEDULED]),
        consecutive_failures=tuple(lists[CONSECUTIVE_FAILURE_COUNT]),
    )
    return Evaluation(names, error)


def _evaluates(status: int, metrics: Sequence[CustomMetric]) -> bool:
    """Whether any of `metrics` has a base evaluated at `status` (else nothing is, not even cleared)."""
    bases = bases_evaluated_at(status)
    return any(metric.base in bases for metric in metrics)


def _add_matches(build: pb.Build, metrics: list[CustomMetric], names: list[str]) -> str | None:
    """Appends the names of the metrics `build` matches, in order, until a predicate fails."""
    for metric in metrics:
        try:
            matched = build_cel.matches(build, metric.predicates)
        except build_cel.PredicateError as error:
            return f"custom metric {metric.name!r}: {error}"
        if matched:
            names.append(metric.name)
    return None
