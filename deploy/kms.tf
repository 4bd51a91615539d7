# Customer-managed key for the Pub/Sub topics (CKV_GCP_83).

resource "google_kms_key_ring" "buildsync" {
  project  = var.project
  name     = var.kms_key_ring
  location = var.region
}

resource "google_kms_crypto_key" "pubsub" {
  name            = "buildsync-pubsub"
  key_ring        = google_kms_key_ring.buildsync.id
  rotation_period = var.kms_rotation_period
  labels          = local.labels

  lifecycle {
    # Destroying the key makes every message encrypted with it unreadable.
    prevent_destroy = true
  }
}

resource "google_kms_crypto_key_iam_member" "pubsub_agent" {
  crypto_key_id = google_kms_crypto_key.pubsub.id
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = local.pubsub_agent
}

# Customer-managed key for the functions' image repository (CKV_GCP_84),
# used by the Artifact Registry service agent.
resource "google_kms_crypto_key" "artifacts" {
  name            = "buildsync-artifacts"
  key_ring        = google_kms_key_ring.buildsync.id
  rotation_period = var.kms_rotation_period
  labels          = local.labels

  lifecycle {
    prevent_destroy = true
  }
}

resource "google_kms_crypto_key_iam_member" "artifact_registry_agent" {
  crypto_key_id = google_kms_crypto_key.artifacts.id
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-artifactregistry.iam.gserviceaccount.com"
}
