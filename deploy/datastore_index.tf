# Composite indexes for the Build queries (kind Build, default namespace, no
# ancestor). deploy/index.yaml holds the same indexes for
# `gcloud datastore indexes create`; use one or the other
# (manage_datastore_indexes = false when gcloud made them).
#
# Query scope COLLECTION_GROUP is Datastore's "ancestor: none".

# Shard query (buildsync.shard.due_builds_query), keys only:
#   incomplete = true AND backend_target = B AND project = P
#   AND L < next_backend_sync_time < U
resource "google_firestore_index" "build_due_for_sync" {
  count = var.manage_datastore_indexes ? 1 : 0

  project     = var.project
  database    = var.datastore_database
  collection  = "Build"
  api_scope   = "DATASTORE_MODE_API"
  query_scope = "COLLECTION_GROUP"

  fields {
    field_path = "incomplete"
    order      = "ASCENDING"
  }
  fields {
    field_path = "backend_target"
    order      = "ASCENDING"
  }
  fields {
    field_path = "project"
    order      = "ASCENDING"
  }
  fields {
    field_path = "next_backend_sync_time"
    order      = "ASCENDING"
  }
}

# Planner query (buildsync.planner.projects_with_incomplete_builds):
#   projection project, distinct on project,
#   incomplete = true AND backend_target = B
resource "google_firestore_index" "build_projects_with_incomplete" {
  count = var.manage_datastore_indexes ? 1 : 0

  project     = var.project
  database    = var.datastore_database
  collection  = "Build"
  api_scope   = "DATASTORE_MODE_API"
  query_scope = "COLLECTION_GROUP"

  fields {
    field_path = "incomplete"
    order      = "ASCENDING"
  }
  fields {
    field_path = "backend_target"
    order      = "ASCENDING"
  }
  fields {
    field_path = "project"
    order      = "ASCENDING"
  }
}

# The planner's notification outbox sweep (kind BuildsyncNotification, one
# inequality filter on created, no sort) is served by the built-in
# single-property index: no composite index.
