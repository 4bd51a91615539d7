output "trigger_topic" {
  description = "Publish {\"version\": 1} (optionally with backend and project) here to start a sync."
  value       = google_pubsub_topic.topic["trigger"].name
}

output "shard_topic" {
  description = "Topic of the planner's shard jobs (BUILDSYNC_SHARD_TOPIC)."
  value       = google_pubsub_topic.topic["shard"].name
}

output "sync_topic" {
  description = "Topic of the shard function's sync batches (BUILDSYNC_SYNC_TOPIC)."
  value       = google_pubsub_topic.topic["sync"].name
}

output "builds_topic" {
  description = "Topic of the build-completion notifications (BUILDSYNC_BUILDS_TOPIC), as a full path."
  value       = local.builds_topic_id
}

output "dead_letter_topic" {
  description = "Topic that receives undeliverable messages."
  value       = google_pubsub_topic.topic["dead_letter"].name
}

output "dead_letter_subscription" {
  description = "Pull subscription on the dead-letter topic: `gcloud pubsub subscriptions pull` it to inspect dead letters."
  value       = google_pubsub_subscription.dead_letter.name
}

output "function_uris" {
  description = "Cloud Run URIs of the functions (internal ingress; only the push invoker may call them)."
  value       = { for name, function in google_cloudfunctions2_function.function : name => function.service_config[0].uri }
}

output "service_accounts" {
  description = "Runtime service accounts of the functions and the push invoker."
  value = merge(
    { for name, account in google_service_account.function : name => account.email },
    {
      push_invoker = google_service_account.push_invoker.email
      build        = google_service_account.build.email
    },
  )
}

output "callback_publishers" {
  description = "Members that publish builds' callbacks and projects' builds_notification_topics: grant each roles/pubsub.publisher on every such topic in other projects (deploy/README.md \"Callbacks to other projects' topics\"). buildsync never publishes to its own topics as a callback."
  value       = [for name in ["planner", "sync"] : google_service_account.function[name].member]
}

output "source_bucket" {
  description = "Bucket holding the function zips."
  value       = google_storage_bucket.source.name
}
