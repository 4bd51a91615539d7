"""Property-level parity: every entity the sync writes has the properties, value types and index flags Go writes.

The tables below are read off luci-go's own structs, one row per field, with
the file and struct field each comes from; they are not derived from
store/go_schema.py, which they check. luci/gae (gae/service/datastore
pls_impl.go) saves every field of a struct on every save: a scalar always,
zero or not (`always`); a slice, or a proto, only when it holds something
(`nonempty`). gae/impl/cloud hands each value to cloud.google.com/go/datastore,
which stores an int as an integer, a nil []byte as an empty blob, a time.Time
(gae's RoundTime: to the microsecond) as a timestamp and a nil interface as
null; a field is indexed unless its tag says `noindex`, and a proto is never
indexed. The stored entities are read below the client, as Datastore holds
them. Builds are ended or updated by the real sync on both emulators.
"""

from __future__ import annotations

import dataclasses
import datetime

import pytest
from buildsync.ending.completion import Targets
from buildsync.proto import buildbucket_pb2 as pb
from buildsync.proto import project_config_pb2 as cpb
from buildsync.proto import service_config_pb2 as spb
from buildsync.rules import legacy
from buildsync.stages.messages import SyncBatch
from buildsync.stages.sync import SyncOptions, sync_batch
from buildsync.store import model, outbox
from google.cloud import datastore

from tests import buildbucket_writer as bb
from tests.builds import get_build, put_build
from tests.harness import BACKEND, LONG_AGO, PLANNED_AT

pytestmark = pytest.mark.both_emulators

UTC = datetime.timezone.utc
LATER = PLANNED_AT + datetime.timedelta(seconds=10, microseconds=123456)

INT, BOOL, TEXT, BLOB, TIME, NULL = "integer", "boolean", "string", "blob", "timestamp", "null"
ALWAYS, NONEMPTY = "always", "nonempty"


@dataclasses.dataclass(frozen=True)
class Row:
    """One field of a Go struct as luci/gae stores it."""

    name: str
    type: str  # the Datastore value type; "list of X" for a slice
    indexed: bool
    presence: str = ALWAYS


BUILD = [
    # model/legacy.go LeaseProperties (embedded in LegacyProperties, embedded in Build): no noindex.
    Row("is_leased", BOOL, True),  # IsLeased bool
    Row("leasee", BLOB, True),  # Leasee []byte: nil after ClearLease, an empty blob
    Row("lease_expiration_date", TIME, True),  # LeaseExpirationDate time.Time: zero, 0001-01-01
    Row("lease_key", INT, True),  # LeaseKey int
    Row("never_leased", BOOL, True),  # NeverLeased bool
    # model/legacy.go LegacyProperties.
    Row("cancelation_reason", INT, True),  # CancelationReason LegacyCancelationReason (int)
    Row("failure_reason", INT, True),  # FailureReason LegacyFailureReason (int)
    Row("parameters", NULL, True),  # Parameters []byte: Build.Save writes MkProperty(nil) when empty
    Row("result", INT, True),  # Result LegacyResult (int)
    Row("result_details", NULL, True),  # ResultDetails []byte: as Parameters
    Row("retry_of", INT, True),  # RetryOf int
    Row("status", INT, True),  # Status LegacyStatus (int)
    Row("url", TEXT, False),  # URL string `url,noindex`
    # model/unused.go UnusedProperties.PubSubCallback ([]byte `pubsub_callback`): deleted by Build.Save.
    # model/build.go Build.
    Row("proto", BLOB, False),  # Proto *pb.Build `proto,legacy`: a proto is never indexed
    Row("project", TEXT, True),  # Project string
    Row("bucket_id", TEXT, True),  # BucketID string
    Row("builder_id", TEXT, True),  # BuilderID string
    Row("canary", BOOL, True),  # Canary bool
    Row("created_by", TEXT, True),  # CreatedBy identity.Identity (string)
    Row("create_time", TIME, True),  # CreateTime time.Time
    Row("experimental", BOOL, True),  # Experimental bool
    Row("experiments", f"list of {TEXT}", True, NONEMPTY),  # Experiments []string
    Row("incomplete", BOOL, True),  # Incomplete bool
    Row("is_luci", BOOL, True),  # IsLuci bool
    Row("resultdb_update_token", TEXT, False),  # ResultDBUpdateToken string `noindex`
    Row("status_v2", INT, True),  # Status pb.Status (int32)
    Row("status_changed_time", TIME, True),  # StatusChangedTime time.Time
    Row("tags", f"list of {TEXT}", True, NONEMPTY),  # Tags []string
    Row("update_token", TEXT, False),  # UpdateToken string `noindex`
    Row("start_build_token", TEXT, False),  # StartBuildToken string `noindex`
    # PubSubCallback `pubsub_callback,noindex`: a nested struct, flattened with dots.
    Row("pubsub_callback.auth_token", TEXT, False),  # PubSubCallback.AuthToken string
    Row("pubsub_callback.topic", TEXT, False),  # PubSubCallback.Topic string
    Row("pubsub_callback.user_data", BLOB, False),  # PubSubCallback.UserData []byte
    Row("parent_id", INT, True),  # ParentID int64
    Row("ancestor_ids", f"list of {INT}", True, NONEMPTY),  # AncestorIds []int64
    Row("start_task_request_id", TEXT, False),  # StartBuildTaskRequestID string `noindex`
    Row("start_build_request_id", TEXT, False),  # StartBuildRequestID string `noindex`
    Row("next_backend_sync_time", TEXT, True),  # NextBackendSyncTime string
    Row("backend_target", TEXT, True),  # BackendTarget string
    Row("backend_sync_interval", INT, False),  # BackendSyncInterval time.Duration `noindex`
    # CustomMetrics []CustomMetric `custome_metrics,noindex`: a slice of structs, two parallel lists.
    Row("custome_metrics.base", f"list of {INT}", False, NONEMPTY),  # CustomMetric.Base
    Row("custome_metrics.metric", f"list of {BLOB}", False, NONEMPTY),  # CustomMetric.Metric (gae's proto format)
    Row("custom_builder_count_metrics", f"list of {TEXT}", True, NONEMPTY),  # []string
    Row("custom_builder_max_age_metrics", f"list of {TEXT}", True, NONEMPTY),  # []string
    Row("custom_builder_consecutive_failures_metrics", f"list of {TEXT}", True, NONEMPTY),  # []string
    Row("stage_attempt_id", TEXT, True),  # StageAttemptID string
    Row("stage_attempt_token", TEXT, False),  # StageAttemptToken string `noindex`
]
# model/details.go BuildInfra.Proto `infra,legacy`.
BUILD_INFRA = [Row("infra", BLOB, False)]
# model/build.go BuildStatus.
BUILD_STATUS = [Row("build_address", TEXT, True), Row("status", INT, False)]  # BuildAddress; Status `noindex`
# model/details.go BuildSteps.
BUILD_STEPS = [Row("step_container_bytes_zipped", BOOL, False), Row("steps", BLOB, False)]  # IsZipped; Bytes
# Ours (store/outbox.py entry_entity): only what the sweep orders by is indexed.
OUTBOX = [
    Row("effects", f"list of {TEXT}", False),
    Row("created", TIME, False),
    Row("attempts", INT, False),
    Row("sweep_at", TEXT, True),
]


def stored_shape(client: datastore.Client, key: datastore.Key) -> dict[str, tuple[str, bool]] | None:
    """Each property's (value type, indexed) as Datastore holds it, below the client's conversions."""
    request = {"project_id": client.project, "database_id": client.database or "", "keys": [key.to_protobuf()]}
    response = client._datastore_api.lookup(request=request)
    found = type(response).pb(response).found
    if not found:
        return None
    shape = {}
    for name, value in found[0].entity.properties.items():
        kind = value.WhichOneof("value_type").removesuffix("_value")
        if kind == "array":
            kinds = {v.WhichOneof("value_type").removesuffix("_value") for v in value.array_value.values}
            (indexed,) = {not v.exclude_from_indexes for v in value.array_value.values}
            shape[name] = (f"list of {'/'.join(sorted(kinds))}", indexed)
        else:
            shape[name] = (kind, not value.exclude_from_indexes)
    return shape


def go_shape(table: list[Row], nonempty: set[str] = frozenset()) -> dict[str, tuple[str, bool]]:
    """The (type, indexed) of each property a Go save of `table`'s struct leaves, given which slices hold something."""
    rows = [row for row in table if row.presence == ALWAYS or row.name in nonempty]
    return {row.name: (row.type, row.indexed) for row in rows}


def mismatches(client: datastore.Client, key: datastore.Key, expected: dict[str, tuple[str, bool]]) -> list[str]:
    """Every property whose stored (type, indexed) is not what a Go save leaves, both named."""
    stored = stored_shape(client, key) or {}
    names = sorted(stored.keys() | expected.keys())
    return [f"{n}: stored {stored.get(n)}, Go {expected.get(n)}" for n in names if stored.get(n) != expected.get(n)]


@pytest.fixture
def sync(datastore_client, pool, task_backend, make_settings, transaction_begin):
    """The real sync over build ids, ending builds with their outbox entries as the sync function does."""

    def run(build_ids, task_success=False):
        backend = make_settings(task_success=task_success).backend(BACKEND)
        batch = SyncBatch(BACKEND, "proj", tuple(build_ids), PLANNED_AT)
        options = SyncOptions(clock=lambda: LATER, transaction_begin=transaction_begin, targets=Targets())
        return sync_batch(datastore_client, pool.get(BACKEND, task_backend.hostname), backend, batch, options)

    return run


FAILURES = spb.CUSTOM_METRIC_BASE_CONSECUTIVE_FAILURE_COUNT
# The slices a build scheduled with tags, experiments, a parent and custom metrics holds.
SCHEDULED_SLICES = {"tags", "experiments", "ancestor_ids", "custome_metrics.base", "custome_metrics.metric"}


def put_scheduled_build(client: datastore.Client, build_id: int) -> None:
    """A started build as ScheduleBuild and the backend task's creation leave it, slices included."""
    put_build(client, build_id, updated=LONG_AGO)
    bb.set_build_properties(client, build_id, tags=["os:mac"], callback_topic="projects/p/topics/t", user_data=b"u")
    metric = cpb.CustomMetricDefinition(name="mac failures", predicates=['build.tags.get_value("os")=="mac"'])
    bb.set_custom_metrics(client, build_id, [(FAILURES, metric)])
    entity = client.get(model.build_key(client, build_id))
    build = model.read_build(entity)
    build.ancestor_ids.extend([7, 8])
    entity.update({"proto": build.SerializeToString(), "ancestor_ids": [7, 8], "parent_id": 8})
    entity["experiments"] = ["+luci.buildbucket.parent_tracking", "-luci.non_production"]
    client.put(entity)


def test_a_build_written_as_buildbucket_writes_it_has_the_shape_of_go_s_build_struct(datastore_client):
    # The writer every integration test relies on: if it were wrong, the tests below would prove nothing.
    put_scheduled_build(datastore_client, 1)
    client = datastore_client

    assert mismatches(client, model.build_key(client, 1), go_shape(BUILD, SCHEDULED_SLICES)) == []
    assert mismatches(client, model.infra_key(client, 1), go_shape(BUILD_INFRA)) == []
    assert mismatches(client, model.status_key(client, 1), go_shape(BUILD_STATUS)) == []


@pytest.mark.parametrize("with_steps", [False, True], ids=["no steps", "running steps"])
def test_a_build_ended_by_the_sync_has_exactly_the_properties_go_s_save_writes(
    datastore_client, task_backend, sync, with_steps
):
    put_scheduled_build(datastore_client, 1)
    if with_steps:
        bb.put_steps(datastore_client, 1, [pb.Step(name="compile", status=pb.STARTED)])
    task_backend.backend.set_task("task-1", pb.FAILURE, 2)
    client = datastore_client

    report = sync([1])

    assert report.completed == 1
    slices = SCHEDULED_SLICES | {"custom_builder_consecutive_failures_metrics"}
    assert mismatches(client, model.build_key(client, 1), go_shape(BUILD, slices)) == []
    assert mismatches(client, model.infra_key(client, 1), go_shape(BUILD_INFRA)) == []
    assert mismatches(client, model.status_key(client, 1), go_shape(BUILD_STATUS)) == []
    # tasks/build_status.go: the steps are saved whenever the build ends, read as empty when missing.
    assert mismatches(client, model.steps_key(client, 1), go_shape(BUILD_STEPS)) == []
    assert mismatches(client, outbox.entry_key(client, 1), go_shape(OUTBOX)) == []


@pytest.mark.parametrize("task", [(pb.STARTED, 2), (pb.SCHEDULED, 1)], ids=["newer task", "same task"])
def test_a_build_updated_by_the_sync_keeps_go_s_shape_and_gets_no_steps(datastore_client, task_backend, sync, task):
    put_scheduled_build(datastore_client, 1)
    task_backend.backend.set_task("task-1", *task)
    client = datastore_client

    report = sync([1])

    assert report.updated + report.unchanged == 1 and report.completed == 0
    assert mismatches(client, model.build_key(client, 1), go_shape(BUILD, SCHEDULED_SLICES)) == []
    assert mismatches(client, model.infra_key(client, 1), go_shape(BUILD_INFRA)) == []
    assert stored_shape(client, model.steps_key(client, 1)) is None


# What the sync needs of a build, and no more; a non-Go writer's index flags on
# properties the sync writes; an empty list Go would never store; and a
# property of another writer, which must survive with its own flag.
SPARSE_UNINDEXED = ("proto", "status_v2", "incomplete", "status", "project")


def put_sparse_build(client: datastore.Client, build_id: int) -> None:
    put_build(client, build_id, updated=LONG_AGO)
    full = client.get(model.build_key(client, build_id))
    needed = ("proto", "project", "status_v2", "incomplete", "status", "backend_target", "next_backend_sync_time")
    sparse = datastore.Entity(full.key, exclude_from_indexes=SPARSE_UNINDEXED + ("note",))
    sparse.update({name: full[name] for name in needed})
    sparse.update({"note": "another writer's", "tags": []})
    status = datastore.Entity(model.status_key(client, build_id))
    status["status"] = pb.STARTED
    client.put_multi([sparse, status])


def test_a_build_lacking_go_s_properties_is_saved_with_go_s_zero_values_and_index_flags(
    datastore_client, task_backend, sync
):
    put_sparse_build(datastore_client, 1)
    task_backend.backend.set_task("task-1", pb.INFRA_FAILURE, 2)
    client = datastore_client

    report = sync([1])

    assert report.completed == 1
    expected = go_shape(BUILD) | {"note": (TEXT, False)}
    assert mismatches(client, model.build_key(client, 1), expected) == []
    assert mismatches(client, model.status_key(client, 1), go_shape(BUILD_STATUS)) == []
    entity, build, _, status = get_build(client, 1)
    zeros = {name: entity[name] for name in ("url", "created_by", "stage_attempt_id", "retry_of", "is_luci")}
    assert zeros == {"url": "", "created_by": "", "stage_attempt_id": "", "retry_of": 0, "is_luci": False}
    assert (entity["note"], status["build_address"]) == ("another writer's", "")
    assert (entity["parameters"], entity["result_details"]) == (None, None)


def test_the_properties_go_s_save_computes_take_go_s_values_and_precision(datastore_client, task_backend, sync):
    put_scheduled_build(datastore_client, 1)
    entity = datastore_client.get(model.build_key(datastore_client, 1))
    build = model.read_build(entity)
    build.canary, build.input.experimental = True, True
    build.create_time.FromNanoseconds(build.create_time.ToNanoseconds() + 1_500)  # 1.5 µs: Go rounds up
    entity["proto"] = build.SerializeToString()
    datastore_client.put(entity)
    task_backend.backend.set_task("task-1", pb.INFRA_FAILURE, 2, status_details=pb.StatusDetails(timeout={}))

    sync([1])

    entity, build, _, _ = get_build(datastore_client, 1)
    derived = ("project", "bucket_id", "builder_id", "canary", "experimental", "parent_id", "ancestor_ids")
    assert {name: entity[name] for name in derived} == {
        "project": "proj",
        "bucket_id": "proj/ci",
        "builder_id": "proj/ci/builder",
        "canary": True,
        "experimental": True,
        "parent_id": 8,
        "ancestor_ids": [7, 8],
    }
    assert entity["create_time"] == LONG_AGO + datetime.timedelta(microseconds=2)
    assert entity["status_changed_time"] == LATER == build.update_time.ToDatetime(UTC)
    legacy_names = ("status", "result", "failure_reason", "cancelation_reason")
    assert [entity[name] for name in legacy_names] == [legacy.COMPLETED, legacy.CANCELED, 0, legacy.TIMEOUT]
    assert (entity["is_leased"], entity["leasee"], entity["lease_key"]) == (False, b"", 0)
    assert entity["lease_expiration_date"] == datetime.datetime(1, 1, 1, tzinfo=UTC)
