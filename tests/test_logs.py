"""Structured logs: one JSON line per event, configured once however often it is called."""

import base64
import datetime
import io
import json
import logging
import os
import urllib.request

import pytest
from buildsync import logs

from tests.harness import reset_logging
from tools.stack import REPO, FunctionProcess


@pytest.fixture(autouse=True)
def reset_logger():
    yield
    reset_logging()


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


# --- correlation with the request -------------------------------------------

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def test_traceparent_gives_trace_span_and_sampling():
    fields = logs.trace_fields({"traceparent": f"00-{TRACE}-00f067aa0ba902b7-01"}, "my-project")

    assert fields == {
        logs.TRACE_FIELD: f"projects/my-project/traces/{TRACE}",
        logs.SPAN_FIELD: "00f067aa0ba902b7",
        logs.SAMPLED_FIELD: True,
    }


def test_cloud_trace_context_gives_trace_and_a_hex_span():
    fields = logs.trace_fields({"X-Cloud-Trace-Context": f"{TRACE}/1;o=0"}, "p")

    assert fields == {
        logs.TRACE_FIELD: f"projects/p/traces/{TRACE}",
        logs.SPAN_FIELD: "0000000000000001",
        logs.SAMPLED_FIELD: False,
    }


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"traceparent": "00-00000000000000000000000000000000-00f067aa0ba902b7-01"},
        {"traceparent": "garbage"},
        {"X-Cloud-Trace-Context": "not-a-trace"},
    ],
)
def test_no_trace_without_a_valid_header(headers):
    assert logs.trace_fields(headers, "p") == {}


def test_no_trace_without_a_project():
    assert logs.trace_fields({"traceparent": f"00-{TRACE}-00f067aa0ba902b7-01"}, None) == {}


def test_line_logged_in_a_request_carries_its_trace_and_execution_id(monkeypatch):
    flask = pytest.importorskip("flask")  # functions-framework's own dependency
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "my-project")
    stream = io.StringIO()
    logs.configure(stream)
    app = flask.Flask("test")
    headers = {"traceparent": f"00-{TRACE}-00f067aa0ba902b7-01", "Function-Execution-Id": "abc123"}

    with app.test_request_context(headers=headers):
        logs.event("INFO", "inside")
    logs.event("INFO", "outside")

    inside, outside = lines(stream)
    assert inside[logs.TRACE_FIELD] == f"projects/my-project/traces/{TRACE}"
    assert inside[logs.LABELS_FIELD] == {"execution_id": "abc123"}
    assert logs.TRACE_FIELD not in outside and logs.LABELS_FIELD not in outside


def test_pool_threads_log_with_the_trace_of_the_request_that_started_them(monkeypatch):
    import concurrent.futures

    flask = pytest.importorskip("flask")
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "p")
    stream = io.StringIO()
    logs.configure(stream)
    app = flask.Flask("test")

    with app.test_request_context(headers={"X-Cloud-Trace-Context": f"{TRACE}/7;o=1"}):
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            list(pool.map(logs.in_current_context(lambda n: logs.event("INFO", "group", n=n)), range(4)))

    assert sorted(e["n"] for e in lines(stream)) == [0, 1, 2, 3]
    assert {e[logs.TRACE_FIELD] for e in lines(stream)} == {f"projects/p/traces/{TRACE}"}


def test_default_stream_is_stdout_at_the_time_of_the_line(monkeypatch):
    logs.configure()
    swapped = io.StringIO()  # as functions-framework swaps sys.stdout per request
    monkeypatch.setattr("sys.stdout", swapped)

    logs.event("INFO", "after the swap")

    assert [e["message"] for e in lines(swapped)] == ["after the swap"]


# --- size --------------------------------------------------------------------


def test_long_fields_are_cut_and_say_so():
    stream = io.StringIO()
    logs.configure(stream)

    logs.event("WARNING", "rejected", reason="x" * 100_000, ids=list(range(5_000)))

    (entry,) = lines(stream)
    assert entry["reason"].startswith("x" * logs.MAX_FIELD_CHARS)
    assert entry["reason"].endswith(f"[{100_000 - logs.MAX_FIELD_CHARS} more characters]")
    assert len(entry["ids"]) == logs.MAX_LIST_ITEMS + 1 and entry["ids"][-1] == "… [4000 more items]"
    assert len(stream.getvalue()) < logs.MAX_LINE_BYTES


def test_a_line_of_many_long_fields_stays_far_below_the_entry_limit():
    stream = io.StringIO()
    logs.configure(stream)

    logs.event("ERROR", "m" * 300_000, **{f"field{i}": "é" * 50_000 for i in range(40)})

    (entry,) = lines(stream)
    assert entry["truncated"] is True
    assert len(stream.getvalue().encode()) < logs.MAX_LINE_BYTES < 256_000


def test_a_long_traceback_keeps_its_end():
    stream = io.StringIO()
    logs.configure(stream)

    try:
        raise RuntimeError(" " * 20_000 + "the cause at the end")
    except RuntimeError:
        logs.LOGGER.exception("failed")

    (entry,) = lines(stream)
    assert entry["exception"].startswith("… ") and "the cause at the end" in entry["exception"]


# --- through a real functions-framework process ---------------------------------


def test_a_push_with_a_trace_header_logs_lines_that_carry_its_trace_and_execution_id(tmp_path, settings_file):
    """The shard function served by functions-framework, as deployed (LOG_EXECUTION_ID=true)."""
    env = {
        **os.environ,
        "GOOGLE_CLOUD_PROJECT": "trace-project",
        "BUILDSYNC_SETTINGS": str(settings_file),
        "LOG_EXECUTION_ID": "true",
        # Clients are made but never reach these: a malformed message fails first.
        "DATASTORE_EMULATOR_HOST": "127.0.0.1:9",
        "PUBSUB_EMULATOR_HOST": "127.0.0.1:9",
        "PYTHONUNBUFFERED": "1",
    }
    function = FunctionProcess("shard", env, tmp_path, REPO / "functions" / "shard").start()
    try:
        headers = {
            "traced-w3c": {"traceparent": f"00-{TRACE}-00f067aa0ba902b7-01"},
            "traced-cloud": {"X-Cloud-Trace-Context": f"{TRACE.replace('4', '5')}/12345;o=1"},
        }
        for message_id, header in headers.items():
            envelope = {
                "message": {"data": base64.b64encode(b"not json").decode(), "messageId": message_id},
                "subscription": "projects/trace-project/subscriptions/buildsync-shard",
            }
            request = urllib.request.Request(
                function.url,
                data=json.dumps(envelope).encode(),
                headers={"Content-Type": "application/json", **header},
            )
            with urllib.request.urlopen(request, timeout=30) as response:
                assert response.status == 200
        lines = {e["message_id"]: e for e in function.log_events() if e.get("message_id") in headers}
    finally:
        function.stop()

    w3c, cloud = lines["traced-w3c"], lines["traced-cloud"]
    assert w3c[logs.TRACE_FIELD] == f"projects/trace-project/traces/{TRACE}"
    assert w3c[logs.SPAN_FIELD] == "00f067aa0ba902b7"
    assert cloud[logs.TRACE_FIELD] == f"projects/trace-project/traces/{TRACE.replace('4', '5')}"
    ids = {w3c[logs.LABELS_FIELD]["execution_id"], cloud[logs.LABELS_FIELD]["execution_id"]}
    assert len(ids) == 2 and all(ids), "each request its own execution id"
    assert w3c["severity"] == "ERROR" and "not JSON" in w3c["message"]
