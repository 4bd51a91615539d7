"""The three stages and what drives them: plan, shard, sync, and the in-process pipeline.

`messages` are the stage messages (identity only); `admission` drops or
rejects a message before any work; `planner` turns a trigger into shard jobs;
`shard` runs one shard's due-builds query and cuts it into batches; `sync`
syncs one batch in 25-build transactions; `pipeline` runs all three in one
process; `report` counts what a sync did; `status` is what `buildsync status`
shows.

May import `ending`, `remote`, `store`, `rules` and the base modules; never
decides acknowledge or retry (the edge does).
"""
