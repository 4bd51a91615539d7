"""Cloud Function `planner`: a trigger message → one message per shard to sync."""

import functions_framework
from buildsync import logs
from buildsync.edge import events
from buildsync.edge.handlers import handle_trigger
from buildsync.edge.runtime import current_runtime
from buildsync.stages.messages import SyncTrigger

logs.configure()


@functions_framework.cloud_event
def planner(event):
    events.handle(event, "planner", lambda data: handle_trigger(current_runtime(), SyncTrigger.from_json(data)))
