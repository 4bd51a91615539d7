"""The child entities a build's status change rewrites, inside the build's transaction.

BuildStatus mirrors every new status. A build that ended also has its steps
ended (docs/rules.md "When a build ends"; steps.py decides), so its
BuildSteps is read too, in the same lookup as the BuildStatus entities: one
round trip for the whole group, and one more entity read only per build that
ended. A BuildSteps whose steps had all ended already is not rewritten, and
a build without one does not get one.
"""

from __future__ import annotations

from google.cloud import datastore

from buildsync import logs
from buildsync.proto import buildbucket_pb2 as pb
from buildsync.rules import steps
from buildsync.rules.status_rules import is_ended
from buildsync.store import model


def changed_children(client: datastore.Client, changed: dict[int, pb.Build]) -> list[datastore.Entity]:
    """The BuildStatus and BuildSteps entities to write for the builds whose status changed.

    `changed` maps build ids to their new Build protos. A missing BuildStatus
    is logged and not created; a missing BuildSteps means the build has no
    steps. Steps that cannot be decoded are logged and kept as they are: the
    build still ends, as in Buildbucket.
    """
    if not changed:
        return []
    # Build by build, in the order of `changed`: the group's one lock order (sync.py).
    keys = []
    for build_id, build in changed.items():
        keys.append(model.status_key(client, build_id))
        if is_ended(build.status):
            keys.append(model.steps_key(client, build_id))
    to_put, statuses_found = [], set()
    for entity in model.lookup(client, keys).values():
        build_id = model.build_id_of(entity.key)
        build = changed[build_id]
        if entity.key.kind == model.BUILD_STATUS_KIND:
            entity["status"] = build.status
            statuses_found.add(build_id)
            to_put.append(entity)
        elif _end_steps(entity, build):
            to_put.append(entity)
    missing = set(changed) - statuses_found
    if missing:
        logs.event("WARNING", "BuildStatus entity missing; not created", build_ids=sorted(missing))
    return to_put


def _end_steps(entity: datastore.Entity, build: pb.Build) -> bool:
    """Ends the incomplete steps stored in `entity`; returns whether it needs writing."""
    try:
        container = model.read_steps(entity)
    except steps.StepsFormatError as error:
        build_id = model.build_id_of(entity.key)
        logs.event("ERROR", "BuildSteps cannot be decoded; steps left as stored", build_id=build_id, error=str(error))
        return False
    if not steps.end_incomplete_steps(container, build.update_time):
        return False
    model.write_steps(entity, container)
    return True
