output "trigger_topic" {
  description = "Publish {\"version\": 1} (optionally with backend and project) here to start a sync."
  value       = google_pubsub_topic.trigger.name
}

output "shard_topic" {
  description = "Topic of the planner's shard jobs (BUILDSYNC_SHARD_TOPIC)."
  value       = google_pubsub_topic.shard.name
}

output "sync_topic" {
  description = "Topic of the shard function's sync batches (BUILDSYNC_SYNC_TOPIC)."
  value       = google_pubsub_topic.sync.name
}

output "builds_topic" {
  description = "Topic of the build-completion notifications (BUILDSYNC_BUILDS_TOPIC), as a full path."
  value       = local.builds_topic_id
}

output "dead_letter_topic" {
  description = "Topic that receives undeliverable messages."
  value       = google_pubsub_topic.dead_letter.name
}

output "dead_letter_subscription" {
  description = "Pull subscription on the dead-letter topic: `gcloud pubsub subscriptions pull` it to inspect dead letters."
  value       = google_pubsub_subscription.dead_letter.name
}

output "function_uris" {
  description = "Cloud Run URIs of the functions (internal ingress; only the push invoker may call them)."
  value = {
    planner = google_cloudfunctions2_function.planner.service_config[0].uri
    shard   = google_cloudfunctions2_function.shard.service_config[0].uri
    sync    = google_cloudfunctions2_function.sync.service_config[0].uri
  }
}

output "service_accounts" {
  description = "Runtime service accounts of the functions and the push invoker."
  value = {
    planner      = google_service_account.planner.email
    shard        = google_service_account.shard.email
    sync         = google_service_account.sync.email
    push_invoker = google_service_account.push_invoker.email
    build        = google_service_account.build.email
  }
}

output "source_bucket" {
  description = "Bucket holding the function zips."
  value       = google_storage_bucket.source.name
}
