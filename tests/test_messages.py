"""Pub/Sub messages: round trips, every rejection, and decoding arbitrary input."""

import dataclasses
import datetime
import json

import pytest
from buildsync.errors import MessageError, PermanentError
from buildsync.stages.messages import MAX_BATCH_SIZE, SCHEMA_VERSION, ShardJob, SyncBatch, SyncTrigger, name_problem
from hypothesis import given
from hypothesis import strategies as st

PLANNED = datetime.datetime(2024, 5, 17, 12, 0, 45, 123456, tzinfo=datetime.timezone.utc)
PLANNED_TEXT = PLANNED.isoformat()
MESSAGES = [SyncTrigger, ShardJob, SyncBatch]

names = st.text(min_size=1, max_size=40)
# A project is also an X-Luci-Project header: visible ASCII only.
projects = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40)
# Real UTC offsets are whole minutes.
offsets = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(
    lambda minutes: datetime.timezone(datetime.timedelta(minutes=minutes))
)
aware_times = st.datetimes(timezones=offsets)


def encode(**fields):
    return json.dumps(fields).encode()


def shard_fields(**overrides):
    fields = {"version": 1, "backend": "b", "project": "p", "shard": 0, "shards": 2, "planned_at": PLANNED_TEXT}
    fields.update(overrides)
    return {k: v for k, v in fields.items() if v is not Ellipsis}


def batch_fields(**overrides):
    fields = {"version": 1, "backend": "b", "project": "p", "build_ids": [1, 2], "planned_at": PLANNED_TEXT}
    fields.update(overrides)
    return {k: v for k, v in fields.items() if v is not Ellipsis}


# --- round trips ------------------------------------------------------------------------------


@given(st.builds(SyncTrigger, st.none() | names, st.none() | projects))
def test_trigger_round_trips(trigger):
    assert SyncTrigger.from_json(trigger.to_json()) == trigger


@given(
    st.builds(
        lambda backend, project, shards, shard, planned_at: ShardJob(
            backend, project, shard % shards, shards, planned_at
        ),
        names,
        projects,
        st.integers(min_value=1, max_value=10**6),
        st.integers(min_value=0, max_value=10**6),
        aware_times,
    ).flatmap(lambda job: st.sampled_from([job, dataclasses.replace(job, probe=True)]))
)
def test_shard_job_round_trips(job):
    decoded = ShardJob.from_json(job.to_json())

    assert decoded == job
    assert decoded.planned_at.utcoffset() == job.planned_at.utcoffset()


@given(
    st.builds(
        SyncBatch,
        names,
        projects,
        st.lists(st.integers(min_value=1, max_value=2**63 - 1), min_size=1, max_size=MAX_BATCH_SIZE).map(tuple),
        aware_times,
        st.booleans(),
        st.integers(min_value=1, max_value=10),
    )
)
def test_sync_batch_round_trips(batch):
    assert SyncBatch.from_json(batch.to_json()) == batch


def test_encoded_messages_carry_the_schema_version():
    for message in (SyncTrigger(), ShardJob("b", "p", 0, 1, PLANNED), SyncBatch("b", "p", (1,), PLANNED)):
        assert json.loads(message.to_json())["version"] == SCHEMA_VERSION == 1


def test_a_first_attempt_that_is_no_probe_encodes_as_before_either_existed():
    assert set(json.loads(SyncBatch("b", "p", (1,), PLANNED).to_json())) == {
        "version",
        "backend",
        "project",
        "build_ids",
        "planned_at",
    }
    assert "probe" not in json.loads(ShardJob("b", "p", 0, 1, PLANNED).to_json())
    assert json.loads(SyncBatch("b", "p", (1,), PLANNED, probe=True, attempt=3).to_json())["attempt"] == 3
    assert SyncBatch.from_json(encode(**batch_fields(probe=False, attempt=1))) == SyncBatch.from_json(
        encode(**batch_fields())
    )


def test_trigger_leaves_out_unset_fields():
    assert json.loads(SyncTrigger(backend="b").to_json()) == {"version": 1, "backend": "b"}
    assert SyncTrigger.from_json(b'{"version": 1}') == SyncTrigger(None, None)


def test_null_trigger_fields_mean_unset():
    assert SyncTrigger.from_json(b'{"version": 1, "backend": null, "project": "p"}') == SyncTrigger(None, "p")


def test_messages_decode_from_str_too():
    assert ShardJob.from_json(json.dumps(shard_fields())) == ShardJob("b", "p", 0, 2, PLANNED)


def test_batch_of_exactly_the_maximum_size_is_accepted():
    ids = list(range(1, MAX_BATCH_SIZE + 1))

    assert SyncBatch.from_json(encode(**batch_fields(build_ids=ids))).build_ids == tuple(ids)


def test_largest_int64_id_is_accepted():
    assert SyncBatch.from_json(encode(**batch_fields(build_ids=[2**63 - 1]))).build_ids == (2**63 - 1,)


# --- rejections -------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", MESSAGES)
@pytest.mark.parametrize(
    "data, problem",
    [
        (b"", "is not JSON"),
        (b"{", "is not JSON"),
        (b"\xff\xfe\xfd", "is not JSON"),
        (b"not json", "is not JSON"),
        (b"[" * 100_000, "is not JSON"),
        (b"[]", "is a JSON list, not an object"),
        (b'"text"', "is a JSON str, not an object"),
        (b"1", "is a JSON int, not an object"),
        (b"null", "is a JSON NoneType, not an object"),
        (b'{"version": 2}', 'schema version 2 is not one this code reads; write "version": 1'),
        (b'{"version": 0}', "schema version 0 is not one this code reads"),
        (b'{"version": "1"}', '"version" is the string "1", not a number; write "version": 1'),
        (b'{"version": 1.0}', '"version" is 1.0, not a whole number; write "version": 1'),
        (b'{"version": true}', '"version" is true, not a whole number'),
        (b'{"version": [1]}', '"version" is a JSON list, not a number'),
    ],
)
def test_undecodable_or_wrongly_versioned_messages_are_rejected(cls, data, problem):
    with pytest.raises(MessageError, match="^" + cls.KIND + " message") as raised:
        cls.from_json(data)

    assert problem in str(raised.value)


@pytest.mark.parametrize("cls", [ShardJob, SyncBatch])
def test_shard_and_sync_messages_require_their_version(cls):
    fields = shard_fields(version=...) if cls is ShardJob else batch_fields(version=...)

    with pytest.raises(MessageError, match='"version" is missing; add "version": 1'):
        cls.from_json(json.dumps(fields))


# --- triggers as people type them -------------------------------------------------------------


@pytest.mark.parametrize(
    "data, trigger",
    [
        (b"{}", SyncTrigger(None, None)),
        (b" { } \n", SyncTrigger(None, None)),
        (b'{"project": "chromium"}', SyncTrigger(None, "chromium")),
        (b'{"backend": "swarming://x"}', SyncTrigger("swarming://x", None)),
        (b'{"backend": "swarming://x", "project": "v8--beta"}', SyncTrigger("swarming://x", "v8--beta")),
        (b'{"version": 1}', SyncTrigger(None, None)),
        (b'{"version": null, "project": "p"}', SyncTrigger(None, "p")),
    ],
)
def test_trigger_version_is_optional_and_empty_means_everything(data, trigger):
    assert SyncTrigger.from_json(data) == trigger


def test_trigger_rejection_lists_every_problem_at_once():
    with pytest.raises(MessageError) as raised:
        SyncTrigger.from_json(b'{"version": "1", "projects": "chromium", "backend": 7, "zzz": 1}')

    message = str(raised.value)
    assert '"version" is the string "1"' in message
    assert 'unknown field "projects": did you mean "project"?' in message
    assert 'unknown field "zzz": a trigger has only "backend" and "project"' in message
    assert 'field "backend": expected a string such as "swarming://chromium-swarm", got number 7' in message
    assert message.endswith('"version": 1 is optional'), message


@pytest.mark.parametrize("data", [b"chromium", b'["chromium"]', b""])
def test_a_trigger_that_is_no_object_says_what_to_write(data):
    with pytest.raises(MessageError, match=r"\{\} syncs everything; \{\"backend\""):
        SyncTrigger.from_json(data)


SHARD_REJECTIONS = [
    ("missing backend", shard_fields(backend=...), "field 'backend': expected str, got missing"),
    ("missing shard", shard_fields(shard=...), "field 'shard': expected int, got missing"),
    ("missing planned_at", shard_fields(planned_at=...), "field 'planned_at': expected str, got missing"),
    ("null project", shard_fields(project=None), "field 'project': expected str, got NoneType None"),
    ("int backend", shard_fields(backend=5), "field 'backend': expected str, got int 5"),
    ("bool shard", shard_fields(shard=True), "field 'shard': expected int, got bool True"),
    ("bool shards", shard_fields(shards=False), "field 'shards': expected int, got bool False"),
    ("float shard", shard_fields(shard=1.0), "field 'shard': expected int, got float 1.0"),
    ("string shard", shard_fields(shard="1"), "field 'shard': expected int, got str '1'"),
    ("empty backend", shard_fields(backend=""), "field 'backend' is empty"),
    ("empty project", shard_fields(project=""), "field 'project' is empty"),
    ("shard == shards", shard_fields(shard=2, shards=2), "shard 2 is outside [0, 2)"),
    ("negative shard", shard_fields(shard=-1), "shard -1 is outside [0, 2)"),
    ("zero shards", shard_fields(shard=0, shards=0), "shard 0 is outside [0, 0)"),
    ("unknown field", shard_fields(extra=1), "unknown fields ['extra']"),
    ("naive planned_at", shard_fields(planned_at="2024-05-17T12:00:00"), "'2024-05-17T12:00:00' has no timezone"),
    ("bad planned_at", shard_fields(planned_at="yesterday"), "'yesterday' is not an ISO 8601 time"),
    ("int planned_at", shard_fields(planned_at=1715947200), "field 'planned_at': expected str, got int"),
    ("int probe", shard_fields(probe=1), "field 'probe': expected bool, got int 1"),
]


@pytest.mark.parametrize(
    "fields, problem", [row[1:] for row in SHARD_REJECTIONS], ids=[row[0] for row in SHARD_REJECTIONS]
)
def test_bad_shard_job_is_rejected_naming_the_problem(fields, problem):
    with pytest.raises(MessageError) as raised:
        ShardJob.from_json(json.dumps(fields))

    assert problem in str(raised.value)


BATCH_REJECTIONS = [
    ("missing build_ids", batch_fields(build_ids=...), "field 'build_ids': expected list, got missing"),
    ("build_ids not a list", batch_fields(build_ids=5), "field 'build_ids': expected list, got int 5"),
    ("no ids", batch_fields(build_ids=[]), "0 build ids; a batch holds 1 to 1000"),
    ("1001 ids", batch_fields(build_ids=list(range(1, 1002))), "1001 build ids; a batch holds 1 to 1000"),
    ("zero id", batch_fields(build_ids=[1, 0]), "every id must be a positive 64-bit integer"),
    ("negative id", batch_fields(build_ids=[-5]), "every id must be a positive 64-bit integer"),
    ("id over int64", batch_fields(build_ids=[2**63]), "every id must be a positive 64-bit integer"),
    ("bool id", batch_fields(build_ids=[True]), "every id must be a positive 64-bit integer"),
    ("float id", batch_fields(build_ids=[1.0]), "every id must be a positive 64-bit integer"),
    ("string id", batch_fields(build_ids=["1"]), "every id must be a positive 64-bit integer"),
    ("missing project", batch_fields(project=...), "field 'project': expected str, got missing"),
    ("empty backend", batch_fields(backend=""), "field 'backend' is empty"),
    ("unknown fields", batch_fields(shard=0, zeta=1), "unknown fields ['shard', 'zeta']"),
    ("naive planned_at", batch_fields(planned_at="2024-05-17 12:00"), "'2024-05-17 12:00' has no timezone"),
    ("attempt 0", batch_fields(attempt=0), "'attempt': 0; the first attempt is 1"),
    ("bool attempt", batch_fields(attempt=True), "field 'attempt': expected int, got bool True"),
    ("string probe", batch_fields(probe="yes"), "field 'probe': expected bool, got str 'yes'"),
]


@pytest.mark.parametrize(
    "fields, problem", [row[1:] for row in BATCH_REJECTIONS], ids=[row[0] for row in BATCH_REJECTIONS]
)
def test_bad_sync_batch_is_rejected_naming_the_problem(fields, problem):
    with pytest.raises(MessageError) as raised:
        SyncBatch.from_json(json.dumps(fields))

    assert problem in str(raised.value)


TRIGGER_REJECTIONS = [
    (
        "int backend",
        {"backend": 3},
        'field "backend": expected a string such as "swarming://chromium-swarm", got number 3; '
        "leave it out to sync every full-mode backend",
    ),
    (
        "bool project",
        {"version": 1, "project": True},
        'field "project": expected a string such as "chromium", got boolean true; leave it out to sync every project',
    ),
    (
        "empty backend",
        {"backend": ""},
        'field "backend": expected a string such as "swarming://chromium-swarm", got an empty string',
    ),
    ("empty project", {"project": ""}, 'field "project": expected a string such as "chromium", got an empty string'),
    ("list project", {"project": ["a"]}, 'got list ["a"]'),
    ("unknown field", {"shard": 1}, 'unknown field "shard": a trigger has only "backend" and "project"'),
    ("misspelt field", {"backends": "x"}, 'unknown field "backends": did you mean "backend"?'),
    ("version 2", {"version": 2}, 'schema version 2 is not one this code reads; write "version": 1 or leave it out'),
]


@pytest.mark.parametrize(
    "fields, problem", [row[1:] for row in TRIGGER_REJECTIONS], ids=[row[0] for row in TRIGGER_REJECTIONS]
)
def test_bad_trigger_is_rejected_naming_the_problem(fields, problem):
    with pytest.raises(MessageError) as raised:
        SyncTrigger.from_json(json.dumps(fields))

    assert problem in str(raised.value)


@pytest.mark.parametrize(
    ("cls", "data"),
    [
        (SyncTrigger, b'{"project": "\\ud800"}'),
        (SyncTrigger, b'{"backend": "swarming://x\\udfff"}'),
        (
            ShardJob,
            b'{"version": 1, "backend": "b", "project": "\\ud800", "shard": 0, "shards": 1,'
            b' "planned_at": "2026-01-01T00:00:00+00:00"}',
        ),
        (SyncBatch, b'{"version": 1, "\\ud800": 1}'),
    ],
)
def test_text_no_utf8_can_carry_is_rejected_before_it_reaches_a_publish_or_a_query(cls, data):
    with pytest.raises(MessageError, match="not Unicode text"):
        cls.from_json(data)


@pytest.mark.parametrize(
    "data",
    [
        json.dumps({"project": "p" * 1025}),
        json.dumps(
            {
                "version": 1,
                "backend": "b" * 1025,
                "project": "p",
                "build_ids": [1],
                "planned_at": "2026-01-01T00:00:00+00:00",
            }
        ),
    ],
    ids=["trigger", "sync"],
)
def test_a_name_longer_than_a_pubsub_attribute_takes_is_rejected(data):
    cls = SyncTrigger if '"build_ids"' not in data else SyncBatch
    with pytest.raises(MessageError, match="over 1024 bytes"):
        cls.from_json(data)
    cls.from_json(data.replace("p" * 1025, "p" * 1024).replace("b" * 1025, "b" * 1024))


@pytest.mark.parametrize("project", ["pr\u20acj", " a", "a\nb", "tab\t", "\x7f"])
@pytest.mark.parametrize("cls", MESSAGES)
def test_a_project_no_header_can_carry_is_rejected_before_any_call(cls, project):
    """The project goes out as X-Luci-Project, which HTTP and gRPC carry only as visible ASCII."""
    fields = {SyncTrigger: {"project": project}, ShardJob: shard_fields(project=project)}
    data = encode(**fields.get(cls, batch_fields(project=project)))
    with pytest.raises(MessageError, match="no X-Luci-Project header carries"):
        cls.from_json(data)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("chromium--beta", None),
        (7, "not a non-empty string"),
        (None, "not a non-empty string"),
        ("", "not a non-empty string"),
        ("p" * 1025, "over 1024 bytes"),
        ("pr\u00f6j", "no X-Luci-Project header carries"),
    ],
)
def test_name_problem_says_why_a_stored_project_can_be_no_messages(value, problem):
    found = name_problem("project", value)
    assert (found is None) if problem is None else (problem in found)


def test_a_message_of_one_kind_is_not_read_as_another():
    with pytest.raises(MessageError, match="unknown fields"):
        SyncBatch.from_json(ShardJob("b", "p", 0, 1, PLANNED).to_json())
    with pytest.raises(MessageError, match="unknown fields"):
        ShardJob.from_json(SyncBatch("b", "p", (1,), PLANNED).to_json())


def test_message_errors_are_permanent():
    assert issubclass(MessageError, PermanentError)


# --- fuzzing: a message or a MessageError, never anything else -------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)
field_names = st.sampled_from(["backend", "project", "shard", "shards", "build_ids", "planned_at"]) | st.text(
    max_size=5
)
field_values = (
    json_values
    | names
    | st.integers(min_value=-2, max_value=2**64)
    | st.lists(st.integers(min_value=-1, max_value=2**63), max_size=3)
    | aware_times.map(datetime.datetime.isoformat)
    | st.datetimes().map(datetime.datetime.isoformat)
)
versioned_objects = st.dictionaries(field_names, field_values).map(lambda fields: {**fields, "version": 1})


def mutate(valid):
    """A valid message's fields with some replaced by arbitrary values (Ellipsis drops one)."""
    overrides = st.dictionaries(field_names, field_values | st.just(Ellipsis), max_size=2)
    return overrides.map(lambda changes: {k: v for k, v in valid(**changes).items() if v is not Ellipsis})


near_valid_objects = mutate(shard_fields) | mutate(batch_fields) | mutate(lambda **changes: {"version": 1, **changes})


def decode_or_message_error(cls, data):
    try:
        message = cls.from_json(data)
    except MessageError:
        return
    assert isinstance(message, cls)


@pytest.mark.parametrize("cls", MESSAGES)
@given(data=st.binary())
def test_arbitrary_bytes_decode_or_raise_message_error(cls, data):
    decode_or_message_error(cls, data)


@pytest.mark.parametrize("cls", MESSAGES)
@given(value=json_values)
def test_arbitrary_json_values_decode_or_raise_message_error(cls, value):
    decode_or_message_error(cls, json.dumps(value).encode())


@pytest.mark.parametrize("cls", MESSAGES)
@given(value=versioned_objects)
def test_arbitrary_versioned_objects_decode_or_raise_message_error(cls, value):
    decode_or_message_error(cls, json.dumps(value))


@pytest.mark.parametrize("cls", MESSAGES)
@given(value=near_valid_objects)
def test_almost_valid_objects_decode_or_raise_message_error(cls, value):
    decode_or_message_error(cls, json.dumps(value))
