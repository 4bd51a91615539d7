# Topics (all encrypted with the customer-managed key) and the subscriptions
# that deliver their messages. Every function subscription is a push
# subscription with an OIDC token; it and the BigQuery export's have the same
# retry and dead-letter policy.

# The topics this configuration always creates (local.topics: trigger,
# shard, sync, dead_letter), one resource with for_each over them.
resource "google_pubsub_topic" "topic" {
  for_each = local.topics

  project      = var.project
  name         = each.value
  kms_key_name = google_kms_crypto_key.pubsub.id
  labels       = local.labels

  message_storage_policy {
    allowed_persistence_regions = [var.region]
  }

  depends_on = [google_kms_crypto_key_iam_member.pubsub_agent]
}

# The builds topic exists only with create_builds_topic and a bare name
# (local.create_builds_topic); otherwise the functions publish to an existing
# one. Same settings as the topics above.
resource "google_pubsub_topic" "builds" {
  count = local.create_builds_topic ? 1 : 0

  project      = var.project
  name         = var.builds_topic
  kms_key_name = google_kms_crypto_key.pubsub.id
  labels       = local.labels

  message_storage_policy {
    allowed_persistence_regions = [var.region]
  }

  depends_on = [google_kms_crypto_key_iam_member.pubsub_agent]
}

# Every subscription that delivers messages (local.deliveries), one resource
# so that all retry and dead-letter alike: the push subscriptions
# (local.subscriptions), one per function on the topic that feeds it
# (trigger -> planner, shard -> shard, sync -> sync) and one per backend of
# var.sync_backends on the sync topic, and the BigQuery export's on the
# builds topic when it is on (bigquery.tf). A subscription has its own push
# window, which Pub/Sub narrows when pushes fail, its own backlog and its own
# dead letters: a failing backend slows only its own.
resource "google_pubsub_subscription" "function" {
  for_each = local.deliveries

  project                    = var.project
  name                       = "buildsync-${each.key}"
  topic                      = each.value.topic
  filter                     = each.value.filter
  ack_deadline_seconds       = each.value.ack_deadline_seconds
  message_retention_duration = var.message_retention_duration
  labels                     = local.labels

  dynamic "push_config" {
    for_each = each.value.push
    content {
      # The topic path in the URL becomes the CloudEvent source
      # (//pubsub.googleapis.com/projects/P/topics/T) when the Functions
      # Framework turns the push body into a CloudEvent.
      push_endpoint = "${google_cloudfunctions2_function.function[push_config.value].service_config[0].uri}/${local.functions[push_config.value].topic}"

      oidc_token {
        service_account_email = google_service_account.push_invoker.email
        audience              = google_cloudfunctions2_function.function[push_config.value].service_config[0].uri
      }
    }
  }

  # The export writes each message as a row with its metadata (the columns
  # of local.bigquery_schema); only then does the export exist.
  dynamic "bigquery_config" {
    for_each = each.value.bigquery
    content {
      table          = "${var.project}.${google_bigquery_dataset.builds[0].dataset_id}.${google_bigquery_table.notifications[0].table_id}"
      write_metadata = true
    }
  }

  # A 429 (no instance free) is a failed push like any other: it is retried
  # with this backoff and counts towards max_delivery_attempts, so the retry
  # budget must outlast a burst (var.max_instance_count, README "Backlog").
  retry_policy {
    minimum_backoff = var.minimum_backoff
    maximum_backoff = var.maximum_backoff
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.topic["dead_letter"].id
    max_delivery_attempts = var.max_delivery_attempts
  }

  expiration_policy {
    ttl = "" # never expires
  }

  depends_on = [google_cloud_run_v2_service_iam_member.function_invoker, google_bigquery_table_iam_member.pubsub_agent_writes]
}

# The dead-letter topic's own subscription: without one its messages are
# dropped. Operators pull from it (see README.md); it has no dead-letter
# policy of its own, since nothing pushes from it and a nack only makes a
# message available again.
resource "google_pubsub_subscription" "dead_letter" {
  project                    = var.project
  name                       = "${var.dead_letter_topic}-sub"
  topic                      = google_pubsub_topic.topic["dead_letter"].id
  ack_deadline_seconds       = 60
  message_retention_duration = var.dead_letter_retention_duration
  retain_acked_messages      = false
  labels                     = local.labels

  retry_policy {
    minimum_backoff = var.minimum_backoff
    maximum_backoff = var.maximum_backoff
  }

  expiration_policy {
    ttl = ""
  }
}
