variable "project" {
  description = "Google Cloud project id that holds the Datastore (Firestore in Datastore mode) database with the Build entities."
  type        = string
}

variable "region" {
  description = "Region of the functions, the Cloud Scheduler job, the KMS key ring and Pub/Sub message storage."
  type        = string
  default     = "us-central1"
}

variable "settings_file" {
  description = <<-EOT
    Path of the SettingsCfg file (proto3 JSON as .json, or text format as .cfg, .textproto, .txtpb, .pbtxt).
    It must be the same file that was given to `deploy/package.sh OUTDIR SETTINGS_FILE`: the zips carry a copy
    (as settings.json or settings.cfg) and a plan fails if the file differs from the packaged copy.
  EOT
  type        = string

  validation {
    condition     = can(regex("\\.(json|cfg|textproto|txtpb|pbtxt)$", var.settings_file))
    error_message = "settings_file must end in .json (proto3 JSON) or .cfg, .textproto, .txtpb, .pbtxt (text format)."
  }
}

variable "package_dir" {
  description = "Directory holding planner.zip, shard.zip, sync.zip and settings.sha256 as written by deploy/package.sh. Empty means <repository>/out."
  type        = string
  default     = ""
}

variable "trigger_topic" {
  description = "Topic the Cloud Scheduler job (or an operator) publishes {} (everything) to; it feeds the planner function."
  type        = string
  default     = "buildsync-trigger"
}

variable "shard_topic" {
  description = "Topic the planner publishes shard jobs to (BUILDSYNC_SHARD_TOPIC); it feeds the shard function."
  type        = string
  default     = "buildsync-shard"
}

variable "sync_topic" {
  description = "Topic the shard function publishes sync batches to (BUILDSYNC_SYNC_TOPIC); it feeds the sync function."
  type        = string
  default     = "buildsync-sync"
}

variable "builds_topic" {
  description = "Topic that build-completion notifications go to (BUILDSYNC_BUILDS_TOPIC), published by sync and planner: a name in project, or a full projects/P/topics/T path of an existing topic (possibly in another project)."
  type        = string
  default     = "buildsync-builds"
}

variable "create_builds_topic" {
  description = "Create the builds topic (when builds_topic is a bare name). Set to false when it already exists; the functions are then only granted publisher on it."
  type        = bool
  default     = true
}

variable "dead_letter_topic" {
  description = "Topic that receives messages the functions failed to handle max_delivery_attempts times."
  type        = string
  default     = "buildsync-dead-letter"
}

variable "max_delivery_attempts" {
  description = "Deliveries of one message to a function before it is moved to the dead-letter topic (Pub/Sub allows 5 to 100)."
  type        = number
  default     = 10

  validation {
    condition     = var.max_delivery_attempts >= 5 && var.max_delivery_attempts <= 100
    error_message = "max_delivery_attempts must be between 5 and 100."
  }
}

variable "ack_deadline_seconds" {
  description = "Push ack deadline, which is also the HTTP timeout of a push (10 to 600 s). Keep it above function_timeout_seconds."
  type        = number
  default     = 600

  validation {
    condition     = var.ack_deadline_seconds >= 10 && var.ack_deadline_seconds <= 600
    error_message = "ack_deadline_seconds must be between 10 and 600."
  }
}

variable "minimum_backoff" {
  description = "Shortest wait before a failed message is pushed again, in whole seconds (0s to 600s)."
  type        = string
  default     = "10s"

  validation {
    condition     = can(regex("^[0-9]+s$", var.minimum_backoff)) && tonumber(trimsuffix(var.minimum_backoff, "s")) <= 600
    error_message = "minimum_backoff must be whole seconds from 0s to 600s, e.g. \"10s\"."
  }
}

variable "maximum_backoff" {
  description = <<-EOT
    Longest wait before a failed message is pushed again, in whole seconds (0s to 600s). With max_delivery_attempts
    it makes the retry budget (attempts x maximum_backoff), which max_event_age_seconds must cover (README, "Backlog").
  EOT
  type        = string
  default     = "60s"

  validation {
    condition     = can(regex("^[0-9]+s$", var.maximum_backoff)) && tonumber(trimsuffix(var.maximum_backoff, "s")) <= 600
    error_message = "maximum_backoff must be whole seconds from 0s to 600s, e.g. \"60s\"."
  }
}

variable "message_retention_duration" {
  description = "How long an unacknowledged message is kept on a function's subscription."
  type        = string
  default     = "86400s"
}

variable "dead_letter_retention_duration" {
  description = "How long dead letters are kept on the dead-letter subscription for inspection or replay."
  type        = string
  default     = "604800s"
}

variable "function_timeout_seconds" {
  description = "Request timeout of each function. Event-driven work should finish within 540 s; keep it below ack_deadline_seconds."
  type        = number
  default     = 540

  validation {
    condition     = var.function_timeout_seconds >= 1 && var.function_timeout_seconds <= 540
    error_message = "function_timeout_seconds must be between 1 and 540."
  }
}

variable "function_memory" {
  description = "Memory of each function instance."
  type        = string
  default     = "512Mi"
}

variable "sync_cpu" {
  description = <<-EOT
    vCPU of each sync instance (the shard gets the default of its memory, the planner planner_cpu). The sync's time goes to
    encoding and decoding entities in the Datastore client, so at the 0.333 vCPU of 512Mi one 1000-build batch takes
    about three times as long; with 1 vCPU it takes under 2 s at 30 ms a Datastore RPC (README "Speed and
    robustness"), and the instance time it bills shrinks as much as its vCPU grows.
  EOT
  type        = string
  default     = "1"

  validation {
    condition     = can(tonumber(var.sync_cpu)) && try(tonumber(var.sync_cpu) > 0 && tonumber(var.sync_cpu) <= 8, false)
    error_message = "sync_cpu must be a number of vCPUs above 0 and at most 8."
  }
}

variable "planner_cpu" {
  description = <<-EOT
    vCPU of the planner instance. Its outbox sweep (re-reading ended builds, making and publishing their
    notifications) is bound by the CPU of one Python process, so after an outage of a completion effect the backlog
    drains about three times as fast at 1 vCPU as at the 0.333 vCPU of 512Mi (docs/capacity.md, "The outbox"); with
    nothing to sweep it runs a few seconds a minute.
  EOT
  type        = string
  default     = "1"

  validation {
    condition     = can(tonumber(var.planner_cpu)) && try(tonumber(var.planner_cpu) > 0 && tonumber(var.planner_cpu) <= 8, false)
    error_message = "planner_cpu must be a number of vCPUs above 0 and at most 8."
  }
}

variable "max_instance_count" {
  description = <<-EOT
    Largest number of instances of each function (one request at a time each). Size sync for the peak: at least
    2 x (sync batches per minute) x (seconds per batch) / 60, so that instances run out only in bursts; a burst's
    429s are retried within the retry budget (max_delivery_attempts x maximum_backoff) instead of dead-lettered
    (README, "Backlog").
  EOT
  type        = map(number)
  default = {
    planner = 2
    shard   = 10
    sync    = 20
  }

  validation {
    condition     = alltrue([for name in ["planner", "shard", "sync"] : contains(keys(var.max_instance_count), name)])
    error_message = "max_instance_count needs an entry for planner, shard and sync."
  }
}

variable "schedule" {
  description = "Cron schedule (in scheduler_time_zone) of the job that publishes {\"version\": 1} to the trigger topic."
  type        = string
  default     = "* * * * *"
}

variable "scheduler_time_zone" {
  description = "Time zone of the schedule."
  type        = string
  default     = "Etc/UTC"
}

variable "scheduler_paused" {
  description = "Create the Cloud Scheduler job paused (no automatic syncs; trigger by hand)."
  type        = bool
  default     = false
}

variable "datastore_database" {
  description = "Firestore-in-Datastore-mode database id that holds the Build entities."
  type        = string
  default     = "(default)"
}

variable "manage_datastore_indexes" {
  description = "Create the composite indexes the queries need. Set to false when they were created with `gcloud datastore indexes create deploy/index.yaml` (or already exist), since creating an existing index fails."
  type        = bool
  default     = true
}

variable "kms_key_ring" {
  description = "Name of the KMS key ring (created in region) for the customer-managed key that encrypts the topics."
  type        = string
  default     = "buildsync"
}

variable "kms_rotation_period" {
  description = "Rotation period of the topic encryption key (at most 90 days)."
  type        = string
  default     = "7776000s"
}

variable "source_bucket" {
  description = "Name of the bucket that holds the function zips. Empty means <project>-buildsync-sources."
  type        = string
  default     = ""
}

variable "max_event_age_seconds" {
  description = <<-EOT
    BUILDSYNC_MAX_EVENT_AGE_SECONDS of the functions, the backlog cut-off: a message published or planned longer ago
    than this is logged and dropped instead of handled, since newer scheduled runs cover the same builds; a backlog so
    cannot make the same builds fetched once per minute it lasted. It must cover the retry budget
    (max_delivery_attempts x maximum_backoff), so that a message that keeps failing is dead-lettered rather than
    dropped (checked when planning).
  EOT
  type        = number
  default     = 600

  validation {
    condition     = var.max_event_age_seconds > 0
    error_message = "max_event_age_seconds must be positive."
  }
}

variable "backend_options" {
  description = <<-EOT
    BUILDSYNC_BACKEND_OPTIONS of the functions: how each task backend is called, keyed by backend target, or "*" for
    every backend (a target's own entry wins key by key). transport: "prpc" (the default, as Buildbucket calls every
    backend) or "grpc" (a backend that serves only native gRPC). identity: "access-token" (the default: an OAuth2
    token of the sync function's service account, scope userinfo.email, with X-Luci-Project) or "id-token" (a backend
    on Cloud Run that checks Google ID tokens). audience: that ID token's audience (default https://<hostname>).
  EOT
  type = map(object({
    transport = optional(string)
    identity  = optional(string)
    audience  = optional(string)
  }))
  default = {}

  validation {
    condition = alltrue([
      for options in values(var.backend_options) :
      contains(["prpc", "grpc"], coalesce(options.transport, "prpc")) &&
      contains(["access-token", "id-token"], coalesce(options.identity, "access-token"))
    ])
    error_message = "backend_options: transport must be prpc or grpc, identity access-token or id-token."
  }
}

variable "sync_backends" {
  description = <<-EOT
    Backend targets (as in the settings) that get a sync push subscription of their own, filtered on the `backend`
    attribute the shard stage sets on every batch. A failing backend then slows and dead-letters only its own
    subscription; the sync function's own subscription takes the batches of every backend not listed.
  EOT
  type        = list(string)
  default     = []

  validation {
    condition = length(distinct([
      for backend in var.sync_backends : trim(replace(lower(backend), "/[^a-z0-9]+/", "-"), "-")
    ])) == length(var.sync_backends)
    error_message = "sync_backends must be distinct, also once lowercased with every run of other characters than a-z and 0-9 made one '-' (the subscription name)."
  }
  validation {
    # Pub/Sub filters are at most 256 bytes; the catch-all one names every listed backend.
    condition     = length(join(" AND ", [for backend in var.sync_backends : "NOT attributes.backend = \"${backend}\""])) <= 256
    error_message = "Too many or too long sync_backends: the catch-all subscription's filter would pass Pub/Sub's 256 bytes."
  }
}

variable "notification_channels" {
  description = "Cloud Monitoring notification channel ids (projects/P/notificationChannels/N) that every buildsync alert notifies."
  type        = list(string)
  default     = []
}

variable "sync_lag_threshold_seconds" {
  description = "Alert when the oldest due build of a backend and project has waited longer than this for its sync."
  type        = number
  default     = 900

  validation {
    condition     = var.sync_lag_threshold_seconds >= 60
    error_message = "sync_lag_threshold_seconds must be at least 60: builds are planned once a minute."
  }
}

variable "permanent_errors_per_10_minutes" {
  description = "Alert when more messages than this are acknowledged with a permanent error in 10 minutes (per stage)."
  type        = number
  default     = 5

  validation {
    condition     = var.permanent_errors_per_10_minutes >= 0
    error_message = "permanent_errors_per_10_minutes must be 0 or more."
  }
}

variable "backend_held_back_minutes" {
  description = "Alert when a backend's breaker has held it back to a probe batch for this many planner runs (minutes) within 10 minutes."
  type        = number
  default     = 5

  validation {
    condition     = var.backend_held_back_minutes >= 1 && var.backend_held_back_minutes <= 10
    error_message = "backend_held_back_minutes must be 1 to 10 (the alert counts over 10 minutes)."
  }
}

variable "fetch_tasks_failure_ratio" {
  description = "Alert when more than this share of a backend's FetchTasks calls fail over 10 minutes (0 to 1)."
  type        = number
  default     = 0.1

  validation {
    condition     = var.fetch_tasks_failure_ratio > 0 && var.fetch_tasks_failure_ratio < 1
    error_message = "fetch_tasks_failure_ratio must be between 0 and 1."
  }
}

variable "sync_oldest_unacked_seconds" {
  description = "Alert when a sync subscription's oldest unacknowledged message is older than this."
  type        = number
  default     = 600

  validation {
    condition     = var.sync_oldest_unacked_seconds >= 60
    error_message = "sync_oldest_unacked_seconds must be at least 60."
  }
}

variable "completion" {
  description = <<-EOT
    BUILDSYNC_COMPLETION: who does an ended build's follow-up work. "standalone": buildsync publishes to builds_topic,
    the callback and the project's topics, and finalizes ResultDB itself. "buildbucket": beside a real Buildbucket,
    buildsync creates the Cloud Tasks Buildbucket's own sync would (README "Choosing the completion mode").
  EOT
  type        = string
  default     = "standalone"

  validation {
    condition     = contains(["standalone", "buildbucket"], var.completion)
    error_message = "completion must be \"standalone\" or \"buildbucket\"."
  }
}

variable "buildbucket_project" {
  description = "buildbucket mode: the Cloud project of Buildbucket's deployment, which holds its Cloud Tasks queues."
  type        = string
  default     = ""
}

variable "buildbucket_location" {
  description = "buildbucket mode: the location of Buildbucket's Cloud Tasks queues (its App Engine region, e.g. us-central1)."
  type        = string
  default     = ""
}

variable "buildbucket_push" {
  description = <<-EOT
    BUILDSYNC_BUILDBUCKET_PUSH: "appengine" (App Engine tasks, as Buildbucket creates them) or "https://HOST" (HTTP
    tasks to HOST with an OIDC token for buildbucket_push_as).
  EOT
  type        = string
  default     = "appengine"

  validation {
    condition     = var.buildbucket_push == "appengine" || can(regex("^https://[A-Za-z0-9.-]+(:[0-9]+)?$", var.buildbucket_push))
    error_message = "buildbucket_push must be \"appengine\" or https://<host>."
  }
}

variable "buildbucket_push_as" {
  description = <<-EOT
    BUILDSYNC_BUILDBUCKET_PUSH_AS: the service account (in buildbucket_project) whose OIDC token HTTP tasks carry;
    Buildbucket must accept it (-tq-authorized-pusher). Required when buildbucket_push is https://HOST.
  EOT
  type        = string
  default     = ""
}

variable "dscache_redis" {
  description = <<-EOT
    BUILDSYNC_DSCACHE_REDIS: host:port of the Redis that Buildbucket's dscache uses. Set, every transaction that
    writes a BuildStatus keeps that cache true (dscache's write protocol); the functions reach it through
    vpc_connector. Empty: a status Buildbucket has cached stays until it expires (24 hours).
  EOT
  type        = string
  default     = ""
}

variable "vpc_connector" {
  description = "A Serverless VPC Access connector (projects/P/locations/L/connectors/C) through which the functions reach dscache_redis; empty for none."
  type        = string
  default     = ""
}
