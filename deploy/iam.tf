# One runtime service account per function with only what it uses, a
# push-invoker account that alone may call the functions, a build account for
# Cloud Build, and the Pub/Sub service agent's grants. No public principal.

resource "google_service_account" "function" {
  for_each = local.functions

  project      = var.project
  account_id   = "buildsync-${each.key}"
  display_name = "buildsync ${each.key} function"
}

resource "google_service_account" "push_invoker" {
  project      = var.project
  account_id   = "buildsync-push"
  display_name = "buildsync Pub/Sub push invoker"
  description  = "Identity of the OIDC tokens on the buildsync push subscriptions; may only invoke the three functions."
}

resource "google_service_account" "build" {
  project      = var.project
  account_id   = "buildsync-build"
  display_name = "buildsync function builds"
  description  = "Cloud Build runs the buildsync function builds as this account."
}

# Datastore access: each function its one role (local.functions: shard only
# reads), granted on the project, which is where Datastore roles are granted,
# with an IAM condition that limits it to the buildsync database.
resource "google_project_iam_member" "function_datastore" {
  for_each = local.functions

  project = var.project
  role    = each.value.datastore_role
  member  = google_service_account.function[each.key].member

  condition {
    title       = "buildsync-database-only"
    description = "Only the Firestore-in-Datastore-mode database that holds the builds."
    expression  = "resource.name == \"projects/${var.project}/databases/${var.datastore_database}\""
  }
}

# Function builds, with the roles the Cloud Functions documentation lists for
# a user-specified build service account: build logs, images in Artifact
# Registry, and objects in Cloud Storage. Image writes are limited to the
# functions' own repository (artifacts.tf); object access to the zips in our
# bucket and to the gcf-v2-* buckets Cloud Functions keeps the uploaded
# sources in.
resource "google_project_iam_member" "build_logs" {
  project = var.project
  role    = "roles/logging.logWriter"
  member  = google_service_account.build.member
}

resource "google_artifact_registry_repository_iam_member" "build_images" {
  project    = var.project
  location   = google_artifact_registry_repository.functions.location
  repository = google_artifact_registry_repository.functions.name
  role       = "roles/artifactregistry.writer"
  member     = google_service_account.build.member
}

resource "google_project_iam_member" "build_function_sources" {
  project = var.project
  role    = "roles/storage.objectAdmin"
  member  = google_service_account.build.member

  condition {
    title       = "gcf-v2-buckets-only"
    description = "Only the buckets Cloud Functions (2nd gen) keeps sources in."
    expression  = "resource.name.startsWith(\"projects/_/buckets/gcf-v2-\")"
  }
}

resource "google_storage_bucket_iam_member" "build_reads_zips" {
  bucket = google_storage_bucket.source.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.build.member
}

# Publishing: each function only on the topics it writes to.
# local.publisher_grants has one entry per (function, topic) of
# local.functions[*].publishes.
resource "google_pubsub_topic_iam_member" "function_publishes" {
  for_each = local.publisher_grants

  project = var.project
  topic   = each.value.topic
  role    = "roles/pubsub.publisher"
  member  = google_service_account.function[each.value.function].member
}

# Invoking: only the push-invoker account, on each function's Cloud Run
# service (a 2nd gen function's service has the function's name).
resource "google_cloud_run_v2_service_iam_member" "function_invoker" {
  for_each = local.functions

  project  = var.project
  location = var.region
  name     = google_cloudfunctions2_function.function[each.key].name
  role     = "roles/run.invoker"
  member   = google_service_account.push_invoker.member
}

# The Pub/Sub service agent mints the push OIDC tokens (needed explicitly in
# projects created before April 2021), granted on this one account rather
# than the project (CKV_GCP_49).
resource "google_service_account_iam_member" "pubsub_agent_mints_push_tokens" {
  service_account_id = google_service_account.push_invoker.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_agent
}

# Dead letters: the service agent publishes to the dead-letter topic and must
# be a subscriber of every subscription it moves messages from.
resource "google_pubsub_topic_iam_member" "pubsub_agent_publishes_dead_letters" {
  project = var.project
  topic   = google_pubsub_topic.topic["dead_letter"].name
  role    = "roles/pubsub.publisher"
  member  = local.pubsub_agent
}

resource "google_pubsub_subscription_iam_member" "pubsub_agent_subscribes" {
  for_each = local.deliveries

  project      = var.project
  subscription = google_pubsub_subscription.function[each.key].name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_agent
}
