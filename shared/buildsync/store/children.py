"""The child entities a build's status change rewrites, inside the build's transaction.

BuildStatus mirrors every new status, and a build without one saves nothing
(docs/rules.md "A missing BuildStatus entity"). A build that ended also has its steps
ended (docs/rules.md "When a build ends"; steps.py decides), so its
BuildSteps is read too, in the same lookup as the BuildStatus entities: one
round trip for the whole group, and one more entity read only per build that
ended. A build without a BuildSteps gets an empty one, as Buildbucket's save
of the steps it read as missing leaves; a BuildSteps whose steps had all
ended already is not rewritten (docs/rules.md "Where buildsync differs").
"""

from __future__ import annotations

import dataclasses

from google.cloud import datastore

from buildsync import logs
from buildsync.proto import buildbucket_pb2 as pb
from buildsync.rules import steps
from buildsync.rules.status_rules import is_ended
from buildsync.store import go_schema, model


@dataclasses.dataclass(frozen=True)
class ChangedChildren:
    """The children to write, and the builds whose status change must not be saved at all.

    A build without a BuildStatus entity cannot record its new status:
    Buildbucket's status updater fails with NotFound there and nothing of
    that build is saved (build_update.NO_BUILD_STATUS), so none of its
    children is among `entities` either.
    """

    entities: list[datastore.Entity]
    missing_status: frozenset[int]


def changed_children(client: datastore.Client, changed: dict[int, pb.Build]) -> ChangedChildren:
    """The BuildStatus and BuildSteps entities to write for the builds whose status changed.

    `changed` maps build ids to their new Build protos. A missing BuildSteps
    means the build has no steps. Steps that cannot be decoded are logged and
    kept as they are: the build still ends, as in Buildbucket.
    """
    if not changed:
        return ChangedChildren([], frozenset())
    # Build by build, in the order of `changed`: the group's one lock order (sync.py).
    keys = []
    for build_id, build in changed.items():
        keys.append(model.status_key(client, build_id))
        if is_ended(build.status):
            keys.append(model.steps_key(client, build_id))
    found = model.lookup(client, keys)
    with_status = {model.build_id_of(e.key) for e in found.values() if e.key.kind == model.BUILD_STATUS_KIND}
    to_put = []
    for build_id, build in changed.items():
        if build_id not in with_status:
            continue
        status = found[model.status_key(client, build_id).flat_path]
        status["status"] = build.status
        go_schema.complete(status, go_schema.BUILD_STATUS, ("status",))
        to_put.append(status)
        if not is_ended(build.status):
            continue
        stored_steps = found.get(model.steps_key(client, build_id).flat_path)
        if stored_steps is None:
            to_put.append(_empty_steps(client, build_id))
        elif _end_steps(stored_steps, build):
            to_put.append(stored_steps)
    return ChangedChildren(to_put, frozenset(changed) - with_status)


def _empty_steps(client: datastore.Client, build_id: int) -> datastore.Entity:
    """The BuildSteps Buildbucket writes for an ended build that had none: Go's zero values."""
    entity = datastore.Entity(model.steps_key(client, build_id))
    go_schema.complete(entity, go_schema.BUILD_STEPS, ())
    return entity


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
