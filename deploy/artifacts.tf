# The Artifact Registry repository the function builds push their images to
# (build_config.docker_repository), so the build account's writer role is on
# this repository alone. Encrypted with a customer-managed key (CKV_GCP_84);
# Cloud Functions keeps only the image of each function's latest build.

resource "google_artifact_registry_repository" "functions" {
  project       = var.project
  location      = var.region
  repository_id = "buildsync-functions"
  description   = "Images of the buildsync functions, written by their builds."
  format        = "DOCKER"
  kms_key_name  = google_kms_crypto_key.artifacts.id
  labels        = local.labels

  # Older images are never run again: keep the ten newest of each function.
  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = 10
    }
  }
  cleanup_policies {
    id     = "delete-old"
    action = "DELETE"
    condition {
      older_than = "2592000s"
    }
  }

  depends_on = [google_kms_crypto_key_iam_member.artifact_registry_agent]
}
