"""Structured logs: one JSON line per event, configured once however often it is called."""

import datetime
import io
import json
import logging

import pytest
from buildsync import logs


@pytest.fixture(autouse=True)
def reset_logger():
    yield
    for handler in list(logs.LOGGER.handlers):
        logs.LOGGER.removeHandler(handler)
    logs.LOGGER.propagate = True
    logs.LOGGER.setLevel(logging.NOTSET)


def lines(stream):
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_event_writes_one_json_line_with_severity_message_and_fields():
    stream = io.StringIO()
    logs.configure(stream)

    logs.event("INFO", "synced builds", backend="swarming://s", updated=3, ids=[1, 2])

    (entry,) = lines(stream)
    assert entry["severity"] == "INFO"
    assert entry["message"] == "synced builds"
    assert entry["backend"] == "swarming://s"
    assert entry["updated"] == 3
    assert entry["ids"] == [1, 2]
    assert entry["logger"] == "buildsync"
    assert datetime.datetime.fromisoformat(entry["time"]).tzinfo is not None
    assert stream.getvalue().count("\n") == 1


def test_each_event_is_its_own_line():
    stream = io.StringIO()
    logs.configure(stream)

    logs.event("INFO", "first", n=1)
    logs.event("ERROR", "second", n=2)

    assert [(e["severity"], e["message"], e["n"]) for e in lines(stream)] == [
        ("INFO", "first", 1),
        ("ERROR", "second", 2),
    ]


@pytest.mark.parametrize("severity", ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"])
def test_severity_is_written_by_its_cloud_logging_name(severity):
    stream = io.StringIO()
    logs.configure(stream, level=logging.DEBUG)

    logs.event(severity, "something")

    assert [e["severity"] for e in lines(stream)] == [severity]


def test_events_below_the_level_are_not_written():
    stream = io.StringIO()
    logs.configure(stream)

    logs.event("DEBUG", "noise")

    assert stream.getvalue() == ""


def test_configure_twice_does_not_duplicate_lines():
    stream = io.StringIO()
    logs.configure(stream)
    logs.configure(stream)

    logs.event("INFO", "once")

    assert [e["message"] for e in lines(stream)] == ["once"]


def test_configure_again_moves_events_to_the_new_stream():
    old, new = io.StringIO(), io.StringIO()
    logs.configure(old)
    logs.configure(new)

    logs.event("INFO", "moved")

    assert old.getvalue() == ""
    assert [e["message"] for e in lines(new)] == ["moved"]


def test_configured_events_do_not_also_go_to_the_root_logger():
    stream, root_stream = io.StringIO(), io.StringIO()
    root_handler = logging.StreamHandler(root_stream)
    logging.getLogger().addHandler(root_handler)
    try:
        logs.configure(stream)
        logs.event("WARNING", "only once")
    finally:
        logging.getLogger().removeHandler(root_handler)

    assert len(lines(stream)) == 1
    assert root_stream.getvalue() == ""


def test_fields_that_are_not_json_are_written_as_text():
    stream = io.StringIO()
    logs.configure(stream)
    moment = datetime.datetime(2024, 5, 17, 12, 0, tzinfo=datetime.timezone.utc)

    logs.event("INFO", "planned", planned_at=moment)

    (entry,) = lines(stream)
    assert entry["planned_at"] == str(moment)


def test_message_is_not_formatted_with_percent_arguments():
    stream = io.StringIO()
    logs.configure(stream)

    logs.event("INFO", "100% done", ratio="50%")

    (entry,) = lines(stream)
    assert (entry["message"], entry["ratio"]) == ("100% done", "50%")
