# Composite indexes for the Build queries (kind Build, default namespace, no
# ancestor), one resource over local.datastore_indexes. deploy/index.yaml
# holds the same indexes for `gcloud datastore indexes create`; use one or
# the other (manage_datastore_indexes = false when gcloud made them).
#
# Query scope COLLECTION_GROUP is Datastore's "ancestor: none".

locals {
  # Each index's properties in order, all ascending.
  datastore_indexes = {
    # Shard query (buildsync.stages.shard.due_builds_query), keys only, and the
    # shard's sync-lag query (projection on next_backend_sync_time, limit 1):
    #   incomplete = true AND backend_target = B AND project = P
    #   AND L < next_backend_sync_time < U
    build_due_for_sync = ["incomplete", "backend_target", "project", "next_backend_sync_time"]

    # Planner query (buildsync.stages.planner.projects_with_incomplete_builds):
    #   projection project, distinct on project,
    #   incomplete = true AND backend_target = B
    # and `buildsync status` (buildsync.stages.status): projection and distinct
    # on backend_target, project; incomplete = true. The status also reads
    # build_due_for_sync: the same equalities, projection on the sync time.
    build_projects_with_incomplete = ["incomplete", "backend_target", "project"]
  }
}

resource "google_firestore_index" "build" {
  for_each = var.manage_datastore_indexes ? local.datastore_indexes : {}

  project     = var.project
  database    = var.datastore_database
  collection  = "Build"
  api_scope   = "DATASTORE_MODE_API"
  query_scope = "COLLECTION_GROUP"

  dynamic "fields" {
    for_each = each.value
    content {
      field_path = fields.value
      order      = "ASCENDING"
    }
  }
}

# The planner's notification outbox sweep (kind BuildsyncNotification: an
# inequality filter on next_attempt sorted by it, and one on created sorted by
# it for entries written before next_attempt) is served by the built-in
# single-property indexes: no composite index.
