# Log-based metrics: Cloud Logging counts and measures the metric-bearing
# lines that shared/buildsync/metrics.py writes (one line per event, with a
# `metric` field naming the line). local.log_metrics must declare exactly
# metrics.METRICS (tests/test_deploy.py checks it); the README's "Metrics"
# section says why log-based metrics rather than an exporter.
#
# A metric with a `value` is a distribution of that numeric field; one
# without counts lines. Labels are fields of the line, all strings with few
# values (no build ids or builder names, which would multiply time series).

locals {
  # The functions' own log entries: 2nd gen functions log as Cloud Run revisions.
  function_log_filter = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=~\"^buildsync-(planner|shard|sync)$\""

  log_metrics = {
    builds_synced = {
      line        = "builds_synced"
      labels      = ["outcome", "backend", "project"]
      value       = "builds"
      unit        = "1"
      description = "Builds a sync batch handled, per outcome (one value per batch and outcome; the sum is the builds)."
      # 1, 2, 4, ... 1024 builds per batch and outcome.
      buckets = { count = 11, growth = 2, scale = 1 }
    }
    build_cycle_seconds = {
      line        = "build_completed"
      labels      = ["status", "project", "bucket"]
      value       = "cycle_seconds"
      unit        = "s"
      description = "Builds ended by buildsync (the count) and their create-to-end durations."
      # 10 s to about 5 days, 26 % apart.
      buckets = { count = 48, growth = 1.26, scale = 10 }
    }
    build_run_seconds = {
      line        = "build_completed"
      labels      = ["status", "project", "bucket"]
      value       = "run_seconds"
      unit        = "s"
      description = "Start-to-end durations of the builds buildsync ended that had started."
      buckets     = { count = 48, growth = 1.26, scale = 10 }
    }
    fetch_tasks_calls = {
      line        = "fetch_tasks"
      labels      = ["backend", "transport", "code"]
      value       = null
      unit        = "1"
      description = "FetchTasks calls per backend, transport and result code (OK or the error code)."
      buckets     = null
    }
    fetch_tasks_latency = {
      line        = "fetch_tasks"
      labels      = ["backend", "transport", "code"]
      value       = "seconds"
      unit        = "s"
      description = "FetchTasks latency per backend, transport and result code."
      # 10 ms to about 160 s, 41 % apart.
      buckets = { count = 28, growth = 1.41, scale = 0.01 }
    }
    transaction_retries = {
      line        = "transaction_retry"
      labels      = ["cause", "final"]
      value       = null
      unit        = "1"
      description = "Datastore transactions that failed and were retried (final=false) or given up (final=true)."
      buckets     = null
    }
    sync_lag_seconds = {
      line        = "sync_lag"
      labels      = ["backend", "project"]
      value       = "seconds"
      unit        = "s"
      description = "Age of the oldest due build of a shard when the shard stage runs (0 when none is due)."
      # 1 s to about 12 days, 20 % apart: the lag alert's percentile is
      # read from these buckets, so they stay narrow around any threshold.
      buckets = { count = 75, growth = 1.2, scale = 1 }
    }
    messages_dropped = {
      line        = "message_dropped"
      labels      = ["stage", "reason"]
      value       = null
      unit        = "1"
      description = "Messages acknowledged unhandled because a newer plan covers them."
      buckets     = null
    }
    unknown_backend_runs = {
      line        = "unknown_backend"
      labels      = ["backend"]
      value       = null
      unit        = "1"
      description = "Planner runs that found incomplete builds on a backend missing from the settings (never synced)."
      buckets     = null
    }
    backend_breaker_changes = {
      line        = "backend_breaker"
      labels      = ["backend", "state"]
      value       = null
      unit        = "1"
      description = "A backend's circuit breaker opening or closing (docs/isolation.md)."
      buckets     = null
    }
    backends_held_back = {
      line        = "backend_held_back"
      labels      = ["backend"]
      value       = null
      unit        = "1"
      description = "Planner runs that held a backend back to one probe batch because its breaker is open."
      buckets     = null
    }
    permanent_errors = {
      line        = "permanent_error"
      labels      = ["stage", "error_type"]
      value       = null
      unit        = "1"
      description = "Messages acknowledged with a permanent error (also sent to Error Reporting)."
      buckets     = null
    }
  }

  # Metric types as Cloud Monitoring names them, by key of local.log_metrics.
  log_metric_types = { for name, metric in local.log_metrics : name => "logging.googleapis.com/user/buildsync/${name}" }
}

resource "google_logging_metric" "buildsync" {
  for_each = local.log_metrics

  project     = var.project
  name        = "buildsync/${each.key}"
  description = each.value.description
  filter      = "${local.function_log_filter} AND jsonPayload.metric=\"${each.value.line}\""

  label_extractors = { for label in each.value.labels : label => "EXTRACT(jsonPayload.${label})" }
  value_extractor  = each.value.value == null ? null : "EXTRACT(jsonPayload.${each.value.value})"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = each.value.value == null ? "INT64" : "DISTRIBUTION"
    unit         = each.value.unit
    display_name = "buildsync ${replace(each.key, "_", " ")}"

    dynamic "labels" {
      for_each = each.value.labels
      content {
        key        = labels.value
        value_type = "STRING"
      }
    }
  }

  dynamic "bucket_options" {
    for_each = each.value.buckets == null ? [] : [each.value.buckets]
    content {
      exponential_buckets {
        num_finite_buckets = bucket_options.value.count
        growth_factor      = bucket_options.value.growth
        scale              = bucket_options.value.scale
      }
    }
  }
}
