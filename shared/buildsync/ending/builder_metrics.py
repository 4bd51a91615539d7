"""Custom builder metrics recorded on a Build in the transaction that changes its status.

As Buildbucket's status update does (docs/rules.md "Custom builder metrics"):
a build whose change evaluates its custom metrics is read as the API returns
it, with its new status but the details (infra, properties, steps) as they
were stored before this transaction, then evaluated (rules/custom_metrics.py),
and the matching names are written on its Build entity, committed with the
rest. Only those builds cost a read: one lookup for the group, one more if an
output is chunked. A build whose metrics or details do not decode, or whose
predicates fail, is logged and still changes status, as in Buildbucket.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from google.cloud import datastore

from buildsync import logs
from buildsync.ending import build_reader
from buildsync.rules import custom_metrics
from buildsync.store import model


def record(client: datastore.Client, changed: Mapping[int, datastore.Entity]) -> None:
    """Writes the builder metric names into the Build entities of `changed` that need them.

    `changed` maps build ids to Build entities already saved with their new
    status (model.save_build), in the group's lock order. Must run inside
    the transaction that writes them. Raises TransientError or PermanentError
    (errors.py) when Datastore fails; the transaction's retry handles those.
    """
    due = {}
    for build_id, entity in changed.items():
        try:
            metrics = model.read_custom_metrics(entity)
        except model.EntityDecodeError as error:
            logs.event("ERROR", "custom metrics cannot be read; none evaluated", build_id=build_id, error=str(error))
            continue
        if custom_metrics.evaluated_on_status_change(entity[model.STATUS_V2], metrics):
            due[build_id] = metrics
    if not due:
        return
    stored = build_reader.read_builds(client, list(due))
    for build_id, metrics in due.items():
        entity = changed[build_id]
        try:
            build = build_reader.api_build(dataclasses.replace(stored[build_id], entity=entity))
        except model.EntityDecodeError as error:
            logs.event(
                "ERROR",
                "build details cannot be read; custom metrics not evaluated",
                build_id=build_id,
                error=str(error),
            )
            continue
        evaluation = custom_metrics.evaluate(build, metrics, model.builder_metric_names(entity))
        if evaluation.error:
            logs.event("ERROR", "custom builder metrics evaluation failed", build_id=build_id, error=evaluation.error)
        model.write_builder_metric_names(entity, evaluation.names)
