"""model: keys that encode fast and the lookup that hands them back."""

import pytest
from buildsync.store import model
from google.auth.credentials import AnonymousCredentials
from google.cloud import datastore

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
