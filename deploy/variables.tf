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
  description = "Shortest wait before a failed message is pushed again (0s to 600s)."
  type        = string
  default     = "10s"
}

variable "maximum_backoff" {
  description = "Longest wait before a failed message is pushed again (0s to 600s)."
  type        = string
  default     = "600s"
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

variable "max_instance_count" {
  description = "Largest number of instances of each function."
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
    BUILDSYNC_MAX_EVENT_AGE_SECONDS of the functions: an event published longer ago than this is logged and dropped
    instead of handled (newer scheduled runs cover the same builds). Keep it longer than the redelivery budget
    (max_delivery_attempts with backoff up to maximum_backoff), or messages are dropped before they are dead-lettered.
  EOT
  type        = number
  default     = 3600

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
