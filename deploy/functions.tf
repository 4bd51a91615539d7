# The three functions, built from the zips deploy/package.sh writes.
# Each zip holds main.py, requirements.txt, a vendored copy of the buildsync
# package and the settings file (settings.json or settings.cfg), which the
# functions find through BUILDSYNC_SETTINGS=/workspace/settings.*.
# LOG_EXECUTION_ID is what Cloud Functions sets by itself on 2nd gen functions
# (execution ids on log lines); stating it avoids a permanent plan diff.

resource "google_storage_bucket" "source" {
  #checkov:skip=CKV_GCP_62:Holds only deployment zips written by Terraform; reads are covered by Cloud Audit Logs, and a usage-log bucket would need the same exemption itself.
  project                     = var.project
  name                        = local.source_bucket
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false
  labels                      = local.labels

  versioning {
    enabled = true
  }

  lifecycle_rule {
    # Old zips are kept as noncurrent versions for a while, then removed.
    condition {
      days_since_noncurrent_time = 30
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }
}

# Object names carry the zip's hash, so a changed zip is a new object and the
# function is rebuilt; an unchanged zip leaves the function alone.
resource "google_storage_bucket_object" "planner" {
  bucket = google_storage_bucket.source.name
  name   = "planner-${filemd5("${local.package_dir}/planner.zip")}.zip"
  source = "${local.package_dir}/planner.zip"

  lifecycle {
    precondition {
      condition     = trimspace(file("${local.package_dir}/settings.sha256")) == filesha256(var.settings_file)
      error_message = "The zips in package_dir carry a different settings file than settings_file: run deploy/package.sh OUTDIR SETTINGS_FILE with the same file."
    }
  }
}

resource "google_storage_bucket_object" "shard" {
  bucket = google_storage_bucket.source.name
  name   = "shard-${filemd5("${local.package_dir}/shard.zip")}.zip"
  source = "${local.package_dir}/shard.zip"

  lifecycle {
    precondition {
      condition     = trimspace(file("${local.package_dir}/settings.sha256")) == filesha256(var.settings_file)
      error_message = "The zips in package_dir carry a different settings file than settings_file: run deploy/package.sh OUTDIR SETTINGS_FILE with the same file."
    }
  }
}

resource "google_storage_bucket_object" "sync" {
  bucket = google_storage_bucket.source.name
  name   = "sync-${filemd5("${local.package_dir}/sync.zip")}.zip"
  source = "${local.package_dir}/sync.zip"

  lifecycle {
    precondition {
      condition     = trimspace(file("${local.package_dir}/settings.sha256")) == filesha256(var.settings_file)
      error_message = "The zips in package_dir carry a different settings file than settings_file: run deploy/package.sh OUTDIR SETTINGS_FILE with the same file."
    }
  }
}

# trigger topic -> planner -> shard topic (and builds topic)
resource "google_cloudfunctions2_function" "planner" {
  project     = var.project
  location    = var.region
  name        = "buildsync-planner"
  description = "buildsync planner: one trigger in, one shard job per (backend, project, shard) out."
  labels      = local.labels

  build_config {
    runtime         = "python312"
    entry_point     = "planner"
    service_account = google_service_account.build.id

    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.planner.name
      }
    }
  }

  service_config {
    service_account_email          = google_service_account.planner.email
    ingress_settings               = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision = true
    available_memory               = var.function_memory
    timeout_seconds                = var.function_timeout_seconds
    max_instance_count             = var.max_instance_count["planner"]
    environment_variables = {
      GOOGLE_CLOUD_PROJECT            = var.project
      BUILDSYNC_SETTINGS              = local.settings_path
      BUILDSYNC_MAX_EVENT_AGE_SECONDS = var.max_event_age_seconds
      LOG_EXECUTION_ID                = "true"
      BUILDSYNC_SHARD_TOPIC           = google_pubsub_topic.shard.id
      BUILDSYNC_BUILDS_TOPIC          = local.builds_topic_id
    }
  }

  depends_on = [
    google_project_iam_member.build_logs,
    google_project_iam_member.build_images,
    google_project_iam_member.build_function_sources,
    google_storage_bucket_iam_member.build_reads_zips,
  ]
}

# shard topic -> shard -> sync topic
resource "google_cloudfunctions2_function" "shard" {
  project     = var.project
  location    = var.region
  name        = "buildsync-shard"
  description = "buildsync shard: one shard job in, batches of due build ids out."
  labels      = local.labels

  build_config {
    runtime         = "python312"
    entry_point     = "shard"
    service_account = google_service_account.build.id

    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.shard.name
      }
    }
  }

  service_config {
    service_account_email          = google_service_account.shard.email
    ingress_settings               = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision = true
    available_memory               = var.function_memory
    timeout_seconds                = var.function_timeout_seconds
    max_instance_count             = var.max_instance_count["shard"]
    environment_variables = {
      GOOGLE_CLOUD_PROJECT            = var.project
      BUILDSYNC_SETTINGS              = local.settings_path
      BUILDSYNC_MAX_EVENT_AGE_SECONDS = var.max_event_age_seconds
      LOG_EXECUTION_ID                = "true"
      BUILDSYNC_SYNC_TOPIC            = google_pubsub_topic.sync.id
    }
  }

  depends_on = [
    google_project_iam_member.build_logs,
    google_project_iam_member.build_images,
    google_project_iam_member.build_function_sources,
    google_storage_bucket_iam_member.build_reads_zips,
  ]
}

# sync topic -> sync -> builds topic
resource "google_cloudfunctions2_function" "sync" {
  project     = var.project
  location    = var.region
  name        = "buildsync-sync"
  description = "buildsync sync: one batch of build ids in, builds updated from their backend tasks."
  labels      = local.labels

  build_config {
    runtime         = "python312"
    entry_point     = "sync"
    service_account = google_service_account.build.id

    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.sync.name
      }
    }
  }

  service_config {
    service_account_email          = google_service_account.sync.email
    ingress_settings               = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision = true
    available_memory               = var.function_memory
    timeout_seconds                = var.function_timeout_seconds
    max_instance_count             = var.max_instance_count["sync"]
    environment_variables = {
      GOOGLE_CLOUD_PROJECT            = var.project
      BUILDSYNC_SETTINGS              = local.settings_path
      BUILDSYNC_MAX_EVENT_AGE_SECONDS = var.max_event_age_seconds
      LOG_EXECUTION_ID                = "true"
      BUILDSYNC_BUILDS_TOPIC          = local.builds_topic_id
    }
  }

  depends_on = [
    google_project_iam_member.build_logs,
    google_project_iam_member.build_images,
    google_project_iam_member.build_function_sources,
    google_storage_bucket_iam_member.build_reads_zips,
  ]
}
