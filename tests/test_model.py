"""model: keys that encode fast and the lookup that hands them back."""

import pytest
from buildsync.proto import project_config_pb2 as cpb
from buildsync.rules.custom_metrics import CONSECUTIVE_FAILURE_COUNT, COUNT, BuilderMetricNames, CustomMetric
from buildsync.store import model
from google.auth.credentials import AnonymousCredentials
from google.cloud import datastore

from tests.buildbucket_writer import gae_proto
from tests.builds import put_build
from tests.harness import LONG_AGO


@pytest.mark.parametrize(
    "path, options",
    [
        (("Build", 1), {}),
        (("Build", 2**63 - 1, "BuildInfra", 1), {}),
        (("Build", 8, "BuildSteps", "a name"), {"namespace": "ns"}),
        (("Build", 8, "Child"), {}),  # partial: no id yet
        (("Build", 3), {"database": "other-db", "namespace": "n"}),
    ],
)
def test_a_model_key_encodes_to_the_same_bytes_as_the_clients(path, options):
    ours = model.Key(*path, project="proj", **options).to_protobuf()
    theirs = datastore.Key(*path, project="proj", **options).to_protobuf()

    assert ours._pb.SerializeToString() == theirs._pb.SerializeToString()
    assert type(ours) is type(theirs)


@pytest.mark.parametrize(
    "path", [("Build", 1), ("Build", 1, "BuildInfra", 1), ("Build", 8, "BuildSteps", "a name"), ("Build", 8, "Child")]
)
def test_a_model_key_names_its_parts_as_the_clients_does(path):
    ours, theirs = model.Key(*path, project="p"), datastore.Key(*path, project="p")

    parts = ("kind", "id", "name", "id_or_name", "is_partial", "flat_path")
    assert {part: getattr(ours, part) for part in parts} == {part: getattr(theirs, part) for part in parts}
    assert (ours == theirs) is not theirs.is_partial  # a partial key equals no key
    assert hash(ours) == hash(theirs)


def test_keys_are_made_in_the_clients_project_and_namespace():
    client = datastore.Client(project="proj", namespace="ns", database="db", credentials=AnonymousCredentials())

    key = model.infra_key(client, 5)

    assert (key.project, key.namespace, key.database, key.flat_path) == (
        "proj",
        "ns",
        "db",
        ("Build", 5, "BuildInfra", 1),
    )


def test_lookup_returns_what_exists_by_path_carrying_the_keys_it_was_given(datastore_client, monkeypatch):
    monkeypatch.setattr(model, "MAX_LOOKUP_KEYS", 3)  # more keys than one lookup takes
    for build_id in (1, 2, 3):
        put_build(datastore_client, build_id, updated=LONG_AGO)
    keys = [model.build_key(datastore_client, i) for i in (1, 2, 3, 4)] + [model.infra_key(datastore_client, 2)]

    found = model.lookup(datastore_client, keys)

    assert set(found) == {k.flat_path for k in keys} - {("Build", 4)}
    assert all(type(entity.key) is model.Key for entity in found.values())
    assert found[("Build", 2)].key is keys[1]


def _build_entity(**properties) -> datastore.Entity:
    entity = datastore.Entity(model.Key("Build", 1, project="p"))
    entity.update(properties)
    return entity


def _definition(name: str, *predicates: str) -> cpb.CustomMetricDefinition:
    return cpb.CustomMetricDefinition(
        name=name, predicates=predicates, extra_fields={"os": "build.tags.get_value('os')"}
    )


@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "zstd"])
def test_custom_metrics_are_read_pairwise_from_their_flattened_lists(compressed):
    entity = _build_entity(
        **{
            "custome_metrics.base": [CONSECUTIVE_FAILURE_COUNT, COUNT],
            "custome_metrics.metric": [
                gae_proto(_definition("failures", "a", "b"), compressed),
                gae_proto(_definition("count", "c"), compressed),
            ],
        }
    )
    assert model.read_custom_metrics(entity) == (
        CustomMetric(CONSECUTIVE_FAILURE_COUNT, "failures", ("a", "b")),
        CustomMetric(COUNT, "count", ("c",)),
    )


@pytest.mark.parametrize(
    "properties, metrics",
    [
        ({}, ()),
        (
            {"custome_metrics.base": COUNT, "custome_metrics.metric": gae_proto(_definition("one", "p"))},
            (CustomMetric(COUNT, "one", ("p",)),),
        ),  # a list of one stored as a lone value
        ({"custome_metrics.base": [COUNT], "custome_metrics.metric": [None]}, (CustomMetric(COUNT, "", ()),)),
        ({"custome_metrics.base": [COUNT, COUNT], "custome_metrics.metric": []}, (CustomMetric(COUNT, "", ()),) * 2),
    ],
    ids=["none", "lone values", "null definition", "definitions missing"],
)
def test_custom_metrics_read_as_luci_gae_loads_them(properties, metrics):
    assert model.read_custom_metrics(_build_entity(**properties)) == metrics


@pytest.mark.parametrize(
    "properties, problem",
    [
        ({"custome_metrics.base": [COUNT], "custome_metrics.metric": [b"\x0a\x01x"]}, "not in luci/gae's proto format"),
        ({"custome_metrics.base": [COUNT], "custome_metrics.metric": [b"\x0c\xff"]}, "does not decode"),
        ({"custome_metrics.base": [COUNT], "custome_metrics.metric": [b"\x14not zstd"]}, "does not decode"),
        ({"custome_metrics.base": ["8"]}, "holds a str, not int"),
    ],
    ids=["no header", "bad proto", "bad zstd", "base not an int"],
)
def test_undecodable_custom_metrics_raise_entity_decode_error(properties, problem):
    with pytest.raises(model.EntityDecodeError, match=problem):
        model.read_custom_metrics(_build_entity(**properties))


def test_builder_metric_names_read_a_lone_string_as_a_list_of_one():
    entity = _build_entity(custom_builder_count_metrics="one", custom_builder_max_age_metrics=["a", "b"])
    assert model.builder_metric_names(entity) == BuilderMetricNames(count=("one",), max_age=("a", "b"))


def test_builder_metric_names_are_written_only_where_they_changed_and_an_empty_list_is_no_property():
    entity = _build_entity(custom_builder_count_metrics="kept", custom_builder_max_age_metrics=["dropped"])
    names = BuilderMetricNames(count=("kept",), consecutive_failures=("new",))

    model.write_builder_metric_names(entity, names)

    assert dict(entity) == {
        "custom_builder_count_metrics": "kept",
        "custom_builder_consecutive_failures_metrics": ["new"],
    }
    assert model.builder_metric_names(entity) == names
