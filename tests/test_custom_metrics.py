"""rules/custom_metrics.py: which builder metric names a build gets when its status changes.

Cases from upstream's tests of EvaluateBuildForCustomBuilderMetrics
(buildbucket/appengine/model/build_test.go) and of the status update
(buildbucket/appengine/internal/buildstatus/buildstatus_test.go), as data.
"""

from __future__ import annotations

import pytest
from buildsync.proto import buildbucket_pb2 as pb
from buildsync.proto import service_config_pb2 as spb
from buildsync.rules import custom_metrics
from buildsync.rules.custom_metrics import (
    CONSECUTIVE_FAILURE_COUNT,
    COUNT,
    MAX_AGE_SCHEDULED,
    BuilderMetricNames,
    CustomMetric,
)

HAS_OS = 'build.tags.get_value("os")!=""'
NO_OS = 'build.tags.get_value("os")==""'
MAC = (pb.StringPair(key="os", value="mac"),)


def metric(base: int, name: str, *predicates: str) -> CustomMetric:
    return CustomMetric(base, name, predicates)


EVALUATIONS = [
    # (case, status, tags, metrics, names before, names after)
    ("no custom metrics: nothing changes", pb.SCHEDULED, (), (), BuilderMetricNames(), BuilderMetricNames()),
    (
        "no metric of a base evaluated at the status: nothing changes",
        pb.SCHEDULED,
        (),
        (metric(spb.CUSTOM_METRIC_BASE_CREATED, "created", HAS_OS),),
        BuilderMetricNames(count=("kept",)),
        BuilderMetricNames(count=("kept",)),
    ),
    (
        "a count metric listed before is dropped when it no longer matches",
        pb.SCHEDULED,
        (),
        (metric(COUNT, "count", HAS_OS),),
        BuilderMetricNames(count=("count",)),
        BuilderMetricNames(),
    ),
    (
        "started: the count list is rebuilt from the predicates",
        pb.STARTED,
        MAC,
        (metric(COUNT, "count1", NO_OS), metric(COUNT, "count2", HAS_OS)),
        BuilderMetricNames(count=("count1",)),
        BuilderMetricNames(count=("count2",)),
    ),
    (
        "scheduled: count and max-age are evaluated, the count list cleared even without a count metric",
        pb.SCHEDULED,
        MAC,
        (metric(MAX_AGE_SCHEDULED, "max_age", HAS_OS),),
        BuilderMetricNames(count=("old",)),
        BuilderMetricNames(max_age=("max_age",)),
    ),
    (
        "ended other than successfully: the consecutive-failure metrics that match are added",
        pb.INFRA_FAILURE,
        (),
        (
            metric(CONSECUTIVE_FAILURE_COUNT, "failure_count_1", HAS_OS),
            metric(CONSECUTIVE_FAILURE_COUNT, "failure_count_2", NO_OS),
        ),
        BuilderMetricNames(),
        BuilderMetricNames(consecutive_failures=("failure_count_2",)),
    ),
    (
        "ended: count metrics are not evaluated and keep their names",
        pb.FAILURE,
        MAC,
        (metric(COUNT, "count", NO_OS), metric(CONSECUTIVE_FAILURE_COUNT, "failures", HAS_OS)),
        BuilderMetricNames(count=("count",)),
        BuilderMetricNames(count=("count",), consecutive_failures=("failures",)),
    ),
    (
        "ended: names already there are kept and a metric listed twice is added twice",
        pb.CANCELED,
        MAC,
        (metric(CONSECUTIVE_FAILURE_COUNT, "twice", HAS_OS), metric(CONSECUTIVE_FAILURE_COUNT, "twice", HAS_OS)),
        BuilderMetricNames(consecutive_failures=("earlier",)),
        BuilderMetricNames(consecutive_failures=("earlier", "twice", "twice")),
    ),
]


@pytest.mark.parametrize(
    "status, tags, metrics, before, after", [case[1:] for case in EVALUATIONS], ids=[case[0] for case in EVALUATIONS]
)
def test_evaluation_lists_the_metrics_whose_predicates_the_build_meets(status, tags, metrics, before, after):
    evaluation = custom_metrics.evaluate(pb.Build(status=status, tags=tags), metrics, before)
    assert evaluation == custom_metrics.Evaluation(after)


def test_a_count_metric_uses_the_build_with_its_details():
    # Upstream's "re-evaluate with provided build proto": the input properties count.
    build = pb.Build(status=pb.STARTED, tags=MAC)
    build.input.properties.update({"key": "value"})
    metrics = (
        metric(COUNT, "count1", NO_OS),
        metric(COUNT, "count2", HAS_OS),
        metric(COUNT, "count3", "has(build.input.properties.key)"),
    )
    evaluation = custom_metrics.evaluate(build, metrics, BuilderMetricNames(count=("count1",)))
    assert evaluation.names == BuilderMetricNames(count=("count2", "count3"))


def test_a_failing_predicate_stops_the_evaluation_and_keeps_the_names_matched_before_it():
    metrics = (
        metric(CONSECUTIVE_FAILURE_COUNT, "first", HAS_OS),
        metric(CONSECUTIVE_FAILURE_COUNT, "broken", "has(build.random)"),
        metric(CONSECUTIVE_FAILURE_COUNT, "after", HAS_OS),
    )
    evaluation = custom_metrics.evaluate(pb.Build(status=pb.FAILURE, tags=MAC), metrics, BuilderMetricNames())
    assert evaluation.names == BuilderMetricNames(consecutive_failures=("first",))
    assert "custom metric 'broken'" in evaluation.error and "random" in evaluation.error


def test_a_metric_without_predicates_is_an_error():
    # Upstream's "failed": a definition with a name and no predicates.
    evaluation = custom_metrics.evaluate(
        pb.Build(status=pb.SCHEDULED, tags=MAC), (metric(COUNT, "count"),), BuilderMetricNames()
    )
    assert evaluation.names == BuilderMetricNames()
    assert "predicates are required" in evaluation.error


@pytest.mark.parametrize(
    "status, bases",
    [
        (pb.SCHEDULED, (COUNT, MAX_AGE_SCHEDULED)),
        (pb.STARTED, (COUNT,)),
        (pb.SUCCESS, (CONSECUTIVE_FAILURE_COUNT,)),
        (pb.FAILURE, (CONSECUTIVE_FAILURE_COUNT,)),
        (pb.ENDED_MASK, (CONSECUTIVE_FAILURE_COUNT,)),
    ],
)
def test_each_status_evaluates_its_bases(status, bases):
    assert custom_metrics.bases_evaluated_at(status) == bases


def test_an_unspecified_status_evaluates_nothing_and_says_so():
    with pytest.raises(ValueError, match="status 0"):
        custom_metrics.bases_evaluated_at(pb.STATUS_UNSPECIFIED)


FAILURES = (metric(CONSECUTIVE_FAILURE_COUNT, "failures", HAS_OS),)


@pytest.mark.parametrize(
    "status, metrics, evaluated",
    [
        (pb.FAILURE, FAILURES, True),
        (pb.INFRA_FAILURE, FAILURES, True),
        (pb.CANCELED, FAILURES, True),
        (pb.SUCCESS, FAILURES, False),  # Buildbucket skips successful builds at the end
        (pb.FAILURE, (metric(COUNT, "count", HAS_OS),), False),  # no metric of the ended base
        (pb.FAILURE, (), False),
        (pb.STARTED, (metric(COUNT, "count", HAS_OS),), False),  # the status update evaluates only at the end
    ],
)
def test_a_status_change_evaluates_only_builds_ending_other_than_successfully(status, metrics, evaluated):
    assert custom_metrics.evaluated_on_status_change(status, metrics) is evaluated
