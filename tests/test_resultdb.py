"""Finalizer's verdicts on ResultDB's answers, and its cool-down of a failing host.

The pRPC path against a real server is in tests/test_completion.py; here a
fake client stands in, since only the decisions are under test.
"""

from __future__ import annotations

import grpc
import pytest
from buildsync.ending import resultdb
from buildsync.proto import buildbucket_pb2 as pb
from buildsync.proto import resultdb_pb2 as rpb
from buildsync.remote import prpc

from tests.harness import captured_logs


class FakeClient:
    def __init__(self, answers: list) -> None:
        self.answers = answers
        self.calls: list[tuple] = []

    def call(self, service, method, request, response_type, *, timeout, headers):
        self.calls.append((service, method, request.name, dict(headers)))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def infra(host: str = "results.example", invocation: str = "invocations/i") -> pb.BuildInfra:
    message = pb.BuildInfra()
    message.resultdb.hostname, message.resultdb.invocation = host, invocation
    return message


def finalizer(client: FakeClient, now: list[float]) -> resultdb.Finalizer:
    return resultdb.Finalizer(lambda host: client, "results.example", cool_down=60.0, clock=lambda: now[0])


def test_a_finalize_call_carries_the_token_and_the_project():
    client = FakeClient([rpb.Invocation(name="invocations/i")])
    outcome = finalizer(client, [0.0]).finalize(1, "chromium", infra(), "secret")
    assert outcome is resultdb.Finalization.DONE
    assert client.calls == [
        (
            "luci.resultdb.v1.Recorder",
            "FinalizeInvocation",
            "invocations/i",
            {"Update-Token": "secret", "X-Luci-Project": "chromium"},
        )
    ]


@pytest.mark.parametrize("missing", ["host", "invocation"])
def test_a_build_without_host_or_invocation_needs_no_call(missing):
    client = FakeClient([])
    build_infra = infra(
        host="" if missing == "host" else "results.example", invocation="" if missing == "invocation" else "i"
    )
    assert finalizer(client, [0.0]).finalize(1, "p", build_infra, "t") is resultdb.Finalization.DONE
    assert client.calls == []


@pytest.mark.parametrize(
    ("code", "outcome"),
    [
        (grpc.StatusCode.FAILED_PRECONDITION, resultdb.Finalization.DONE),
        (grpc.StatusCode.PERMISSION_DENIED, resultdb.Finalization.GAVE_UP),
        (grpc.StatusCode.NOT_FOUND, resultdb.Finalization.RETRY),
        (grpc.StatusCode.INVALID_ARGUMENT, resultdb.Finalization.RETRY),
        (grpc.StatusCode.UNAVAILABLE, resultdb.Finalization.RETRY),
    ],
)
def test_resultdb_codes_map_to_upstreams_verdicts(code, outcome):
    client = FakeClient([prpc.rpc_error(code, "answer")])
    assert finalizer(client, [0.0]).finalize(1, "p", infra(), "t") is outcome


def test_a_host_that_failed_transiently_is_left_alone_for_the_cool_down():
    now = [100.0]
    client = FakeClient([prpc.rpc_error(grpc.StatusCode.UNAVAILABLE, "down"), rpb.Invocation()])
    the_finalizer = finalizer(client, now)
    assert the_finalizer.finalize(1, "p", infra(), "t") is resultdb.Finalization.RETRY
    assert the_finalizer.finalize(2, "p", infra(invocation="invocations/j"), "t") is resultdb.Finalization.RETRY
    assert len(client.calls) == 1, "no call waited on the host that is down"
    now[0] += 61
    assert the_finalizer.finalize(2, "p", infra(invocation="invocations/j"), "t") is resultdb.Finalization.DONE
    assert len(client.calls) == 2


def test_a_permanent_failure_does_not_cool_the_host_down():
    client = FakeClient([prpc.rpc_error(grpc.StatusCode.NOT_FOUND, "no such invocation"), rpb.Invocation()])
    the_finalizer = finalizer(client, [0.0])
    assert the_finalizer.finalize(1, "p", infra(), "t") is resultdb.Finalization.RETRY
    assert the_finalizer.finalize(2, "p", infra(invocation="invocations/j"), "t") is resultdb.Finalization.DONE


@pytest.mark.parametrize(
    "host",
    [
        "results.example/x",  # a path: once a bug-class ValueError, retried for a day
        "results.example@evil.example",
        "evil.example#",
        "evil.example",  # well formed, but not the settings' ResultDB host
    ],
)
def test_a_host_that_is_not_the_settings_is_never_called_and_given_up_with_one_error(host):
    client = FakeClient([])
    with captured_logs() as captured:
        outcome = finalizer(client, [0.0]).finalize(1, "p", infra(host=host), "secret")
    assert outcome is resultdb.Finalization.GAVE_UP and client.calls == []
    (error,) = [e for e in captured.events() if e["severity"] == "ERROR"]
    assert error["message"] == "invocation left open: its host is not called" and error["host"] == host
