"""Composite indexes: the queries the code builds, rebuilt here, are each covered, in Terraform and index.yaml alike."""

from __future__ import annotations

import datetime
import re

import pytest
from buildsync.stages import planner, shard, status
from buildsync.stages.messages import ShardJob
from buildsync.store import outbox
from google.auth.credentials import AnonymousCredentials
from google.cloud import datastore

from tests.deploy.terraform import CONFIG, DEPLOY, block, default, resources


class QueryRecordingClient(datastore.Client):
    """A client that records the queries the code builds and answers them with nothing."""

    def __init__(self):
        super().__init__(project="buildsync-test", credentials=AnonymousCredentials())
        self.queries = []

    def query(self, **kwargs):
        query = super().query(**kwargs)
        query.fetch = lambda *args, **kw: iter(())
        self.queries.append(query)
        return query


def code_queries() -> dict[str, datastore.Query]:
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    client = QueryRecordingClient()
    job = ShardJob("swarming://x", "chromium", 0, 1, now)
    queries = {
        "shard": shard.due_builds_query(client, job),
        "sync_lag": shard.oldest_due_query(client, job),
        "stray": shard.stray_query(client, job, "swarming://x--chromium--0--~", None),
    }
    for name, run in (
        ("status_pairs", lambda: status.pairs_with_incomplete_builds(client)),
        ("status_times", lambda: status.sync_times(client, "swarming://x", "chromium")),
    ):
        del client.queries[:]
        run()
        (queries[name],) = client.queries
    del client.queries[:]
    planner.projects_with_incomplete_builds(client, "swarming://x")
    outbox.due(client, now, shard=0)
    by_kind: dict[str, list[datastore.Query]] = {}
    for query in client.queries:
        by_kind.setdefault(query.kind, []).append(query)
    (queries["planner"],) = by_kind.pop("Build")
    queries["outbox_created"], queries["outbox_next_attempt"], queries["outbox"] = by_kind.pop(outbox.OUTBOX_KIND)
    assert not by_kind, f"queries this test does not know: {by_kind}"
    return queries


_INEQUALITIES = {"<", "<=", ">", ">=", "!="}


def needed_index(query: datastore.Query) -> tuple[str, frozenset[str], tuple[str, ...]] | None:
    """The composite index `query` needs as (kind, equality properties, ordered tail), or None.

    Datastore serves from built-in indexes a query on one property at most, and
    a query of equality filters only (by merge join) without projection or
    sort order; any other query needs a composite index whose properties are
    the equality properties (in any order), then the inequality property, the
    sort orders and the remaining projected properties.
    """
    equality = frozenset(f.property_name for f in query.filters if f.operator == "=")
    inequality = [f.property_name for f in query.filters if f.operator in _INEQUALITIES]
    assert all(f.operator in _INEQUALITIES | {"="} for f in query.filters), query.filters
    orders = [order.lstrip("-") for order in query.order]
    projected = [p for p in (*query.projection, *query.distinct_on) if p != "__key__"]
    tail: list[str] = []
    for name in (*inequality, *orders, *projected):
        if name not in tail and name not in equality:
            tail.append(name)
    used = equality | set(tail)
    if len(used) <= 1 or (not tail and not projected):
        return None
    return query.kind, equality, tuple(tail)


def covers(index: tuple[str, list[str]], needed: tuple[str, frozenset[str], tuple[str, ...]]) -> bool:
    kind, properties = index
    needed_kind, equality, tail = needed
    return (
        kind == needed_kind
        and len(properties) == len(equality) + len(tail)
        and set(properties[: len(equality)]) == equality
        and tuple(properties[len(equality) :]) == tail
    )


def terraform_indexes() -> list[tuple[str, list[str]]]:
    found = []
    for name, body in resources("google_firestore_index").items():
        assert body["api_scope"] == "DATASTORE_MODE_API", name
        assert body["query_scope"] == "COLLECTION_GROUP", f"{name}: Datastore's ancestor: none"
        assert body["database"] == "${var.datastore_database}" and default("datastore_database") == "(default)"
        (dynamic,) = body["dynamic"]
        fields = dynamic["fields"]
        assert block(fields, "content") == {"field_path": "${fields.value}", "order": "ASCENDING"}, name
        found.append((body["collection"], list(fields["for_each"])))
    return found


def test_composite_indexes_are_one_resource_over_local_datastore_indexes():
    assert set(resources("google_firestore_index")) == {
        f'build["{name}"]' for name in CONFIG["locals"]["datastore_indexes"]
    }


def yaml_indexes() -> list[tuple[str, list[str]]]:
    """deploy/index.yaml, read by a parser for exactly the index.yaml subset it uses."""
    found: list[tuple[str, list[str]]] = []
    seen_header = False
    for number, raw in enumerate((DEPLOY / "index.yaml").read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].rstrip()
        where = f"index.yaml:{number}: {raw!r}"
        if not line:
            continue
        if line == "indexes:":
            seen_header = True
        elif match := re.fullmatch(r"- kind: (\w+)", line):
            found.append((match.group(1), []))
        elif match := re.fullmatch(r"  ancestor: (\w+)", line):
            assert match.group(1) in ("no", "false"), where
        elif line == "  properties:":
            pass
        elif match := re.fullmatch(r"  - name: (\w+)", line):
            found[-1][1].append(match.group(1))
        elif match := re.fullmatch(r"    direction: (\w+)", line):
            assert match.group(1) == "asc", where
        else:
            raise AssertionError(f"unexpected line {where}")
    assert seen_header and found
    return found


@pytest.mark.parametrize("source", ["terraform", "index.yaml"])
def test_composite_indexes_cover_the_code_queries(source):
    indexes = terraform_indexes() if source == "terraform" else yaml_indexes()
    queries = code_queries()
    needed = {name: needed_index(query) for name, query in queries.items()}
    # The queries this deployment was written for.
    assert needed["shard"] == (
        "Build",
        frozenset({"incomplete", "backend_target", "project"}),
        ("next_backend_sync_time",),
    )
    assert queries["shard"].projection == ["__key__"], "the shard query is keys only"
    assert needed["sync_lag"] == needed["shard"], "the lag query is served by the shard query's index"
    assert needed["stray"] == needed["shard"], "so is the query of the ranges around the shards in use"
    assert needed["planner"] == ("Build", frozenset({"incomplete", "backend_target"}), ("project",))
    outbox_queries = ("outbox", "outbox_created", "outbox_next_attempt")
    assert all(needed[name] is None for name in outbox_queries), "the outbox sweep needs no composite index"
    # `buildsync status` reads the same two indexes.
    assert needed["status_pairs"] == ("Build", frozenset({"incomplete"}), ("backend_target", "project"))
    assert needed["status_times"] == needed["shard"]
    for name, index in needed.items():
        if index is not None:
            assert any(covers(candidate, index) for candidate in indexes), f"no {source} index serves the {name} query"
    for query in queries.values():
        assert query.namespace is None and query.ancestor is None


def test_terraform_and_index_yaml_hold_the_same_indexes():
    normal = lambda indexes: sorted((kind, tuple(properties)) for kind, properties in indexes)  # noqa: E731
    assert normal(terraform_indexes()) == normal(yaml_indexes())
