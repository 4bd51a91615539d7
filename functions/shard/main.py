"""Cloud Function `shard`: one shard's job → its due builds, published in batches of 1000."""

import functions_framework
from buildsync import logs
from buildsync.edge import events
from buildsync.edge.handlers import handle_job
from buildsync.edge.runtime import current_runtime
from buildsync.stages.messages import ShardJob

logs.configure()


@functions_framework.cloud_event
def shard(event):
    events.handle(event, "shard", lambda data: handle_job(current_runtime(), ShardJob.from_json(data)))
