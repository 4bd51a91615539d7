"""Cloud Function `planner`: a trigger message → one message per shard to sync."""

import functions_framework
from buildsync import events, logs
from buildsync.handlers import handle_trigger
from buildsync.messages import SyncTrigger
from buildsync.runtime import current_runtime

logs.configure()


@functions_framework.cloud_event
def planner(event):
    events.handle(event, "planner", lambda data: handle_trigger(current_runtime(), SyncTrigger.from_json(data)))
