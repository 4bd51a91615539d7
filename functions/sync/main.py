"""Cloud Function `sync`: a batch of build ids → builds updated from their backend tasks."""

import functions_framework
from buildsync import logs
from buildsync.edge import events
from buildsync.edge.handlers import handle_batch
from buildsync.edge.runtime import current_runtime
from buildsync.stages.messages import SyncBatch

logs.configure()


@functions_framework.cloud_event
def sync(event):
    events.handle(event, "sync", lambda data: handle_batch(current_runtime(), SyncBatch.from_json(data)))
