"""BuildSteps' format (plain or zlib) and ending a build's incomplete steps."""

import datetime
import zlib

import pytest
from buildsync.proto import buildbucket_pb2 as pb
from buildsync.rules import steps
from google.protobuf import timestamp_pb2

UTC = datetime.timezone.utc
STARTED_AT = datetime.datetime(2024, 5, 17, 11, 0, tzinfo=UTC)
ENDED_AT = datetime.datetime(2024, 5, 17, 11, 30, tzinfo=UTC)
NOW = datetime.datetime(2024, 5, 17, 12, 0, tzinfo=UTC)

# Fields buildsync does not declare: 99 on a Step, 98 on the container (varints 7 and 5).
UNKNOWN_STEP_FIELD = b"\x98\x06\x07"
UNKNOWN_CONTAINER_FIELD = b"\x90\x06\x05"


def timestamp(moment: datetime.datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def step(name, status, started=True, ended=False, **fields):
    message = pb.Step(name=name, status=status, **fields)
    if started:
        message.start_time.FromDatetime(STARTED_AT)
    if ended:
        message.end_time.FromDatetime(ENDED_AT)
    return message


def container(*step_messages) -> pb.Build:
    return pb.Build(steps=step_messages)


def test_small_steps_are_stored_plain():
    steps_container = container(step("compile", pb.SUCCESS, ended=True))

    data, zipped = steps.encode_steps(steps_container)

    assert not zipped
    assert data == steps_container.SerializeToString()


def test_steps_over_a_million_bytes_are_stored_zlib_compressed():
    big = container(step("log", pb.STARTED, summary_markdown="x" * steps.MAX_PLAIN_BYTES))

    data, zipped = steps.encode_steps(big)

    assert zipped
    assert zlib.decompress(data) == big.SerializeToString()
    assert len(data) < steps.MAX_PLAIN_BYTES


def container_of_size(size: int) -> pb.Build:
    """A one-step container whose encoding is exactly `size` bytes (length prefixes vary)."""
    for length in range(size - 16, size):
        candidate = container(pb.Step(name="s", summary_markdown="y" * length))
        if candidate.ByteSize() == size:
            return candidate
    raise AssertionError(f"no one-step container of {size} bytes")


@pytest.mark.parametrize("size, zipped", [(steps.MAX_PLAIN_BYTES, False), (steps.MAX_PLAIN_BYTES + 1, True)])
def test_steps_are_compressed_only_above_a_million_bytes(size, zipped):
    assert steps.encode_steps(container_of_size(size))[1] is zipped


@pytest.mark.parametrize("zipped", [False, True])
def test_decode_reads_plain_and_zipped_steps(zipped):
    stored = container(step("a", pb.STARTED), step("b", pb.SUCCESS, ended=True))
    data = stored.SerializeToString()

    decoded = steps.decode_steps(zlib.compress(data) if zipped else data, zipped)

    assert decoded == stored


@pytest.mark.parametrize(
    "data, zipped, message",
    [
        (b"not zlib", True, "marked zipped but do not inflate"),
        (b"\xff\xff\xff", False, "do not decode as a buildbucket.v2.Build"),
        (zlib.compress(b"\xff\xff\xff"), True, "do not decode as a buildbucket.v2.Build"),
    ],
)
def test_undecodable_steps_raise_an_error_naming_the_problem(data, zipped, message):
    with pytest.raises(steps.StepsFormatError, match=message):
        steps.decode_steps(data, zipped)


def test_incomplete_steps_end_canceled_at_the_given_time_keeping_start_and_summary():
    steps_container = container(
        step("running", pb.STARTED, summary_markdown="half way"),
        step("scheduled", pb.SCHEDULED, started=False),
        step("unspecified", pb.STATUS_UNSPECIFIED, started=False),
    )

    changed = steps.end_incomplete_steps(steps_container, timestamp(NOW))

    assert changed
    for ended in steps_container.steps:
        assert ended.status == pb.CANCELED
        assert ended.end_time.ToDatetime(UTC) == NOW
    running, scheduled, _ = steps_container.steps
    assert running.start_time.ToDatetime(UTC) == STARTED_AT and running.summary_markdown == "half way"
    assert not scheduled.HasField("start_time")


@pytest.mark.parametrize("status", [pb.SUCCESS, pb.FAILURE, pb.INFRA_FAILURE, pb.CANCELED])
def test_ended_steps_keep_their_status_and_end_time(status):
    ended = step("done", status, ended=True)
    steps_container = container(ended, step("running", pb.STARTED))

    steps.end_incomplete_steps(steps_container, timestamp(NOW))

    assert steps_container.steps[0] == ended
    assert steps_container.steps[1].status == pb.CANCELED


def test_steps_that_all_ended_report_no_change():
    steps_container = container(step("a", pb.SUCCESS, ended=True), step("b", pb.FAILURE, ended=True))
    before = steps_container.SerializeToString()

    assert not steps.end_incomplete_steps(steps_container, timestamp(NOW))
    assert steps_container.SerializeToString() == before


def test_ending_steps_keeps_fields_buildsync_does_not_declare():
    stored = container(step("running", pb.STARTED, logs=[pb.Log(name="stdout", url="logdog://x")]))
    stored.steps[0].MergeFromString(UNKNOWN_STEP_FIELD)
    stored.MergeFromString(UNKNOWN_CONTAINER_FIELD)

    decoded = steps.decode_steps(stored.SerializeToString(), False)
    steps.end_incomplete_steps(decoded, timestamp(NOW))
    reencoded, _ = steps.encode_steps(decoded)

    assert UNKNOWN_STEP_FIELD in reencoded and UNKNOWN_CONTAINER_FIELD in reencoded
    assert pb.Build.FromString(reencoded).steps[0].logs[0].url == "logdog://x"
