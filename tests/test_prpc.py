"""The pRPC client: its pure rules, then calls against a real HTTP server on loopback."""

from __future__ import annotations

import base64
import re
import threading
import time

import grpc
import pytest
from buildsync.errors import PermanentError, ResponseTooBigError, TransientError, is_transient
from buildsync.proto import buildbucket_pb2 as pb
from buildsync.proto import prpc_pb2
from buildsync.remote import prpc
from google.protobuf import any_pb2
from google.rpc import status_pb2

from tools.prpc_server import PrpcServer, PrpcStatus, RawAnswer

SERVICE, METHOD = "buildbucket.v2.TaskBackend", "FetchTasks"


# --- the timeout header ---


@pytest.mark.parametrize(
    "seconds, header",
    [
        (10, "10000000u"),
        (0.001, "1000000n"),
        (0.099999999, "99999999n"),
        (0.1, "100000u"),
        (60, "60000000u"),
        (100, "100000m"),
        (100_000, "100000S"),
        (100_000_000, "1666667M"),
        (10**12, "277777778H"),
        (0, "0n"),
        (2.5e-7, "250n"),
    ],
)
def test_encode_timeout_uses_the_finest_unit_that_fits_eight_digits(seconds, header):
    assert prpc.encode_timeout(seconds) == header


@pytest.mark.parametrize("seconds", [0.0001, 0.5, 1, 59.9, 540, 3600, 86400 * 30])
def test_encode_timeout_rounds_up_and_matches_the_protocol_pattern(seconds):
    header = prpc.encode_timeout(seconds)
    assert re.fullmatch(r"\d{1,8}[HMSmun]", header)
    unit = {"H": 3600, "M": 60, "S": 1, "m": 1e-3, "u": 1e-6, "n": 1e-9}[header[-1]]
    assert int(header[:-1]) * unit >= seconds * (1 - 1e-12)


# --- codes ---


@pytest.mark.parametrize(
    "status, code",
    [
        (401, grpc.StatusCode.UNAUTHENTICATED),
        (403, grpc.StatusCode.PERMISSION_DENIED),
        (503, grpc.StatusCode.UNAVAILABLE),
        (500, grpc.StatusCode.INTERNAL),
        (502, grpc.StatusCode.INTERNAL),
        (504, grpc.StatusCode.INTERNAL),
    ],
)
def test_code_from_http_status_follows_prpc(status, code):
    assert prpc.code_from_http_status(status) is code


@pytest.mark.parametrize("code", list(grpc.StatusCode))
def test_rpc_error_sorts_every_code_by_the_errors_table(code):
    error = prpc.rpc_error(code, "x")
    probe = grpc.RpcError()
    probe.code = lambda: code
    assert is_transient(error) is is_transient(probe)
    assert isinstance(error, TransientError if is_transient(probe) else PermanentError)


def test_unavailable_with_response_too_big_details_is_permanent_and_says_the_sizes():
    error = prpc.rpc_error(grpc.StatusCode.UNAVAILABLE, "too big", (_too_big_detail(70, 64),))
    assert isinstance(error, ResponseTooBigError)
    assert not is_transient(error)
    assert (error.size, error.limit) == (70, 64)


def test_parse_status_details_reads_comma_joined_and_repeated_values():
    one, two = _any("a"), _any("b")
    encoded = [base64.b64encode(d.SerializeToString()).decode() for d in (one, two, one)]
    details = prpc.parse_status_details([f"{encoded[0]},{encoded[1]}", encoded[2]])
    assert [d.type_url for d in details] == [one.type_url, two.type_url, one.type_url]


def test_parse_status_details_names_a_value_that_is_not_base64():
    with pytest.raises(prpc.PrpcError, match="invalid X-Prpc-Status-Details-Bin value '!!'") as caught:
        prpc.parse_status_details(["!!"])
    assert caught.value.code is grpc.StatusCode.INTERNAL


@pytest.mark.parametrize(
    "host",
    [
        "https://example.com",
        "example.com/prpc",
        "",
        "results.api.cr.dev@evil.example",
        "evil.example#",
        "evil.example?",
        "evil.example\\",
        "localhost:\u00b2",
    ],
)
def test_client_refuses_anything_but_a_bare_host_and_port(host):
    with pytest.raises(ValueError, match=r"is not a host\[:port\] that can be called"):
        prpc.PrpcClient(host)


def test_only_loopback_with_a_port_is_plaintext():
    assert prpc.PrpcClient("127.0.0.1:8080").plaintext
    assert not prpc.PrpcClient("chromium-swarm.appspot.com").plaintext
    assert not prpc.PrpcClient("localhost").plaintext


# --- against a real server ---


@pytest.fixture
def server():
    server = PrpcServer().start()
    server.release = threading.Event()
    yield server
    server.release.set()
    server.stop()


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def client(server, sleeps):
    client = prpc.PrpcClient(server.hostname, sleep=sleeps.append, max_response_bytes=1 << 20)
    yield client
    client.close()


def _fetch(client, ids=("t1",), timeout=60.0, headers=None) -> pb.FetchTasksResponse:
    request = pb.FetchTasksRequest(task_ids=[pb.TaskID(target="swarming://x", id=i) for i in ids])
    return client.call(SERVICE, METHOD, request, pb.FetchTasksResponse, timeout=timeout, headers=headers)


def _echo(request, headers):
    response = pb.FetchTasksResponse()
    for task_id in request.task_ids:
        response.responses.add().task.id.CopyFrom(task_id)
    return response


def test_call_posts_binary_with_the_protocol_headers_and_decodes_the_answer(server, client):
    server.add_method(SERVICE, METHOD, pb.FetchTasksRequest, _echo)
    response = _fetch(client, ids=("a", "b"), timeout=10.0, headers={"X-Luci-Project": "chromium"})
    assert [r.task.id.id for r in response.responses] == ["a", "b"]
    (request,) = server.requests
    assert request.path == "/prpc/buildbucket.v2.TaskBackend/FetchTasks"
    assert request.headers["content-type"] == "application/prpc; encoding=binary"
    assert request.headers["accept"] == "application/prpc; encoding=binary"
    assert request.headers["user-agent"] == prpc.USER_AGENT
    assert request.headers["x-prpc-max-response-size"] == str(1 << 20)
    assert request.headers["x-luci-project"] == "chromium"
    assert "authorization" not in request.headers
    timeout = request.headers["x-prpc-grpc-timeout"]
    assert re.fullmatch(r"\d+u", timeout) and 9_000_000 < int(timeout[:-1]) <= 10_000_000


def test_plaintext_loopback_never_asks_the_credentials(server, sleeps):
    class Refusing:
        def headers(self):
            raise AssertionError("credentials asked for on plaintext")

    server.add_method(SERVICE, METHOD, pb.FetchTasksRequest, _echo)
    client = prpc.PrpcClient(server.hostname, credentials=Refusing())
    assert len(_fetch(client).responses) == 1
    client.close()


def test_calls_reuse_one_pooled_connection(server, client):
    server.add_method(SERVICE, METHOD, pb.FetchTasksRequest, _echo)
    for _ in range(3):
        _fetch(client)
    assert len({r.client_port for r in server.requests}) == 1


def test_unavailable_then_ok_is_retried_after_one_second(server, client, sleeps):
    answers = iter([PrpcStatus(grpc.StatusCode.UNAVAILABLE, "restarting")])

    def flaky(request, headers):
        if (error := next(answers, None)) is not None:
            raise error
        return _echo(request, headers)

    server.add_method(SERVICE, METHOD, pb.FetchTasksRequest, flaky)
    assert len(_fetch(client).responses) == 1
    assert len(server.requests) == 2 and sleeps == [1.0]


@pytest.mark.parametrize(
    "code",
    [grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED],
)
def test_retried_codes_get_six_attempts_with_doubling_delays(server, client, sleeps, code):
    def failing(request, headers):
        raise PrpcStatus(code, "down")

    server.add_method(SERVICE, METHOD, pb.FetchTasksRequest, failing)
    with pytest.raises(prpc.TransientPrpcError) as caught:
        _fetch(client)
    assert caught.value.code is code and caught.value.text.endswith(": down")
    assert len(server.requests) == 6 and sleeps == [1.0, 2.0, 4.0, 8.0, 16.0]


def test_retries_stop_when_the_next_delay_would_pass_the_deadline(server, client, sleeps):
    def failing(request, headers):
        raise PrpcStatus(grpc.StatusCode.UNAVAILABLE, "down")

    server.add_method(SERVICE, METHOD, pb.FetchTasksRequest, failing)
    with pytest.raises(prpc.TransientPrpcError):
        _fetch(client, timeout=3.5)
    assert sleeps == [1.0, 2.0]


def test_invalid_argument_is_permanent_and_not_retried_with_its_text_and_details(server, client, sleeps):
    detail = _any("bad id")

    def refusing(request, headers):
        raise PrpcStatus(grpc.StatusCode.INVALID_ARGUMENT, "task id 't1' is malformed", (detail, detail))

    server.add_method(SERVICE, METHOD, pb.FetchTasksRequest, refusing)
    with pytest.raises(prpc.PermanentPrpcError) as caught:
        _fetch(client)
    error = caught.value
    assert error.code is grpc.StatusCode.INVALID_ARGUMENT
    assert error.text.endswith("task id 't1' is malformed")
    assert list(error.details) == [detail, detail]
    assert len(server.requests) == 1 and sleeps == []


@pytest.mark.parametrize(
    "status, body, code, retried",
    [
        (503, b"<html><body>Service Unavailable</body></html>", grpc.StatusCode.UNAVAILABLE, True),
        (502, b"bad gateway", grpc.StatusCode.INTERNAL, True),
        (401, b"login required", grpc.StatusCode.UNAUTHENTICATED, False),
        (403, b"<html>forbidden</html>", grpc.StatusCode.PERMISSION_DENIED, False),
    ],
)
def test_an_answer_without_the_code_header_is_mapped_by_http_status(server, client, status, body, code, retried):
    server.raw_answer = lambda request: RawAnswer(status=status, body=body)
    with pytest.raises(prpc.PrpcError) as caught:
        _fetch(client)
    assert caught.value.code is code and f"HTTP {status}" in str(caught.value)
    assert len(server.requests) == (6 if retried else 1)


def test_a_4xx_answer_without_the_code_header_is_not_prpc(server, client):
    server.raw_answer = lambda request: RawAnswer(status=404, body=b"Not Found")
    with pytest.raises(prpc.TransientPrpcError, match="no X-Prpc-Grpc-Code header, HTTP status 404, body: 'Not Found'"):
        _fetch(client)


@pytest.mark.parametrize("header", ["abc", "-1", "99", "", "\u00b2", "1\u00b2"])
def test_an_unreadable_code_header_is_internal(server, client, header):
    server.raw_answer = lambda request: RawAnswer(headers={prpc.CODE_HEADER: header})
    with pytest.raises(prpc.PrpcError, match="invalid X-Prpc-Grpc-Code header value") as caught:
        _fetch(client)
    assert caught.value.code is grpc.StatusCode.INTERNAL


def test_garbage_with_code_zero_is_internal_and_named(server, client, sleeps):
    answer = RawAnswer(
        headers={prpc.CODE_HEADER: "0", "Content-Type": prpc.BINARY_MEDIA_TYPE}, body=b"\xff\xfe garbage"
    )
    server.raw_answer = lambda request: answer
    with pytest.raises(prpc.TransientPrpcError, match="is not a buildbucket.v2.FetchTasksResponse") as caught:
        _fetch(client)
    assert caught.value.code is grpc.StatusCode.INTERNAL
    assert len(server.requests) == 1  # as pRPC: a body that does not decode is not asked again


def test_a_json_answer_to_a_binary_request_is_refused_without_a_retry(server, client):
    server.raw_answer = lambda request: RawAnswer(headers={prpc.CODE_HEADER: "0", "Content-Type": "application/json"})
    with pytest.raises(prpc.PrpcError, match="content type 'application/json'"):
        _fetch(client)
    assert len(server.requests) == 1


def test_a_hung_server_fails_the_call_at_its_deadline(server, client, sleeps):
    server.add_method(SERVICE, METHOD, pb.FetchTasksRequest, lambda r, h: server.release.wait() and _echo(r, h))
    started = time.monotonic()
    with pytest.raises(prpc.TransientPrpcError) as caught:
        _fetch(client, timeout=0.5)
    assert caught.value.code is grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - started < 5  # bounded by the deadline, not by the server
    assert sleeps == []  # no time left for a retry


def test_a_body_dripped_a_byte_at_a_time_ends_the_call_at_its_deadline_not_at_the_bodys_end(server, client):
    """Each byte comes well inside the socket's timeout, so only a deadline checked per read stops it."""
    answer = pb.FetchTasksResponse()
    answer.responses.add().task.summary_markdown = "x" * 1000
    server.add_method(SERVICE, METHOD, pb.FetchTasksRequest, lambda r, h: answer)
    server.drip_seconds = 0.02  # 20 s for the whole body
    with pytest.raises(prpc.TransientPrpcError) as caught:
        _fetch(client, timeout=1.0)
    assert caught.value.code is grpc.StatusCode.DEADLINE_EXCEEDED
    assert server.drip_ended.wait(60)
    assert server.drips == [False]  # the client hung up before the body's end


def test_a_header_no_http_request_carries_is_refused_before_sending_and_not_retried(server, client, sleeps):
    server.add_method(SERVICE, METHOD, pb.FetchTasksRequest, _echo)
    for value in ("token\r\nX-Injected: 1", "pr\u20acj"):
        with pytest.raises(prpc.PermanentPrpcError, match="cannot be sent") as caught:
            _fetch(client, headers={"Update-Token": value})
        assert caught.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert server.requests == [] and sleeps == []


def test_an_answer_over_the_limit_is_never_retried(server, client, sleeps):
    big = pb.FetchTasksResponse()
    big.responses.add().task.summary_markdown = "x" * (2 << 20)
    server.add_method(SERVICE, METHOD, pb.FetchTasksRequest, lambda r, h: big)
    with pytest.raises(ResponseTooBigError) as caught:
        _fetch(client)
    assert caught.value.limit == 1 << 20 and caught.value.size > 2 << 20  # the server honoured the header
    assert len(server.requests) == 1 and sleeps == []


def test_an_answer_over_the_limit_is_caught_by_the_client_too(server, client):
    server.raw_answer = lambda request: RawAnswer(
        headers={prpc.CODE_HEADER: "0", "Content-Type": prpc.BINARY_MEDIA_TYPE}, body=b"\0" * ((1 << 20) + 1)
    )
    with pytest.raises(ResponseTooBigError, match=f"size {(1 << 20) + 1} exceeds the client limit {1 << 20}"):
        _fetch(client)


def test_a_content_length_that_is_not_ascii_digits_is_read_as_no_length(server, client):
    server.add_method(SERVICE, METHOD, pb.FetchTasksRequest, _echo)
    headers = {prpc.CODE_HEADER: "0", "Content-Type": prpc.BINARY_MEDIA_TYPE, "Content-Length": "\u00b2"}
    answer = RawAnswer(
        headers={**headers, "Connection": "close"},  # the body ends where the connection does
        body=_echo(pb.FetchTasksRequest(task_ids=[pb.TaskID(id="t1")]), {}).SerializeToString(),
    )
    server.raw_answer = lambda request: answer
    assert [r.task.id.id for r in _fetch(client, timeout=10.0).responses] == ["t1"]


def test_a_redirect_is_never_followed_so_headers_and_body_stay_with_the_host_called(server, client):
    elsewhere = PrpcServer().start()
    try:
        elsewhere.add_method(SERVICE, METHOD, pb.FetchTasksRequest, _echo)
        server.redirect_to = f"http://{elsewhere.hostname}/prpc/{SERVICE}/{METHOD}"
        with pytest.raises(prpc.PrpcError, match="HTTP status 307"):
            _fetch(client, headers={"Update-Token": "secret", "X-Luci-Project": "chromium"})
        assert elsewhere.connections == 0 and elsewhere.requests == []
    finally:
        elsewhere.stop()


def test_a_closed_port_is_unavailable_and_retried(sleeps):
    server = PrpcServer()
    hostname = server.hostname
    server._http.server_close()
    client = prpc.PrpcClient(hostname, sleep=sleeps.append)
    with pytest.raises(prpc.TransientPrpcError, match="sending the request") as caught:
        _fetch(client)
    assert caught.value.code is grpc.StatusCode.UNAVAILABLE and len(sleeps) == 5


def _any(message: str) -> any_pb2.Any:
    detail = any_pb2.Any()
    detail.Pack(status_pb2.Status(code=3, message=message))
    return detail


def _too_big_detail(size: int, limit: int) -> any_pb2.Any:
    detail = any_pb2.Any()
    detail.Pack(
        prpc_pb2.ErrorDetails(response_too_big=prpc_pb2.ResponseTooBig(response_size=size, response_limit=limit))
    )
    return detail
