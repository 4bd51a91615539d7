# Alerts and the dashboard. Every alert reads a metric that exists: one of
# the log-based metrics of metrics.tf (local.log_metric_types) or a Pub/Sub
# subscription metric (tests/test_deploy.py checks both). Notifications go to
# var.notification_channels; with none, incidents show in the console only.

# Filters name a log-based metric through its resource, so Terraform creates
# the metric before the alert that reads it.

resource "google_monitoring_alert_policy" "dead_letters" {
  project               = var.project
  display_name          = "buildsync: dead letters waiting"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.notification_channels
  user_labels           = local.labels

  documentation {
    mime_type = "text/markdown"
    content   = "A message failed max_delivery_attempts times and waits on `${google_pubsub_subscription.dead_letter.name}`: a bug or an outage. Pull it, read the function's ERROR lines for its message_id, fix, and replay (README, Dead letters)."
  }

  conditions {
    display_name = "undelivered dead letters > 0"
    condition_threshold {
      filter          = "metric.type = \"pubsub.googleapis.com/subscription/num_undelivered_messages\" AND resource.type = \"pubsub_subscription\" AND resource.labels.subscription_id = \"${google_pubsub_subscription.dead_letter.name}\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MAX"
      }
      trigger {
        count = 1
      }
    }
  }
}

resource "google_monitoring_alert_policy" "sync_lag" {
  project               = var.project
  display_name          = "buildsync: sync lag"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = var.notification_channels
  user_labels           = local.labels

  documentation {
    mime_type = "text/markdown"
    content   = "Due builds of a backend and project have waited longer than ${var.sync_lag_threshold_seconds} s for a sync, or the shard stage reports no lag at all (the planner or the scheduler stopped). Check the sync subscription's backlog, FetchTasks errors and the functions' instance limits."
  }

  conditions {
    display_name = "oldest due build older than ${var.sync_lag_threshold_seconds} s"
    condition_threshold {
      filter          = "metric.type = \"logging.googleapis.com/user/${google_logging_metric.buildsync["sync_lag_seconds"].name}\" AND resource.type = \"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.sync_lag_threshold_seconds
      duration        = "300s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_PERCENTILE_99"
        cross_series_reducer = "REDUCE_MAX"
        group_by_fields      = ["metric.label.backend", "metric.label.project"]
      }
      trigger {
        count = 1
      }
    }
  }

  conditions {
    display_name = "no sync lag reported for 15 minutes"
    condition_absent {
      filter   = "metric.type = \"logging.googleapis.com/user/${google_logging_metric.buildsync["sync_lag_seconds"].name}\" AND resource.type = \"cloud_run_revision\""
      duration = "900s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_PERCENTILE_99"
        cross_series_reducer = "REDUCE_MAX"
      }
      trigger {
        count = 1
      }
    }
  }
}

resource "google_monitoring_alert_policy" "permanent_errors" {
  project               = var.project
  display_name          = "buildsync: permanent errors"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.notification_channels
  user_labels           = local.labels

  documentation {
    mime_type = "text/markdown"
    content   = "More than ${var.permanent_errors_per_10_minutes} messages in 10 minutes were acknowledged with a permanent error (bad settings, a missing index, a backend refusing us, malformed messages). Error Reporting groups them; the ERROR lines carry stage and error_type."
  }

  conditions {
    display_name = "permanent errors > ${var.permanent_errors_per_10_minutes} per 10 min"
    condition_threshold {
      filter          = "metric.type = \"logging.googleapis.com/user/${google_logging_metric.buildsync["permanent_errors"].name}\" AND resource.type = \"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.permanent_errors_per_10_minutes
      duration        = "0s"
      aggregations {
        alignment_period     = "600s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["metric.label.stage"]
      }
      trigger {
        count = 1
      }
    }
  }
}

resource "google_monitoring_alert_policy" "backend_held_back" {
  project               = var.project
  display_name          = "buildsync: backend breaker open"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.notification_channels
  user_labels           = local.labels

  documentation {
    mime_type = "text/markdown"
    content   = "A backend's circuit breaker has been open for ${var.backend_held_back_minutes} planner runs in 10 minutes: its FetchTasks calls fail or hang, so the planner sends it one probe batch a minute and its builds wait (docs/isolation.md). The other backends are not delayed. The planner's `backend held back` WARNING lines name the backend, its last error and the probe; the breaker closes by itself once a probe succeeds."
  }

  conditions {
    display_name = "backend held back in >= ${var.backend_held_back_minutes} planner runs per 10 min"
    condition_threshold {
      filter          = "metric.type = \"logging.googleapis.com/user/${google_logging_metric.buildsync["backends_held_back"].name}\" AND resource.type = \"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.backend_held_back_minutes - 1
      duration        = "0s"
      aggregations {
        alignment_period     = "600s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["metric.label.backend"]
      }
      trigger {
        count = 1
      }
    }
  }
}

resource "google_monitoring_alert_policy" "fetch_tasks_failures" {
  project               = var.project
  display_name          = "buildsync: FetchTasks failing"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.notification_channels
  user_labels           = local.labels

  documentation {
    mime_type = "text/markdown"
    content   = "More than ${var.fetch_tasks_failure_ratio * 100} % of a backend's FetchTasks calls failed over 10 minutes. The fetch_tasks lines carry the code; the backend may be down, slow (DEADLINE_EXCEEDED) or refusing our identity (PERMISSION_DENIED, UNAUTHENTICATED)."
  }

  conditions {
    display_name = "failed / all FetchTasks calls > ${var.fetch_tasks_failure_ratio}"
    condition_threshold {
      filter             = "metric.type = \"logging.googleapis.com/user/${google_logging_metric.buildsync["fetch_tasks_calls"].name}\" AND resource.type = \"cloud_run_revision\" AND metric.label.code != \"OK\""
      denominator_filter = "metric.type = \"logging.googleapis.com/user/${google_logging_metric.buildsync["fetch_tasks_calls"].name}\" AND resource.type = \"cloud_run_revision\""
      comparison         = "COMPARISON_GT"
      threshold_value    = var.fetch_tasks_failure_ratio
      duration           = "0s"
      aggregations {
        alignment_period     = "600s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["metric.label.backend"]
      }
      denominator_aggregations {
        alignment_period     = "600s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["metric.label.backend"]
      }
      trigger {
        count = 1
      }
    }
  }
}

resource "google_monitoring_alert_policy" "sync_backlog" {
  project               = var.project
  display_name          = "buildsync: sync backlog"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = var.notification_channels
  user_labels           = local.labels

  documentation {
    mime_type = "text/markdown"
    content   = "A sync subscription's oldest unacknowledged message is older than ${var.sync_oldest_unacked_seconds} s: the sync function does not keep up (instances, a slow backend) or keeps failing. Messages older than max_event_age_seconds are dropped unhandled when they arrive; the next plan covers their builds."
  }

  conditions {
    display_name = "oldest unacked sync message > ${var.sync_oldest_unacked_seconds} s"
    condition_threshold {
      filter          = "metric.type = \"pubsub.googleapis.com/subscription/oldest_unacked_message_age\" AND resource.type = \"pubsub_subscription\" AND resource.labels.subscription_id = starts_with(\"buildsync-sync\")"
      comparison      = "COMPARISON_GT"
      threshold_value = var.sync_oldest_unacked_seconds
      duration        = "120s"
      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_MAX"
        cross_series_reducer = "REDUCE_MAX"
        group_by_fields      = ["resource.label.subscription_id"]
      }
      trigger {
        count = 1
      }
    }
  }
}

resource "google_monitoring_dashboard" "buildsync" {
  project = var.project
  # The template names log-based metrics in PromQL form (the first / becomes
  # :, every other one _), Pub/Sub metrics by their filter, and the alerts.
  dashboard_json = templatefile("${path.module}/dashboard.json.tftpl", {
    promql                   = { for key, metric in google_logging_metric.buildsync : key => "logging_googleapis_com:user_${replace(metric.name, "/", "_")}" }
    dead_letter_subscription = google_pubsub_subscription.dead_letter.name
    alerts = {
      dead_letters         = google_monitoring_alert_policy.dead_letters.name
      sync_lag             = google_monitoring_alert_policy.sync_lag.name
      permanent_errors     = google_monitoring_alert_policy.permanent_errors.name
      fetch_tasks_failures = google_monitoring_alert_policy.fetch_tasks_failures.name
      sync_backlog         = google_monitoring_alert_policy.sync_backlog.name
      backend_held_back    = google_monitoring_alert_policy.backend_held_back.name
    }
  })
}
