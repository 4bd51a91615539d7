"""Log metrics, alerts and the dashboard: exactly the metrics metrics.py emits, with the labels they have."""

from __future__ import annotations

import json
import re

import pytest
from buildsync import metrics

from tests.deploy.terraform import (
    CONFIG,
    CONFIG_WITH_BACKENDS,
    DEPLOY,
    FUNCTIONS,
    block,
    ref,
    resources,
    topic_ref,
    walk,
)

LOG_METRICS = CONFIG["locals"]["log_metrics"]
# The Pub/Sub metrics the alerts and the dashboard may read.
PUBSUB_METRICS = {
    "pubsub.googleapis.com/subscription/num_undelivered_messages",
    "pubsub.googleapis.com/subscription/oldest_unacked_message_age",
}


def test_terraform_declares_exactly_the_log_metrics_of_metrics_py():
    assert set(LOG_METRICS) == set(metrics.METRICS)
    for name, metric in metrics.METRICS.items():
        declared = LOG_METRICS[name]
        assert declared["line"] == metric.line, name
        assert declared["labels"] == list(metric.labels), name
        assert declared["value"] == metric.value, name
        assert declared["unit"] == metric.unit, name
        assert declared["description"] == metric.description, name
        buckets = declared["buckets"]
        assert (buckets is None) == (metric.value is None), f"{name}: only distributions have buckets"
        if buckets:
            assert buckets["count"] >= 10 and buckets["growth"] > 1 and buckets["scale"] > 0, name


def test_log_metrics_read_the_functions_lines_by_their_metric_field():
    (body,) = CONFIG["templates"]["google_logging_metric"].values()
    assert body["for_each"] == "${local.log_metrics}"
    assert body["name"] == "buildsync/${each.key}"
    line_filter = f'jsonPayload.{metrics.METRIC_FIELD}="${{each.value.line}}"'
    assert body["filter"] == f"${{local.function_log_filter}} AND {line_filter}"
    logs = CONFIG["locals"]["function_log_filter"]
    assert 'resource.type="cloud_run_revision"' in logs
    assert re.search(r"service_name=~\"\^buildsync-\((\w+)\|(\w+)\|(\w+)\)\$\"", logs).groups() == FUNCTIONS
    assert body["label_extractors"] == '${{for label in each.value.labels : label => "EXTRACT(jsonPayload.${label})"}}'
    assert body["value_extractor"] == '${each.value.value == null ? null : "EXTRACT(jsonPayload.${each.value.value})"}'
    descriptor = block(body, "metric_descriptor")
    assert descriptor["metric_kind"] == "DELTA"
    assert descriptor["value_type"] == '${each.value.value == null ? "INT64" : "DISTRIBUTION"}'
    (labels,) = descriptor["dynamic"]
    assert labels["labels"]["for_each"] == "${each.value.labels}"
    (buckets,) = body["dynamic"]
    assert buckets["bucket_options"]["for_each"] == "${each.value.buckets == null ? [] : [each.value.buckets]}"


_LOG_METRIC_TYPE = re.compile(
    r'metric\.type = \\?"logging\.googleapis\.com/user/\$\{google_logging_metric\.buildsync\["(\w+)"\]\.name\}\\?"'
)
_METRIC_TYPE = re.compile(r'metric\.type\s*=\s*\\?"([a-z./_]+)\\?"')


def metrics_read(filter_: str) -> set[str]:
    """The metrics a Monitoring filter reads: log-based ones by key, others by type."""
    found = {f"log:{key}" for key in _LOG_METRIC_TYPE.findall(filter_)}
    found |= set(_METRIC_TYPE.findall(filter_))
    assert found, f"filter reads no metric: {filter_}"
    return found


ALERTS = resources("google_monitoring_alert_policy")


def alert_filters(body: dict) -> list[tuple[str, dict]]:
    out = []
    for condition in body["conditions"]:
        for kind in ("condition_threshold", "condition_absent"):
            for spec in condition.get(kind, []):
                out.append((spec["filter"], spec))
                if "denominator_filter" in spec:
                    out.append((spec["denominator_filter"], spec))
    assert out, "an alert without a condition"
    return out


@pytest.mark.parametrize("alert", sorted(ALERTS))
def test_every_alert_reads_a_metric_that_exists_with_labels_it_has(alert):
    body = ALERTS[alert]
    assert body["notification_channels"] == "${var.notification_channels}"
    assert block(body, "documentation")["content"]
    for filter_, spec in alert_filters(body):
        for metric in metrics_read(filter_):
            if metric.startswith("log:"):
                key = metric[4:]
                assert key in LOG_METRICS, f"{alert} reads buildsync/{key}, which metrics.tf does not declare"
                labels = set(LOG_METRICS[key]["labels"])
                assert 'resource.type = "cloud_run_revision"' in filter_, f"{alert}: the functions' metrics"
            else:
                assert metric in PUBSUB_METRICS, f"{alert} reads {metric}"
                labels = set()
            used = set(re.findall(r"metric\.label\.(\w+)", filter_))
            for aggregation in spec.get("aggregations", []) + spec.get("denominator_aggregations", []):
                used |= {
                    field.split(".")[-1]
                    for field in aggregation.get("group_by_fields", [])
                    if field.startswith("metric.label.")
                }
            assert used <= labels, f"{alert}: labels {used - labels} are not labels of {metric}"


def test_the_alerts_the_operator_needs_exist():
    reads = {name: set().union(*(metrics_read(f) for f, _ in alert_filters(body))) for name, body in ALERTS.items()}
    assert reads == {
        "dead_letters": {"pubsub.googleapis.com/subscription/num_undelivered_messages"},
        "sync_lag": {"log:sync_lag_seconds"},
        "permanent_errors": {"log:permanent_errors"},
        "fetch_tasks_failures": {"log:fetch_tasks_calls"},
        "sync_backlog": {"pubsub.googleapis.com/subscription/oldest_unacked_message_age"},
        "backend_held_back": {"log:backends_held_back"},
    }
    dead_letters = block(ALERTS["dead_letters"], "conditions", "condition_threshold")
    assert "${google_pubsub_subscription.dead_letter.name}" in dead_letters["filter"]
    assert (dead_letters["comparison"], dead_letters["threshold_value"]) == ("COMPARISON_GT", 0)
    lag = ALERTS["sync_lag"]["conditions"]
    assert lag[0]["condition_threshold"][0]["threshold_value"] == "${var.sync_lag_threshold_seconds}"
    assert "condition_absent" in lag[1], "a stopped planner reports no lag at all"
    ratio = block(ALERTS["fetch_tasks_failures"], "conditions", "condition_threshold")
    assert 'metric.label.code != "OK"' in ratio["filter"] and "code" not in ratio["denominator_filter"]
    assert ratio["threshold_value"] == "${var.fetch_tasks_failure_ratio}"
    backlog = block(ALERTS["sync_backlog"], "conditions", "condition_threshold")
    assert 'subscription_id = starts_with("buildsync-sync")' in backlog["filter"]
    assert all(name.startswith("buildsync-sync") for name in _sync_subscription_names())
    assert block(ALERTS["permanent_errors"], "conditions", "condition_threshold")["threshold_value"] == (
        "${var.permanent_errors_per_10_minutes}"
    )
    held_back = block(ALERTS["backend_held_back"], "conditions", "condition_threshold")
    assert held_back["threshold_value"] == "${var.backend_held_back_minutes - 1}"
    assert block(held_back, "aggregations")["group_by_fields"] == ["metric.label.backend"]


def _sync_subscription_names() -> list[str]:
    subscriptions = CONFIG_WITH_BACKENDS["resource"]["google_pubsub_subscription"].values()
    return [body["name"] for body in subscriptions if ref(body["topic"]) == topic_ref("sync")]


def render_dashboard() -> dict:
    """deploy/dashboard.json.tftpl rendered as templatefile would, with the values main.tf passes."""
    (body,) = resources("google_monitoring_dashboard").values()
    call = body["dashboard_json"]
    assert call.startswith('${templatefile("${path.module}/dashboard.json.tftpl", {')
    promql = '"logging_googleapis_com:user_${replace(metric.name, "/", "_")}"'
    assert f"promql = {{for key, metric in google_logging_metric.buildsync : key => {promql}}}" in call
    passed_alerts = set(re.findall(r"google_monitoring_alert_policy\.(\w+)\.name", call))
    assert passed_alerts == set(ALERTS)

    def value(match: re.Match) -> str:
        name, key = match.group(1), match.group(2)
        if name == "promql":
            assert key in LOG_METRICS, f"the dashboard reads buildsync/{key}, which metrics.tf does not declare"
            return f"logging_googleapis_com:user_buildsync_{key}"
        if name == "alerts":
            assert key in ALERTS and f"{key} = google_monitoring_alert_policy.{key}.name" in call, key
            return f"projects/p/alertPolicies/{key}"
        assert name == "dead_letter_subscription" and key is None, match.group(0)
        return "buildsync-dead-letter-sub"

    text = re.sub(r'\$\{(\w+)(?:\["(\w+)"\])?\}', value, (DEPLOY / "dashboard.json.tftpl").read_text())
    assert "${" not in text and "%{" not in text
    return json.loads(text)


def values_at(tree, suffix: str) -> list:
    """The values (not the keys) at paths ending in `suffix`."""
    key = suffix.rsplit("/", 1)[1]
    return [leaf for path, leaf in walk(tree) if path.endswith(suffix) and leaf != key]


def test_dashboard_charts_existing_metrics_with_their_labels():
    dashboard = render_dashboard()
    tiles = dashboard["mosaicLayout"]["tiles"]
    queries = values_at(tiles, "/prometheusQuery")
    filters = values_at(tiles, "/timeSeriesFilter/filter")
    assert queries and filters
    for query in queries:
        names = re.findall(r"logging_googleapis_com:user_buildsync_(\w+?)(_sum|_count|_bucket)?\{([^}]*)\}", query)
        assert names, query
        grouped = set()
        for by in re.findall(r"by \(([^)]*)\)", query):
            grouped |= {label.strip() for label in by.split(",")} - {"le"}
        for key, suffix, selector in names:
            metric = metrics.METRICS[key]
            assert bool(suffix) == (metric.value is not None), (
                f"{key}{suffix}: distributions take a suffix, counters none"
            )
            assert 'monitored_resource="cloud_run_revision"' in selector, query
            selected = set(re.findall(r"(\w+)!?=", selector)) - {"monitored_resource"}
            assert grouped | selected <= set(metric.labels), f"{query}: labels not on {key}"
    for filter_ in filters:
        assert metrics_read(filter_.replace("=", " = ")) <= PUBSUB_METRICS


def test_dashboard_shows_throughput_completed_builds_and_every_alert():
    dashboard = render_dashboard()
    text = json.dumps(dashboard)
    for key in (
        "builds_synced",
        "build_cycle_seconds",
        "sync_lag_seconds",
        "fetch_tasks_latency",
        "fetch_tasks_calls",
        "permanent_errors",
    ):
        assert f"user_buildsync_{key}" in text, key
    charted = set(values_at(dashboard, "/alertChart/name"))
    assert charted == {f"projects/p/alertPolicies/{name}" for name in ALERTS}
    positions = [(tile["xPos"], tile["yPos"]) for tile in dashboard["mosaicLayout"]["tiles"]]
    assert len(positions) == len(set(positions))
    assert all(
        tile["xPos"] + tile["width"] <= dashboard["mosaicLayout"]["columns"]
        for tile in dashboard["mosaicLayout"]["tiles"]
    )
