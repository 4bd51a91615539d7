"""Pure decisions: what a fetched task does to a build, and what a valid settings file is.

`sync_time` owns the `next_backend_sync_time` key and shard ranges; `task_rules`
validates fetched tasks and the FetchTasks protocol; `go_text` writes a message
as Go's `String()` does, the measure of the details limit; `status_rules` derives a
build's status from its task and what ending sets; `build_update` applies one
task to one build and names the outcome; `legacy` and `steps` keep the v1
properties, the lease and the steps as Buildbucket does; `settings` parses and
validates Buildbucket's settings.cfg (its one file read is `load_settings`);
`hosts` says which hosts may be called (a bare host[:port], and for ResultDB
only the settings' host);
`custom_metrics` decides which custom builder metrics a build counts towards,
with predicates run in `build_cel`, Buildbucket's CEL environment.

No Datastore, network or clock here: values in, decisions out. May import only
the base modules (`errors`, `logs`, `metrics`, `env`) and `proto`.
"""
