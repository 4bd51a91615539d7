"""Cloud Function `sync`: a batch of build ids → builds updated from their backend tasks."""

import functions_framework
from buildsync import events, logs
from buildsync.handlers import handle_batch
from buildsync.messages import SyncBatch
from buildsync.runtime import current_runtime

logs.configure()


@functions_framework.cloud_event
def sync(event):
    events.handle(event, "sync", lambda data: handle_batch(current_runtime(), SyncBatch.from_json(data)))
