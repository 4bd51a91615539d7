"""A real pRPC server over HTTP on a free loopback port, for tests and the local stack.

It speaks the server half of pRPC (binary encoding only): methods are
registered with their request type and a handler; a handler raises
`PrpcStatus` to answer an error. Every request's path and headers are recorded,
and `raw_answer` can replace any answer with bytes of a test's choosing (a
proxy's HTML, garbage, a missing code header). It can also misbehave as real
servers do: ignore the client's `X-Prpc-Max-Response-Size`, gzip its answers
(so the client learns their size only as it reads), or answer every call with
a redirect to another URL, or drip its answers a byte at a time. `connections` counts the TCP connections accepted,
requests or not.
"""

from __future__ import annotations

import base64
import dataclasses
import gzip
import http.server
import sys
import threading
import time
from collections.abc import Callable, Mapping

import grpc
from buildsync.proto import prpc_pb2
from buildsync.remote import prpc
from google.protobuf import any_pb2
from google.protobuf.message import DecodeError, Message

Handler = Callable[[Message, Mapping[str, str]], Message]


class PrpcStatus(Exception):
    """Raised by a handler: the call fails with this code, text and details."""

    def __init__(self, code: grpc.StatusCode, message: str, details: tuple[any_pb2.Any, ...] = ()) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details


@dataclasses.dataclass(frozen=True)
class RawAnswer:
    status: int = 200
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    body: bytes = b""


@dataclasses.dataclass(frozen=True)
class RecordedRequest:
    path: str
    headers: Mapping[str, str]
    client_port: int


class PrpcServer:
    """Serves registered methods at /prpc/<service>/<method> until `stop`."""

    def __init__(self) -> None:
        self.methods: dict[str, tuple[type[Message], Handler]] = {}
        self.requests: list[RecordedRequest] = []
        # When set, called before the handler; an answer it returns is sent as it is.
        self.raw_answer: Callable[[RecordedRequest], RawAnswer | None] | None = None
        # False: answer whatever the size, as a backend that ignores the client's limit does.
        self.honours_max_response_size = True
        # True: successful answers are gzip-compressed, with Content-Encoding and no plain length.
        self.gzip_answers = False
        # When set, every call is answered 307 Temporary Redirect to this URL.
        self.redirect_to: str | None = None
        # When set, answer bodies are sent a byte at a time, this many seconds apart; `drips` says for each
        # whether its body went out whole (False: the client hung up first), and `drip_ended` is set after each.
        self.drip_seconds: float | None = None
        self.drips: list[bool] = []
        self.drip_ended = threading.Event()
        self.connections = 0
        self._lock = threading.Lock()
        self._http = _HttpServer(("127.0.0.1", 0), _handler_class(self), on_connection=self._connected)
        self.port = self._http.server_address[1]
        self.hostname = f"127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._http.serve_forever, kwargs={"poll_interval": 0.05}, name="prpc-server", daemon=True
        )

    def add_method(self, service: str, method: str, request_type: type[Message], handler: Handler) -> None:
        self.methods[f"/prpc/{service}/{method}"] = (request_type, handler)

    def start(self) -> PrpcServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._thread.join()

    def _connected(self) -> None:
        with self._lock:
            self.connections += 1

    def send_body(self, out, body: bytes) -> None:
        """Writes an answer's body: at once, or dripped (`drip_seconds`)."""
        pause = self.drip_seconds
        if pause is None:
            out.write(body)
            return
        whole = True
        try:
            for index in range(len(body)):
                out.write(body[index : index + 1])
                time.sleep(pause)  # the misbehaviour itself: a server that sends slowly
        except ConnectionError:
            whole = False
        with self._lock:
            self.drips.append(whole)
        self.drip_ended.set()

    def record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def answer(self, request: RecordedRequest, body: bytes) -> RawAnswer:
        """What pRPC answers: the encoded message, or an error with the code header."""
        if self.raw_answer is not None and (raw := self.raw_answer(request)) is not None:
            return raw
        if self.redirect_to is not None:
            return RawAnswer(status=307, headers={"Location": self.redirect_to}, body=b"moved\n")
        route = self.methods.get(request.path)
        if route is None:
            return _error(grpc.StatusCode.UNIMPLEMENTED, f"no method {request.path}")
        if request.headers.get("content-type") != prpc.BINARY_MEDIA_TYPE:
            return _error(grpc.StatusCode.INVALID_ARGUMENT, "only binary requests are served here")
        request_type, handler = route
        try:
            message = request_type.FromString(body)
        except DecodeError as error:
            return _error(grpc.StatusCode.INVALID_ARGUMENT, f"could not decode body: {error}")
        try:
            payload = handler(message, request.headers).SerializeToString()
        except PrpcStatus as status:
            return _error(status.code, status.message, status.details)
        limit = int(request.headers.get(prpc.MAX_RESPONSE_SIZE_HEADER.lower(), "0") or 0)
        if limit and len(payload) > limit and self.honours_max_response_size:
            too_big = any_pb2.Any()
            too_big.Pack(
                prpc_pb2.ErrorDetails(
                    response_too_big=prpc_pb2.ResponseTooBig(response_size=len(payload), response_limit=limit)
                )
            )
            return _error(grpc.StatusCode.UNAVAILABLE, f"the response size {len(payload)} exceeds {limit}", (too_big,))
        headers = {prpc.CODE_HEADER: "0", "Content-Type": prpc.BINARY_MEDIA_TYPE}
        if self.gzip_answers:
            return RawAnswer(headers={**headers, "Content-Encoding": "gzip"}, body=gzip.compress(payload))
        return RawAnswer(headers=headers, body=payload)


def _error(code: grpc.StatusCode, message: str, details: tuple[any_pb2.Any, ...] = ()) -> RawAnswer:
    headers = {prpc.CODE_HEADER: str(code.value[0]), "Content-Type": "text/plain"}
    if details:
        headers[prpc.DETAILS_HEADER] = ",".join(base64.b64encode(d.SerializeToString()).decode() for d in details)
    return RawAnswer(status=_HTTP_STATUS.get(code, 500), headers=headers, body=message.encode() + b"\n")


# The HTTP status a pRPC server pairs with a code; clients read the code header instead.
_HTTP_STATUS = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


class _HttpServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type, on_connection: Callable[[], None]) -> None:
        super().__init__(address, handler)
        self._on_connection = on_connection

    def process_request(self, request: object, client_address: tuple[str, int]) -> None:
        self._on_connection()
        super().process_request(request, client_address)

    def handle_error(self, request: object, client_address: tuple[str, int]) -> None:
        """A client that hung up (its deadline, an answer over its limit) is not a server fault."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _handler_class(server: PrpcServer) -> type[http.server.BaseHTTPRequestHandler]:
    class RequestHandler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, so a pooled client reuses its connection

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            request = RecordedRequest(
                path=self.path,
                headers={name.lower(): value for name, value in self.headers.items()},
                client_port=self.client_address[1],
            )
            server.record(request)
            answer = server.answer(request, body)
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            if "Content-Length" not in answer.headers:  # a test may send its own, readable or not
                self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            server.send_body(self.wfile, answer.body)

        def log_message(self, format: str, *args: object) -> None:
            """Silent: the tests read `server.requests` instead."""

    return RequestHandler
