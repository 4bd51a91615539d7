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
resource "google_storage_bucket_object" "zip" {
  for_each = local.functions

  bucket = google_storage_bucket.source.name
  name   = "${each.key}-${filemd5("${local.package_dir}/${each.key}.zip")}.zip"
  source = "${local.package_dir}/${each.key}.zip"

  lifecycle {
    precondition {
      condition     = trimspace(file("${local.package_dir}/settings.sha256")) == filesha256(var.settings_file)
      error_message = "The zips in package_dir carry a different settings file than settings_file: run deploy/package.sh OUTDIR SETTINGS_FILE with the same file."
    }
  }
}

# trigger topic -> planner -> shard topic (and builds topic)
# shard topic   -> shard   -> sync topic
# sync topic    -> sync    -> builds topic
resource "google_cloudfunctions2_function" "function" {
  for_each = local.functions

  project     = var.project
  location    = var.region
  name        = "buildsync-${each.key}"
  description = each.value.description
  labels      = local.labels

  build_config {
    runtime           = "python312"
    entry_point       = each.key
    service_account   = google_service_account.build.id
    docker_repository = google_artifact_registry_repository.functions.id

    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.zip[each.key].name
      }
    }
  }

  service_config {
    service_account_email          = google_service_account.function[each.key].email
    ingress_settings               = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision = true
    available_memory               = var.function_memory
    available_cpu                  = each.value.cpu
    timeout_seconds                = var.function_timeout_seconds
    max_instance_count             = var.max_instance_count[each.key]
    environment_variables          = merge(local.function_env, each.value.publishes)
    # Buildbucket's Redis (dscache_redis) is reached on its private network.
    vpc_connector                 = var.vpc_connector != "" ? var.vpc_connector : null
    vpc_connector_egress_settings = var.vpc_connector != "" ? "PRIVATE_RANGES_ONLY" : null
  }

  lifecycle {
    precondition {
      condition     = var.max_event_age_seconds >= local.retry_budget_seconds
      error_message = "max_event_age_seconds must be at least max_delivery_attempts x maximum_backoff (${local.retry_budget_seconds} s), or a failing message is dropped as too old before it is dead-lettered."
    }
  }

  depends_on = [
    google_project_iam_member.build_logs,
    google_artifact_registry_repository_iam_member.build_images,
    google_project_iam_member.build_function_sources,
    google_storage_bucket_iam_member.build_reads_zips,
  ]
}
