# buildsync: a sync job of three Cloud Functions (2nd gen) chained by Pub/Sub.
#
#   Cloud Scheduler --{"version":1}--> trigger topic --push--> planner
#   planner  --> shard topic --push--> shard
#   shard    --> sync topic  --push--> sync
#   sync, planner --> builds topic (build-completion notifications)
#   every push subscription --(max_delivery_attempts)--> dead-letter topic --> dead-letter subscription (pull)
#
# The functions have no event_trigger: Eventarc-owned subscriptions offer no
# dead-letter policy, backoff or ack deadline. The push subscriptions are
# declared here instead (pubsub.tf), authenticated with an OIDC token of the
# push-invoker service account, which alone may invoke the functions.

locals {
  package_dir   = var.package_dir != "" ? var.package_dir : "${path.module}/../out"
  source_bucket = var.source_bucket != "" ? var.source_bucket : "${var.project}-buildsync-sources"

  # package.sh stores the settings file in every zip under one of two names,
  # chosen by the format its suffix names; the functions read it from the
  # directory Cloud Functions unpacks the source into.
  settings_name = endswith(var.settings_file, ".json") ? "settings.json" : "settings.cfg"
  settings_path = "/workspace/${local.settings_name}"

  # Pub/Sub service agent: pushes with OIDC tokens, moves dead letters and
  # encrypts messages with the customer-managed key.
  pubsub_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"

  # builds_topic may name a topic of another project by its full path.
  builds_topic_external = startswith(var.builds_topic, "projects/")
  create_builds_topic   = var.create_builds_topic && !local.builds_topic_external
  builds_topic_id = (
    local.create_builds_topic ? google_pubsub_topic.builds[0].id :
    local.builds_topic_external ? var.builds_topic : "projects/${var.project}/topics/${var.builds_topic}"
  )

  labels = {
    app = "buildsync"
  }
}
