# buildbucket completion mode (var.completion = "buildbucket"): the planner
# (its outbox sweep) and the sync create the tasks Buildbucket's own sync
# would enqueue in Buildbucket's Cloud Tasks queues, in Buildbucket's project
# and location (docs/handoff.md "Buildbucket's task queues"). Each of the two
# gets roles/cloudtasks.enqueuer on each of the queues, and nothing else there.
# In the HTTP form (var.buildbucket_push = "https://HOST") Cloud Tasks signs
# each task's OIDC token as var.buildbucket_push_as, so the two may act as
# that account (roles/iam.serviceAccountUser on it alone); Buildbucket must
# accept pushes from it (-tq-authorized-pusher, deploy/README.md).

locals {
  buildbucket_completion = var.completion == "buildbucket"
  buildbucket_queues     = "projects/${var.buildbucket_project}/locations/${var.buildbucket_location}"

  # One grant per (function, queue), keyed "FUNCTION/QUEUE"; the queues are
  # the ones ending a build enqueues into (ending/handoff.py QUEUES, held in
  # step by tests/test_deploy.py).
  enqueuer_grants = {
    "planner/end-turboci-stage-attempt" = { function = "planner", queue = "end-turboci-stage-attempt" }
    "planner/export-bigquery-go"        = { function = "planner", queue = "export-bigquery-go" }
    "planner/finalize-resultdb-go"      = { function = "planner", queue = "finalize-resultdb-go" }
    "planner/notify-pubsub-go"          = { function = "planner", queue = "notify-pubsub-go" }
    "planner/pop-pending-builds"        = { function = "planner", queue = "pop-pending-builds" }
    "sync/end-turboci-stage-attempt"    = { function = "sync", queue = "end-turboci-stage-attempt" }
    "sync/export-bigquery-go"           = { function = "sync", queue = "export-bigquery-go" }
    "sync/finalize-resultdb-go"         = { function = "sync", queue = "finalize-resultdb-go" }
    "sync/notify-pubsub-go"             = { function = "sync", queue = "notify-pubsub-go" }
    "sync/pop-pending-builds"           = { function = "sync", queue = "pop-pending-builds" }
  }
  push_as_grants = {
    planner = { function = "planner" }
    sync    = { function = "sync" }
  }
}

resource "google_cloud_tasks_queue_iam_member" "enqueuer" {
  for_each = var.completion == "buildbucket" ? local.enqueuer_grants : {}

  project  = var.buildbucket_project
  location = var.buildbucket_location
  name     = each.value.queue
  role     = "roles/cloudtasks.enqueuer"
  member   = google_service_account.function[each.value.function].member

  lifecycle {
    precondition {
      condition     = var.buildbucket_project != "" && var.buildbucket_location != ""
      error_message = "completion = \"buildbucket\" needs buildbucket_project and buildbucket_location: where Buildbucket's queues are."
    }
  }
}

resource "google_service_account_iam_member" "push_as" {
  for_each = var.buildbucket_push_as != "" ? local.push_as_grants : {}

  service_account_id = "projects/${var.buildbucket_project}/serviceAccounts/${var.buildbucket_push_as}"
  role               = "roles/iam.serviceAccountUser"
  member             = google_service_account.function[each.value.function].member
}
