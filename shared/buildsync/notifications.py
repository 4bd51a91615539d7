"""Build-completion notifications, delivered at least once through an outbox.

The sync writes an outbox entity beside each build it ends, in the same
transaction (a child of the Build, so the transaction still touches one entity
group per build). After the commit it publishes the notifications and deletes
their outbox entities. If the process dies in between, or the publish fails,
the planner's sweep publishes what was left behind. Subscribers de-duplicate
by build id.
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING

from google.cloud import datastore

from buildsync import logs, model
from buildsync.errors import SyncError, as_sync_error
from buildsync.messages import CompletedBuild
from buildsync.publishing import publish_all

if TYPE_CHECKING:  # the client is the caller's; the sync stage and CLI never load it
    from google.cloud import pubsub_v1

OUTBOX_KIND = "BuildsyncNotification"

# A notification younger than this may still be published by the sync that
# wrote it; the sweep leaves it alone to avoid most double sends.
SWEEP_MIN_AGE = datetime.timedelta(minutes=1)

# At most this many leftovers per sweep: one publish request holds 1000.
SWEEP_LIMIT = 1000


def outbox_entity(client: datastore.Client, build: CompletedBuild, now: datetime.datetime) -> datastore.Entity:
    key = client.key(model.BUILD_KIND, build.build_id, OUTBOX_KIND, 1)
    entity = datastore.Entity(key, exclude_from_indexes=("payload",))
    entity.update({"payload": build.to_json(), "created": now})
    return entity


def publish(
    client: datastore.Client, publisher: pubsub_v1.PublisherClient, topic: str, builds: list[CompletedBuild]
) -> None:
    """Publishes `builds`, then clears their outbox entries.

    Raises TransientError or PermanentError when either step fails; the
    entries left in the outbox are then the sweep's.
    """
    if not builds:
        return
    publish_all(publisher, topic, [(b.to_json(), {"build_id": str(b.build_id)}) for b in builds])
    try:
        client.delete_multi([client.key(model.BUILD_KIND, b.build_id, OUTBOX_KIND, 1) for b in builds])
    except Exception as error:  # sorted by the one table in errors.py
        raise as_sync_error(error, f"clearing {len(builds)} published outbox entries") from error


def sweep(
    client: datastore.Client,
    publisher: pubsub_v1.PublisherClient,
    topic: str,
    now: datetime.datetime,
    min_age: datetime.timedelta = SWEEP_MIN_AGE,
) -> int:
    """Publishes notifications older than `min_age`; returns how many.

    Raises TransientError when the outbox cannot be read or the publish fails,
    so the planner's trigger is retried.
    """
    query = client.query(kind=OUTBOX_KIND)
    query.add_filter(filter=datastore.query.PropertyFilter("created", "<", now - min_age))
    try:
        entities = list(query.fetch(limit=SWEEP_LIMIT))
    except Exception as error:  # sorted by the one table in errors.py
        raise as_sync_error(error, "reading the notification outbox") from error
    builds = []
    for entity in entities:
        try:
            builds.append(CompletedBuild.from_json(entity["payload"]))
        except SyncError as error:
            logs.event("ERROR", "dropping an unreadable outbox entry", key=str(entity.key.flat_path), error=str(error))
            try:
                client.delete(entity.key)
            except Exception as delete_error:  # sorted by the one table in errors.py
                raise as_sync_error(delete_error, "deleting an unreadable outbox entry") from delete_error
    publish(client, publisher, topic, builds)
    if builds:
        logs.event("INFO", "swept leftover notifications", builds=len(builds))
    return len(builds)
