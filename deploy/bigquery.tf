# Optional export of completed builds to BigQuery, without code: a Pub/Sub
# BigQuery subscription on the builds topic writes every BuildsV2PubSub
# message (proto3 JSON, as the functions publish it) into a table, and a view
# shows the rows as builds, the columns named as in Buildbucket's own export.
# Off unless bigquery_dataset is set. Messages BigQuery refuses go to the
# dead-letter topic after max_delivery_attempts, like the functions' own.

locals {
  bigquery_enabled = var.bigquery_dataset != ""
  bigquery_count   = local.bigquery_enabled ? 1 : 0

  # The export's subscription on the builds topic, one of local.deliveries:
  # pubsub.tf declares it with the push subscriptions, so that it has their
  # retry and dead-letter policy, and iam.tf lets the service agent dead-letter
  # from it. Its bigquery_config (write_metadata, into the notifications
  # table) is there too.
  bigquery_subscription = {
    builds-bigquery = { topic = local.builds_topic_id, filter = "", ack_deadline_seconds = 60, push = [], bigquery = [true] }
  }

  # The columns a subscription with write_metadata fills; `data` is the
  # message (BuildsV2PubSub JSON), `attributes` a JSON object of its
  # attributes (project, bucket, builder, is_completed, version).
  bigquery_schema = [
    { name = "subscription_name", type = "STRING", mode = "NULLABLE", description = "The subscription that wrote the row." },
    { name = "message_id", type = "STRING", mode = "NULLABLE", description = "Pub/Sub message id; a build may arrive more than once (de-duplicate by build id)." },
    { name = "publish_time", type = "TIMESTAMP", mode = "NULLABLE", description = "When the notification was published." },
    { name = "data", type = "STRING", mode = "NULLABLE", description = "The buildbucket.v2.BuildsV2PubSub message, proto3 JSON." },
    { name = "attributes", type = "STRING", mode = "NULLABLE", description = "The message attributes, a JSON object." },
  ]
}

# Encrypts the dataset and its table (CKV_GCP_80, CKV_GCP_81).
resource "google_kms_crypto_key" "bigquery" {
  count = local.bigquery_count

  name            = "buildsync-bigquery"
  key_ring        = google_kms_key_ring.buildsync.id
  rotation_period = var.kms_rotation_period
  labels          = local.labels

  lifecycle {
    # Destroying the key makes every exported row unreadable.
    prevent_destroy = true
  }
}

data "google_bigquery_default_service_account" "this" {
  count = local.bigquery_count

  project = var.project
}

resource "google_kms_crypto_key_iam_member" "bigquery_agent" {
  count = local.bigquery_count

  crypto_key_id = google_kms_crypto_key.bigquery[0].id
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = "serviceAccount:${data.google_bigquery_default_service_account.this[0].email}"
}

resource "google_bigquery_dataset" "builds" {
  count = local.bigquery_count

  project     = var.project
  dataset_id  = var.bigquery_dataset
  location    = var.region
  description = "Builds ended by buildsync, as Buildbucket's notifications carry them."
  labels      = local.labels

  default_encryption_configuration {
    kms_key_name = google_kms_crypto_key.bigquery[0].id
  }

  depends_on = [google_kms_crypto_key_iam_member.bigquery_agent]
}

resource "google_bigquery_table" "notifications" {
  count = local.bigquery_count

  project             = var.project
  dataset_id          = google_bigquery_dataset.builds[0].dataset_id
  table_id            = var.bigquery_table
  description         = "One row per BuildsV2PubSub message on the builds topic, written by a Pub/Sub BigQuery subscription."
  labels              = local.labels
  deletion_protection = true
  schema              = jsonencode(local.bigquery_schema)

  time_partitioning {
    type          = "DAY"
    field         = "publish_time"
    expiration_ms = var.bigquery_partition_expiration_days > 0 ? var.bigquery_partition_expiration_days * 86400000 : null
  }

  encryption_configuration {
    kms_key_name = google_kms_crypto_key.bigquery[0].id
  }
}

# The rows as builds, one per message, with the columns of Buildbucket's
# export that a notification carries (the large fields stay compressed in
# build_large_fields; Buildbucket's GetBuild has them).
resource "google_bigquery_table" "builds_view" {
  #checkov:skip=CKV_GCP_80:a view stores no data; the table it reads is encrypted with the CMEK key
  count = local.bigquery_count

  project             = var.project
  dataset_id          = google_bigquery_dataset.builds[0].dataset_id
  table_id            = var.bigquery_view
  description         = "Completed builds from the notifications table, in the shape of Buildbucket's builds export."
  labels              = local.labels
  deletion_protection = true

  view {
    use_legacy_sql = false
    query          = <<-SQL
      SELECT
        CAST(JSON_VALUE(b, '$.id') AS INT64) AS id,
        STRUCT(
          JSON_VALUE(b, '$.builder.project') AS project,
          JSON_VALUE(b, '$.builder.bucket') AS bucket,
          JSON_VALUE(b, '$.builder.builder') AS builder
        ) AS builder,
        CAST(JSON_VALUE(b, '$.number') AS INT64) AS number,
        JSON_VALUE(b, '$.status') AS status,
        TIMESTAMP(JSON_VALUE(b, '$.createTime')) AS create_time,
        TIMESTAMP(JSON_VALUE(b, '$.startTime')) AS start_time,
        TIMESTAMP(JSON_VALUE(b, '$.endTime')) AS end_time,
        TIMESTAMP(JSON_VALUE(b, '$.updateTime')) AS update_time,
        JSON_VALUE(b, '$.summaryMarkdown') AS summary_markdown,
        ARRAY(
          SELECT AS STRUCT JSON_VALUE(t, '$.key') AS key, JSON_VALUE(t, '$.value') AS value
          FROM UNNEST(JSON_QUERY_ARRAY(b, '$.tags')) AS t
        ) AS tags,
        JSON_QUERY(b, '$.infra') AS infra,
        JSON_QUERY(b, '$.output') AS output,
        JSON_VALUE(m, '$.buildLargeFields') AS build_large_fields,
        IFNULL(JSON_VALUE(m, '$.compression'), 'ZLIB') AS compression,
        IFNULL(CAST(JSON_VALUE(m, '$.buildLargeFieldsDropped') AS BOOL), FALSE) AS build_large_fields_dropped,
        publish_time,
        message_id
      FROM (
        SELECT SAFE.PARSE_JSON(data) AS m, JSON_QUERY(SAFE.PARSE_JSON(data), '$.build') AS b, publish_time, message_id
        FROM `${var.project}.${var.bigquery_dataset}.${var.bigquery_table}`
      )
    SQL
  }

  depends_on = [google_bigquery_table.notifications]
}

# The Pub/Sub service agent writes the rows and moves refused messages to
# the dead-letter topic (it may already publish there, iam.tf).
resource "google_bigquery_table_iam_member" "pubsub_agent_writes" {
  count = local.bigquery_count

  project    = var.project
  dataset_id = google_bigquery_dataset.builds[0].dataset_id
  table_id   = google_bigquery_table.notifications[0].table_id
  role       = "roles/bigquery.dataEditor"
  member     = local.pubsub_agent
}

# The subscription and its grant were resources of their own before they
# joined local.deliveries.
moved {
  from = google_pubsub_subscription.bigquery[0]
  to   = google_pubsub_subscription.function["builds-bigquery"]
}

moved {
  from = google_pubsub_subscription_iam_member.pubsub_agent_subscribes_bigquery[0]
  to   = google_pubsub_subscription_iam_member.pubsub_agent_subscribes["builds-bigquery"]
}

variable "bigquery_dataset" {
  description = "Dataset (created in region) that completed builds are exported to through a Pub/Sub BigQuery subscription on the builds topic. Empty (the default) means no export."
  type        = string
  default     = ""

  validation {
    condition     = can(regex("^[A-Za-z0-9_]{0,1024}$", var.bigquery_dataset))
    error_message = "bigquery_dataset must be empty or letters, digits and underscores."
  }
}

variable "bigquery_table" {
  description = "Table in bigquery_dataset that receives one row per notification."
  type        = string
  default     = "build_notifications"
}

variable "bigquery_view" {
  description = "View in bigquery_dataset that shows the notifications as builds."
  type        = string
  default     = "builds"
}

variable "bigquery_partition_expiration_days" {
  description = "Days a daily partition of the notifications table is kept; 0 keeps them forever."
  type        = number
  default     = 0

  validation {
    condition     = var.bigquery_partition_expiration_days >= 0
    error_message = "bigquery_partition_expiration_days must be 0 or more."
  }
}

output "bigquery_builds_view" {
  description = "The view of exported builds (project.dataset.view), or null when the export is off."
  value       = local.bigquery_enabled ? "${var.project}.${var.bigquery_dataset}.${var.bigquery_view}" : null
}
