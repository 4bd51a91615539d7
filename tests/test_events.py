"""The Pub/Sub edge: unwrapping events and mapping errors to acknowledge or retry."""

from __future__ import annotations

import base64
import datetime

import pytest
from buildsync import env, logs
from buildsync.edge import events
from buildsync.errors import MessageError, PermanentError, SupersededError, TransientError
from cloudevents.http import CloudEvent

from tests.harness import captured_logs


def pubsub_event(data: bytes, published: datetime.datetime | None = None, message_id: str = "m-1") -> CloudEvent:
    published = published or datetime.datetime.now(datetime.timezone.utc)
    attributes = {
        "id": message_id,
        "source": "//pubsub.googleapis.com/projects/p/topics/t",
        "type": "google.cloud.pubsub.topic.v1.messagePublished",
        "time": published.isoformat().replace("+00:00", "Z"),
    }
    return CloudEvent(attributes, {"message": {"data": base64.b64encode(data).decode(), "messageId": message_id}})


def handle(event, stage, work, max_age=env.DEFAULT_MAX_EVENT_AGE):
    """events.handle with the cut-off a Runtime would carry."""
    events.handle(event, stage, work, lambda: max_age)


@pytest.fixture
def log_lines():
    with captured_logs() as captured:
        yield captured.events


def test_message_data_is_the_decoded_pubsub_data():
    assert events.message_data(pubsub_event(b'{"version":1}')) == b'{"version":1}'


@pytest.mark.parametrize(
    "data, problem",
    [
        ({"message": {"data": "%%%not base64"}}, "not base64"),
        ({"message": {"data": 7}}, "no Pub/Sub message"),
        ({"nothing": 1}, "no Pub/Sub message"),
        ("a string", "no Pub/Sub message"),
    ],
)
def test_undecodable_envelopes_are_message_errors(data, problem):
    event = CloudEvent({"id": "x", "source": "s", "type": "t"}, data)
    with pytest.raises(MessageError, match=problem):
        events.message_data(event)


def test_success_returns_normally_with_the_data(log_lines):
    seen = []

    handle(pubsub_event(b"payload"), "sync", seen.append)

    assert seen == [b"payload"] and log_lines() == []


def test_permanent_error_is_logged_once_and_acknowledged(log_lines):
    def work(_):
        raise PermanentError("backend 'x' is not in the settings")

    handle(pubsub_event(b"{}", message_id="m-7"), "planner", work)

    [line] = log_lines()
    assert (line["severity"], line["message_id"], line["retry"], line["stage"]) == ("ERROR", "m-7", False, "planner")
    assert "backend 'x'" in line["message"]


def test_transient_error_is_raised_for_redelivery(log_lines):
    def work(_):
        raise TransientError("FetchTasks: UNAVAILABLE")

    with pytest.raises(TransientError):
        handle(pubsub_event(b"{}"), "sync", work)

    assert [(line["severity"], line["retry"]) for line in log_lines()] == [("WARNING", True)]


def test_unexpected_error_is_raised_with_its_traceback_logged(log_lines):
    def work(_):
        raise ZeroDivisionError("a bug")

    with pytest.raises(ZeroDivisionError):
        handle(pubsub_event(b"{}"), "shard", work)

    [line] = log_lines()
    assert line["severity"] == "ERROR" and line["retry"] is True and "ZeroDivisionError" in line["exception"]


def test_event_older_than_the_cut_off_is_dropped_without_work(log_lines):
    old = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=11)
    seen = []

    handle(pubsub_event(b"{}", published=old, message_id="m-9"), "sync", seen.append, datetime.timedelta(minutes=10))

    assert seen == []
    [line] = log_lines()
    assert line["severity"] == "WARNING" and line["age_seconds"] > 600
    assert (line["metric"], line["stage"], line["reason"], line["message_id"]) == (
        "message_dropped",
        "sync",
        "published too long ago",
        "m-9",
    )


def test_a_bad_max_event_age_is_a_permanent_settings_error_and_does_no_work(log_lines):
    def max_age():
        return env.max_event_age({env.MAX_EVENT_AGE: "abc"})

    events.handle(pubsub_event(b"{}"), "sync", pytest.fail, max_age)  # pytest.fail would escape handle

    [line] = log_lines()
    assert (line["severity"], line["error_type"], line["retry"]) == ("ERROR", "SettingsError", False)
    assert "BUILDSYNC_MAX_EVENT_AGE_SECONDS='abc'" in line["message"]


def test_permanent_error_reaches_error_reporting_and_the_permanent_errors_metric(log_lines):
    def work(_):
        raise MessageError("shard message field 'shard': expected int")

    handle(pubsub_event(b"{}", message_id="m-8"), "shard", work)

    [line] = log_lines()
    assert line["@type"] == logs.REPORTED_ERROR_TYPE
    assert line["context"]["reportLocation"]["functionName"] == "work"
    assert (line["metric"], line["error_type"]) == ("permanent_error", "MessageError")


def test_a_message_superseded_by_newer_plans_is_dropped_not_reported_as_an_error(log_lines):
    def work(_):
        raise SupersededError("sync message planned 700 s ago, over the 600 s cut-off", datetime.timedelta(seconds=700))

    handle(pubsub_event(b"{}"), "sync", work)  # returns: acknowledged

    [line] = log_lines()
    assert line["severity"] == "WARNING" and "@type" not in line
    assert (line["metric"], line["reason"], line["age_seconds"]) == ("message_dropped", "planned too long ago", 700)
    assert "over the 600 s cut-off" in line["message"]
