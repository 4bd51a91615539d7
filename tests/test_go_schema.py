"""store/go_schema.py: an entity completed to the shape Buildbucket's Go save leaves, and Go's time precision."""

from __future__ import annotations

import datetime

import pytest
from buildsync.errors import StoredDataError
from buildsync.proto import buildbucket_pb2 as pb
from buildsync.store import go_schema
from google.cloud import datastore
from google.protobuf import timestamp_pb2

UTC = datetime.timezone.utc
TABLE = {
    "count": go_schema.GoProperty(True, 0),
    "token": go_schema.GoProperty(False, ""),
    "names": go_schema.GoProperty(True),
}


def entity(**properties) -> datastore.Entity:
    result = datastore.Entity(datastore.Key("Build", 1, project="p"), exclude_from_indexes=("count",))
    result.update(properties)
    return result


def test_an_absent_scalar_gets_go_s_zero_value_and_go_s_index_flag():
    completed = entity()

    go_schema.complete(completed, TABLE, ())

    assert dict(completed) == {"count": 0, "token": ""}
    assert completed.exclude_from_indexes == {"token"}


def test_a_written_property_gets_go_s_index_flag_and_an_unwritten_one_keeps_its_own():
    written, kept = entity(count=3, token="t"), entity(count=3, token="t")
    written.exclude_from_indexes.discard("count")
    kept.exclude_from_indexes.discard("count")

    go_schema.complete(written, TABLE, ("token",))
    go_schema.complete(kept, TABLE, ())

    assert written.exclude_from_indexes == {"token"} and kept.exclude_from_indexes == set()


@pytest.mark.parametrize("stored, left", [([], {}), (None, {}), (["a"], {"names": ["a"]}), ("a", {"names": "a"})])
def test_an_empty_or_null_slice_is_removed_as_go_stores_no_property_for_it(stored, left):
    completed = entity(count=1, token="", names=stored)

    go_schema.complete(completed, TABLE, ())

    assert {name: completed[name] for name in completed if name == "names"} == left


def test_a_property_outside_the_struct_is_kept_with_its_flag():
    completed = entity(count=1, token="", other=b"x")
    completed.exclude_from_indexes.add("other")

    go_schema.complete(completed, TABLE, ("count", "token"))

    assert completed["other"] == b"x" and "other" in completed.exclude_from_indexes


@pytest.mark.parametrize(
    "seconds, nanos, expected",
    [
        (0, 0, datetime.datetime(1970, 1, 1, tzinfo=UTC)),
        (10, 1_499, datetime.datetime(1970, 1, 1, 0, 0, 10, 1, tzinfo=UTC)),
        (10, 1_500, datetime.datetime(1970, 1, 1, 0, 0, 10, 2, tzinfo=UTC)),  # halves round up
        (10, 999_999_500, datetime.datetime(1970, 1, 1, 0, 0, 11, tzinfo=UTC)),  # into the next second
        (-62135596800, 0, datetime.datetime(1, 1, 1, tzinfo=UTC)),  # Go's zero time
    ],
)
def test_go_time_rounds_to_the_microsecond_as_gae_s_round_time(seconds, nanos, expected):
    assert go_schema.go_time(timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)) == expected


@pytest.mark.parametrize("seconds", [253402300800, -62135596801, 2**62])
def test_a_time_datastore_cannot_store_is_stored_data_the_build_fails_on(seconds):
    with pytest.raises(StoredDataError, match="outside the years 1 to 9999"):
        go_schema.go_time(timestamp_pb2.Timestamp(seconds=seconds))


def test_parent_id_is_derived_only_from_a_build_with_ancestors():
    build = pb.Build(builder=pb.BuilderID(project="p", bucket="b", builder="x"), canary=True)
    build.input.experimental = True

    orphan = go_schema.derived_from_proto(build)
    build.ancestor_ids.extend([4, 5])
    child = go_schema.derived_from_proto(build)

    assert "parent_id" not in orphan and orphan["ancestor_ids"] == []
    assert (child["parent_id"], child["ancestor_ids"]) == (5, [4, 5])
    assert (orphan["bucket_id"], orphan["builder_id"], orphan["canary"], orphan["experimental"]) == (
        "p/b",
        "p/b/x",
        True,
        True,
    )
    assert orphan["create_time"] == datetime.datetime(1970, 1, 1, tzinfo=UTC)  # Go's AsTime of a nil Timestamp
