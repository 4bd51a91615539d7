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

  # Topics by role, with their names (google_pubsub_topic.topic); the builds
  # topic is apart since it is optional (google_pubsub_topic.builds).
  topics = {
    trigger     = var.trigger_topic
    shard       = var.shard_topic
    sync        = var.sync_topic
    dead_letter = var.dead_letter_topic
  }

  # The three functions, one entry each: what the function does, the topic
  # that feeds it (through its push subscription), the filter of that
  # subscription, its one Datastore role, and the topics it publishes to, by
  # the environment variable that tells it. Every per-function resource (zip
  # object, function, service account, grants, push subscription) is one
  # resource with for_each over this map; the key is the entry point, the zip
  # name (KEY.zip) and the suffix of every name (buildsync-KEY).
  functions = {
    planner = {
      description    = "buildsync planner: one trigger in, one shard job per (backend, project, shard) out."
      topic          = google_pubsub_topic.topic["trigger"].id
      filter         = ""
      datastore_role = "roles/datastore.user" # reads builds, deletes sent outbox entries
      cpu            = var.planner_cpu        # its outbox sweep is CPU-bound
      publishes = {
        BUILDSYNC_SHARD_TOPIC  = google_pubsub_topic.topic["shard"].id
        BUILDSYNC_BUILDS_TOPIC = local.builds_topic_id
      }
    }
    shard = {
      description    = "buildsync shard: one shard job in, batches of due build ids out."
      topic          = google_pubsub_topic.topic["shard"].id
      filter         = ""
      datastore_role = "roles/datastore.viewer" # queries only
      cpu            = null
      publishes = {
        BUILDSYNC_SYNC_TOPIC = google_pubsub_topic.topic["sync"].id
      }
    }
    sync = {
      description = "buildsync sync: one batch of build ids in, builds updated from their backend tasks."
      topic       = google_pubsub_topic.topic["sync"].id
      # Batches of the backends without a subscription of their own.
      filter         = local.sync_other_backends_filter
      datastore_role = "roles/datastore.user" # updates builds in transactions
      cpu            = var.sync_cpu           # CPU-bound in the Datastore client
      publishes = {
        BUILDSYNC_BUILDS_TOPIC = local.builds_topic_id
      }
    }
  }

  # Every push subscription: one per function (on the topic that feeds it,
  # with its filter), and one more on the sync topic per backend of
  # var.sync_backends, filtered on the `backend` attribute the shard stage
  # sets, named buildsync-sync-SLUG. Keyed by the name after "buildsync-".
  subscriptions = merge(
    { for name, function in local.functions : name => { function = name, filter = function.filter } },
    { for backend, slug in local.sync_backend_slugs : "sync-${slug}" => { function = "sync", filter = "attributes.backend = \"${backend}\"" } },
  )
  # Every subscription that delivers a topic's messages somewhere, all retried
  # and dead-lettered alike by the one resource over this map
  # (google_pubsub_subscription.function): the push subscriptions above, and
  # the BigQuery export's when it is on (local.bigquery_subscription). `push`
  # holds the function a push goes to and `bigquery` a marker for the export,
  # each a list of at most one item, for the resource's dynamic blocks.
  deliveries = merge(
    { for name, subscription in local.subscriptions : name => { topic = local.functions[subscription.function].topic, filter = subscription.filter, ack_deadline_seconds = var.ack_deadline_seconds, push = [subscription.function], bigquery = [] } },
    local.bigquery_enabled ? local.bigquery_subscription : {},
  )
  sync_backend_slugs         = { for backend in var.sync_backends : backend => trim(replace(lower(backend), "/[^a-z0-9]+/", "-"), "-") }
  sync_other_backends_filter = join(" AND ", [for backend in var.sync_backends : "NOT attributes.backend = \"${backend}\""])

  # The longest a failing message is retried before it is dead-lettered.
  retry_budget_seconds = var.max_delivery_attempts * tonumber(trimsuffix(var.maximum_backoff, "s"))

  # Environment variables every function gets; each adds its publishes map.
  function_env = {
    GOOGLE_CLOUD_PROJECT            = var.project
    BUILDSYNC_SETTINGS              = local.settings_path
    BUILDSYNC_MAX_EVENT_AGE_SECONDS = var.max_event_age_seconds
    BUILDSYNC_BACKEND_OPTIONS       = jsonencode(var.backend_options)
    LOG_EXECUTION_ID                = "true"
    # Who does an ended build's follow-up work (handoff.tf); empty means the default.
    BUILDSYNC_COMPLETION          = var.completion
    BUILDSYNC_BUILDBUCKET_QUEUES  = var.completion == "buildbucket" ? local.buildbucket_queues : ""
    BUILDSYNC_BUILDBUCKET_PUSH    = var.buildbucket_push
    BUILDSYNC_BUILDBUCKET_PUSH_AS = var.buildbucket_push_as
    BUILDSYNC_DSCACHE_REDIS       = var.dscache_redis
  }

  # One publisher grant per (function, topic it publishes to), keyed
  # "FUNCTION/VARIABLE", e.g. "planner/BUILDSYNC_SHARD_TOPIC".
  publisher_grants = merge([
    for name, function in local.functions : {
      for variable, topic in function.publishes : "${name}/${variable}" => { function = name, topic = topic }
    }
  ]...)
}
