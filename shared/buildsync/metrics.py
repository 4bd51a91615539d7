"""Metrics as structured log lines: the one place a metric is emitted.

Cloud Logging turns these lines into Cloud Monitoring metrics through the
log-based metrics in deploy/metrics.tf, which filter on the `metric` field and
take their labels and values from the named fields below. Log-based metrics
suit functions that scale to zero: no exporter thread, nothing to flush before
an idle instance is frozen, and no extra import on a cold start (README,
"Metrics"). `METRICS` describes every log-based metric; deploy/metrics.tf must
declare exactly these, which tests/deploy/test_monitoring.py checks.

Each function writes one line. A label is a short string with few values
(a backend, a project, an outcome, a status code); ids and builder names
stay in the line for search but are never labels, so the number of time
series stays bounded.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from buildsync import logs

# The field a metric-bearing line is recognised by.
METRIC_FIELD = "metric"


@dataclasses.dataclass(frozen=True)
class LogMetric:
    """One log-based metric: which lines it reads, its labels, and its value."""

    line: str  # the `metric` field of the lines it reads
    labels: tuple[str, ...]
    # The numeric field a distribution takes its values from; None counts lines.
    value: str | None
    unit: str
    description: str


# Keyed by the metric's name below `logging.googleapis.com/user/buildsync/`.
METRICS: dict[str, LogMetric] = {
    "builds_synced": LogMetric(
        "builds_synced",
        ("outcome", "backend", "project"),
        "builds",
        "1",
        "Builds a sync batch handled, per outcome (one value per batch and outcome; the sum is the builds).",
    ),
    "build_cycle_seconds": LogMetric(
        "build_completed",
        ("status", "project", "bucket"),
        "cycle_seconds",
        "s",
        "Builds ended by buildsync (the count) and their create-to-end durations.",
    ),
    "build_run_seconds": LogMetric(
        "build_completed",
        ("status", "project", "bucket"),
        "run_seconds",
        "s",
        "Start-to-end durations of the builds buildsync ended that had started.",
    ),
    "fetch_tasks_calls": LogMetric(
        "fetch_tasks",
        ("backend", "transport", "code"),
        None,
        "1",
        "FetchTasks calls per backend, transport and result code (OK or the error code).",
    ),
    "fetch_tasks_latency": LogMetric(
        "fetch_tasks",
        ("backend", "transport", "code"),
        "seconds",
        "s",
        "FetchTasks latency per backend, transport and result code.",
    ),
    "transaction_retries": LogMetric(
        "transaction_retry",
        ("cause", "final"),
        None,
        "1",
        "Datastore transactions that failed and were retried (final=false) or given up (final=true).",
    ),
    "sync_lag_seconds": LogMetric(
        "sync_lag",
        ("backend", "project"),
        "seconds",
        "s",
        "Age of the oldest due build of a shard when the shard stage runs (0 when none is due).",
    ),
    "messages_dropped": LogMetric(
        "message_dropped",
        ("stage", "reason"),
        None,
        "1",
        "Messages acknowledged unhandled because a newer plan covers them.",
    ),
    "unknown_backend_runs": LogMetric(
        "unknown_backend",
        ("backend",),
        None,
        "1",
        "Planner runs that found incomplete builds on a backend missing from the settings (never synced).",
    ),
    "backend_breaker_changes": LogMetric(
        "backend_breaker",
        ("backend", "state"),
        None,
        "1",
        "A backend's circuit breaker opening or closing (docs/isolation.md).",
    ),
    "backends_held_back": LogMetric(
        "backend_held_back",
        ("backend",),
        None,
        "1",
        "Planner runs that held a backend back to one probe batch because its breaker is open.",
    ),
    "permanent_errors": LogMetric(
        "permanent_error",
        ("stage", "error_type"),
        None,
        "1",
        "Messages acknowledged with a permanent error (also sent to Error Reporting).",
    ),
}

# Transports of a FetchTasks call.
GRPC = "grpc"
PRPC = "prpc"
OK = "OK"


def _emit(line: str, severity: str = "INFO", message: str | None = None, **fields: Any) -> None:
    logs.event(severity, message or f"metric {line}", **{METRIC_FIELD: line}, **fields)


def builds_synced(backend: str, project: str, counts: Mapping[str, int]) -> None:
    """One line per outcome that a batch had builds in (outcome names as in build_update.Outcome)."""
    for outcome, builds in counts.items():
        if builds:
            _emit("builds_synced", outcome=outcome, backend=backend, project=project, builds=builds)


def build_completed(
    *,
    build_id: int,
    status: str,
    project: str,
    bucket: str,
    builder: str,
    cycle_seconds: float,
    run_seconds: float | None,
) -> None:
    """A build buildsync ended; `run_seconds` is None for a build that never started."""
    fields: dict[str, Any] = {"cycle_seconds": round(cycle_seconds, 3)}
    if run_seconds is not None:
        fields["run_seconds"] = round(run_seconds, 3)
    _emit(
        "build_completed",
        message="build completed",
        build_id=build_id,
        status=status,
        project=project,
        bucket=bucket,
        builder=builder,
        **fields,
    )


def fetch_tasks(backend: str, transport: str, code: str, seconds: float, tasks: int) -> None:
    """One FetchTasks call: `code` is OK or the error's code name (UNAVAILABLE, DEADLINE_EXCEEDED…)."""
    _emit("fetch_tasks", backend=backend, transport=transport, code=code, seconds=round(seconds, 4), tasks=tasks)


def transaction_retry(cause: str, attempt: int, final: bool) -> None:
    """A transaction attempt failed with `cause`; `final` when no attempt follows."""
    _emit(
        "transaction_retry",
        severity="WARNING" if final else "INFO",
        cause=cause,
        attempt=attempt,
        final="true" if final else "false",
    )


def sync_lag(backend: str, project: str, shard: int, seconds: float) -> None:
    """How long the oldest due build of a shard has waited (0 when none is due)."""
    _emit("sync_lag", backend=backend, project=project, shard=shard, seconds=round(max(seconds, 0.0), 3))


def message_dropped(stage: str, reason: str, age_seconds: float, detail: str = "", **fields: Any) -> None:
    """A message acknowledged without handling it: `reason` is a short label, `detail` the full story."""
    _emit(
        "message_dropped",
        severity="WARNING",
        message=f"{stage}: message dropped: {detail or reason}",
        stage=stage,
        reason=reason,
        age_seconds=round(age_seconds, 3),
        **fields,
    )


def unknown_backend(backend: str, projects: list[str]) -> None:
    """Incomplete builds on `backend`, which the settings lack: one ERROR line per planner run."""
    _emit(
        "unknown_backend",
        severity="ERROR",
        message=f"incomplete builds on backend {backend!r}, which is not in the settings: they are never synced",
        backend=backend,
        projects=sorted(projects),
    )


def backend_breaker(backend: str, state: str, failures: int, error: str) -> None:
    """A backend's breaker `state` changed ("opened" or "closed"), after `failures` failed calls."""
    severity, what = ("ERROR", "held back to a probe a minute") if state == "opened" else ("INFO", "synced again")
    _emit(
        "backend_breaker",
        severity=severity,
        message=f"backend {backend} breaker {state}: {what}",
        backend=backend,
        state=state,
        failures=failures,
        error=error,
    )


def backend_held_back(backend: str, failures: int, open_seconds: float, error: str, probe: str) -> None:
    """The planner held `backend` back to the `probe` job (or none) for one trigger: its breaker is open."""
    _emit(
        "backend_held_back",
        severity="WARNING",
        message=f"backend {backend} held back: breaker open for {open_seconds:.0f} s; probe {probe}",
        backend=backend,
        failures=failures,
        open_seconds=round(open_seconds, 3),
        error=error,
        probe=probe,
    )


def permanent_error(stage: str, error: BaseException, **fields: Any) -> None:
    """A message acknowledged because no retry can fix it; reported to Error Reporting too."""
    logs.reported_error(
        f"{stage}: {error}",
        error,
        **{METRIC_FIELD: "permanent_error"},
        stage=stage,
        error_type=type(error).__name__,
        retry=False,
        **fields,
    )
