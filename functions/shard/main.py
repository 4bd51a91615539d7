"""Cloud Function `shard`: one shard's job → its due builds, published in batches of 1000."""

import functions_framework
from buildsync import events, logs
from buildsync.handlers import handle_job
from buildsync.messages import ShardJob
from buildsync.runtime import current_runtime

logs.configure()


@functions_framework.cloud_event
def shard(event):
    events.handle(event, "shard", lambda data: handle_job(current_runtime(), ShardJob.from_json(data)))
