# Starts a full sync every minute: {} names no backend and no
# project, so the planner plans every full-mode backend and every project with
# incomplete builds. Cloud Scheduler publishes as its service agent, whose
# role already allows publishing.

resource "google_cloud_scheduler_job" "trigger" {
  project     = var.project
  region      = var.region
  name        = "buildsync-trigger"
  description = "Publishes a buildsync trigger to ${var.trigger_topic}."
  schedule    = var.schedule
  time_zone   = var.scheduler_time_zone
  paused      = var.scheduler_paused

  pubsub_target {
    topic_name = google_pubsub_topic.topic["trigger"].id
    data       = base64encode("{}")
  }
}
