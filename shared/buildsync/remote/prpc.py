"""A pRPC client: unary calls over HTTP POST, made the way LUCI's own client makes them.

pRPC is how LUCI services (Swarming's TaskBackend, ResultDB's Recorder) are
served: `POST /prpc/<service>/<method>` with the request in the body and the
gRPC code in the `X-Prpc-Grpc-Code` answer header. This module knows nothing
of the methods it calls; the caller passes the service, the method, the
request message, the answer type and any extra headers. The protocol is in
docs/protocols.md "pRPC: how Buildbucket calls a backend".

One `PrpcClient` per host keeps one pooled HTTP session, so batches reuse
connections. A loopback `host:port` is reached over plaintext HTTP and gets no
credentials; every other host gets HTTPS only. The host must be a bare
host[:port] (rules/hosts.py), and a redirect is never followed: it would carry
the request's headers and body to wherever the answer points.
"""

from __future__ import annotations

import base64
import dataclasses
import ipaddress
import re
import time
from collections.abc import Callable, Mapping
from typing import Protocol, TypeVar

import grpc
import requests
import urllib3
from google.protobuf import any_pb2
from google.protobuf.message import DecodeError, Message

from buildsync import logs, wire
from buildsync.errors import TRANSIENT_GRPC_CODES, PermanentError, ResponseTooBigError, TransientError
from buildsync.proto import prpc_pb2
from buildsync.rules.hosts import host_problem

BINARY_MEDIA_TYPE = "application/prpc; encoding=binary"
USER_AGENT = "buildsync pRPC client"

CODE_HEADER = "X-Prpc-Grpc-Code"
DETAILS_HEADER = "X-Prpc-Status-Details-Bin"
TIMEOUT_HEADER = "X-Prpc-Grpc-Timeout"
MAX_RESPONSE_SIZE_HEADER = "X-Prpc-Max-Response-Size"

# pRPC's own default: what fits in an App Engine answer.
DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024 - 32 * 1024

# Error bodies are text for a log line, not payloads: cut them as pRPC does.
MAX_ERROR_TEXT = 4096

_ERROR_DETAILS_TYPE_URL = "type.googleapis.com/" + prpc_pb2.ErrorDetails.DESCRIPTOR.full_name
_CHUNK_BYTES = 1 << 20

# The codes pRPC's client retries within a call (grpcutil.IsTransientCode plus
# a per-attempt deadline). Whether a failed call is worth a redelivery is a
# different question, answered by errors.TRANSIENT_GRPC_CODES.
RETRIED_CODES = frozenset(
    {
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
    }
)

_CODES_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}

ResponseT = TypeVar("ResponseT", bound=Message)


def is_loopback_address(host: str) -> bool:
    """Whether `host` is `localhost:P`, `127.x.y.z:P` or `[::1]:P`: a local server, reached in plaintext."""
    name, sep, port = host.rpartition(":")
    if not sep or _decimal(port) is None or not name:
        return False
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name.removeprefix("[").removesuffix("]")).is_loopback
    except ValueError:
        return False


class Credentials(Protocol):
    """Adds authentication headers to one attempt; asked again on every attempt."""

    def headers(self) -> Mapping[str, str]: ...


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """pRPC's default: 1 s, doubling, 5 retries (6 attempts), all within the call's deadline."""

    first_delay: float = 1.0
    attempts: int = 6


class PrpcError(Exception):
    """A failed call: its gRPC code, the error text and the decoded status details."""

    def __init__(self, code: grpc.StatusCode, message: str, details: tuple[any_pb2.Any, ...] = ()) -> None:
        self.code = code
        self.text = message
        self.details = details
        super().__init__(f"{code.name}: {message}")


class TransientPrpcError(PrpcError, TransientError):
    """A failed call whose code errors.py counts as worth a retry."""


class PermanentPrpcError(PrpcError, PermanentError):
    """A failed call whose code no retry will change."""


def rpc_error(
    code: grpc.StatusCode, message: str, details: tuple[any_pb2.Any, ...] = ()
) -> PrpcError | ResponseTooBigError:
    """The error for `code`, transient or permanent by the one table in errors.py.

    An answer over the size limit is errors.ResponseTooBigError: pRPC reports it
    as UNAVAILABLE, but never retries it, since a caller can only ask for less
    (backend.fetch_in_halves does).
    """
    too_big = _response_too_big(details)
    if too_big is not None:
        return ResponseTooBigError(message, too_big.response_size, too_big.response_limit, code)
    kind = TransientPrpcError if code in TRANSIENT_GRPC_CODES else PermanentPrpcError
    return kind(code, message, details)


def encode_timeout(seconds: float) -> str:
    """The `X-Prpc-Grpc-Timeout` value: the finest unit that fits in 8 digits, rounded up."""
    nanos = max(0, round(seconds * 1e9))
    for unit, size in (("n", 1), ("u", 10**3), ("m", 10**6), ("S", 10**9), ("M", 60 * 10**9)):
        value = -(-nanos // size)
        if value < 10**8:
            return f"{value}{unit}"
    return f"{-(-nanos // (3600 * 10**9))}H"


def code_from_http_status(status: int) -> grpc.StatusCode:
    """The code of an answer without `X-Prpc-Grpc-Code` (it never reached the pRPC server)."""
    if status == 401:
        return grpc.StatusCode.UNAUTHENTICATED
    if status == 403:
        return grpc.StatusCode.PERMISSION_DENIED
    if status == 503:
        return grpc.StatusCode.UNAVAILABLE
    return grpc.StatusCode.INTERNAL


def parse_status_details(values: list[str]) -> tuple[any_pb2.Any, ...]:
    """Decodes `X-Prpc-Status-Details-Bin`: base64 Any values, one per header or comma-joined."""
    details = []
    for value in values:
        for chunk in value.split(","):
            try:
                detail = wire.decode(any_pb2.Any, base64.b64decode(chunk.strip(), validate=True))
            except (ValueError, DecodeError) as error:
                raise rpc_error(
                    grpc.StatusCode.INTERNAL, f"invalid {DETAILS_HEADER} value {chunk!r}: {error}"
                ) from error
            details.append(detail)
    return tuple(details)


def _response_too_big(details: tuple[any_pb2.Any, ...]) -> prpc_pb2.ResponseTooBig | None:
    for detail in details:
        if detail.type_url == _ERROR_DETAILS_TYPE_URL:
            error_details = prpc_pb2.ErrorDetails()
            if detail.Unpack(error_details) and error_details.HasField("response_too_big"):
                return error_details.response_too_big
    return None


class PrpcClient:
    """Calls methods on one host over one pooled HTTP session; safe to share between threads."""

    def __init__(
        self,
        host: str,
        *,
        credentials: Credentials | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        retry: RetryPolicy = RetryPolicy(),
        pool_size: int = 10,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        problem = host_problem(host)
        if problem is not None:
            raise ValueError(f"pRPC host {problem}")
        self.host = host
        self.plaintext = is_loopback_address(host)
        self.credentials = None if self.plaintext else credentials
        self.max_response_bytes = max_response_bytes
        self.retry = retry
        self._sleep = sleep
        self._session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=pool_size, max_retries=0)
        self._scheme = "http" if self.plaintext else "https"
        self._session.mount(f"{self._scheme}://", adapter)

    def call(
        self,
        service: str,
        method: str,
        request: Message,
        response_type: type[ResponseT],
        *,
        timeout: float,
        headers: Mapping[str, str] | None = None,
        decode: Callable[[bytearray], ResponseT] | None = None,
    ) -> ResponseT:
        """Calls `service.method` and returns its answer; `timeout` (seconds) bounds every attempt.

        The answer is read by `decode` when given, else as a `response_type`
        no deeper than Go reads it (wire.py).

        Raises a PrpcError: TransientPrpcError or PermanentPrpcError as
        errors.py sorts the code, ResponseTooBigError for an over-size answer.
        """
        url = f"{self._scheme}://{self.host}/prpc/{service}/{method}"
        for name, value in (headers or {}).items():
            problem = header_value_problem(value)
            if problem:  # the same on every attempt: not retried
                raise rpc_error(grpc.StatusCode.INVALID_ARGUMENT, f"{url}: header {name} cannot be sent: {problem}")
        body = request.SerializeToString()
        deadline = time.monotonic() + timeout
        delay = self.retry.first_delay
        for attempt in range(1, self.retry.attempts + 1):
            try:
                payload, content_type = self._attempt(url, body, dict(headers or {}), deadline)
                break
            except PrpcError as error:
                remaining = deadline - time.monotonic()
                last = attempt == self.retry.attempts
                if last or error.code not in RETRIED_CODES or remaining <= delay:
                    raise
                logs.event(
                    "WARNING",
                    "pRPC call failed transiently; retrying",
                    host=self.host,
                    method=f"{service}/{method}",
                    attempt=attempt,
                    retry_in_seconds=delay,
                    error=str(error),
                )
                self._sleep(delay)
                delay *= 2
        # As in pRPC, an answer that arrived but cannot be read is not asked for again.
        if _media_type(content_type) != _media_type(BINARY_MEDIA_TYPE):
            raise rpc_error(grpc.StatusCode.INTERNAL, f"{url}: answer content type {content_type!r}, not binary")
        try:
            return decode(payload) if decode is not None else wire.decode(response_type, payload)
        except DecodeError as error:
            raise rpc_error(
                grpc.StatusCode.INTERNAL,
                f"{self.host} {service}/{method}: the answer ({len(payload)} bytes) is not a "
                f"{response_type.DESCRIPTOR.full_name}: {error}",
            ) from error

    def _attempt(self, url: str, body: bytes, headers: dict[str, str], deadline: float) -> tuple[bytearray, str]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED, f"{url}: overall deadline exceeded")
        headers.update(self.credentials.headers() if self.credentials is not None else {})
        headers.update(
            {
                "Content-Type": BINARY_MEDIA_TYPE,
                "Accept": BINARY_MEDIA_TYPE,
                "User-Agent": headers.get("User-Agent", USER_AGENT),
                MAX_RESPONSE_SIZE_HEADER: str(self.max_response_bytes),
                TIMEOUT_HEADER: encode_timeout(remaining),
            }
        )
        try:
            with self._session.post(
                url, data=body, headers=headers, timeout=remaining, stream=True, allow_redirects=False
            ) as answer:
                payload = self._read_body(answer, deadline)
                return self._check_status(url, answer, payload), answer.headers.get("Content-Type", "")
        except (requests.Timeout, urllib3.exceptions.TimeoutError) as error:
            raise rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED, f"{url}: attempt deadline exceeded: {error}") from error
        except requests.ConnectionError as error:
            # No answer at all: what gRPC's own client calls UNAVAILABLE (pRPC's says INTERNAL; both retry it).
            raise rpc_error(grpc.StatusCode.UNAVAILABLE, f"{url}: sending the request: {error}") from error
        except (requests.RequestException, urllib3.exceptions.HTTPError) as error:
            raise rpc_error(grpc.StatusCode.INTERNAL, f"{url}: sending the request: {error}") from error

    def _read_body(self, answer: requests.Response, deadline: float) -> bytearray:
        """The body, read within the deadline and the size limit (Content-Length checked first).

        Each read returns what arrived (read1), up to a chunk: a read that
        waited for a whole chunk would let a body dripped a byte at a time
        outlast every deadline, each byte inside the socket's timeout.
        """
        limit = self.max_response_bytes
        declared = _decimal(answer.headers.get("Content-Length", ""))
        length = declared if "Content-Encoding" not in answer.headers else None
        if length is not None and length > limit:
            raise self._too_big(length)
        buffer = bytearray()  # parsed as it is: a copy into bytes would double the peak
        while chunk := answer.raw.read1(_CHUNK_BYTES, decode_content=True):
            buffer += chunk
            if len(buffer) > limit:
                raise self._too_big(0)
            if time.monotonic() > deadline:
                raise rpc_error(
                    grpc.StatusCode.DEADLINE_EXCEEDED, f"{answer.url}: deadline exceeded reading the answer"
                )
        return buffer

    def _too_big(self, size: int) -> ResponseTooBigError:
        shown = f"size {size} " if size else "size "
        return ResponseTooBigError(
            f"{self.host}: the response {shown}exceeds the client limit {self.max_response_bytes}",
            size,
            self.max_response_bytes,
            grpc.StatusCode.UNAVAILABLE,
        )

    def _check_status(self, url: str, answer: requests.Response, payload: bytearray) -> bytearray:
        """The payload of a successful answer; raises the error any other answer carries."""
        code_text = answer.headers.get(CODE_HEADER)
        if code_text is None:
            text = _error_text(payload)
            if answer.status_code >= 500 or answer.status_code in (401, 403):
                raise rpc_error(code_from_http_status(answer.status_code), f"{url}: HTTP {answer.status_code}: {text}")
            raise rpc_error(
                grpc.StatusCode.INTERNAL,
                f"{url}: no {CODE_HEADER} header, HTTP status {answer.status_code}, body: {text!r}",
            )
        number = _decimal(code_text.strip())
        code = _CODES_BY_NUMBER.get(number) if number is not None else None
        if code is None:
            raise rpc_error(grpc.StatusCode.INTERNAL, f"{url}: invalid {CODE_HEADER} header value {code_text!r}")
        if code is grpc.StatusCode.OK:
            return payload
        details = parse_status_details(answer.raw.headers.getlist(DETAILS_HEADER))
        raise rpc_error(code, f"{url}: {_error_text(payload).removesuffix(chr(10))}", details)

    def close(self) -> None:
        self._session.close()


def header_value_problem(value: str) -> str | None:
    """Why `value` cannot be sent as a header value, or None.

    HTTP/1.1 (as `requests` checks it) and gRPC metadata both take printable
    ASCII that does not start with a space; a value from a stored build (an
    update token with a line break, a project outside ASCII) is refused
    before any attempt, instead of failing each one the same way.
    """
    if _HEADER_VALUE.fullmatch(value):
        return None
    return f"{value[:100]!r} is not printable ASCII starting with a visible character"


_HEADER_VALUE = re.compile(r"(?:[\x21-\x7e][\x20-\x7e]*)?")


def _decimal(text: str) -> int | None:
    """`text` as a number when it is ASCII digits only; `str.isdigit` also takes "²", which int() refuses."""
    return int(text) if _DIGITS.fullmatch(text) else None


_DIGITS = re.compile(r"[0-9]{1,18}")


def _media_type(content_type: str) -> tuple[str, ...]:
    """A content type without spacing or case, so `application/prpc;encoding=binary` matches."""
    return tuple(part.strip().lower() for part in content_type.split(";"))


def _error_text(payload: bytes | bytearray) -> str:
    text = payload[:MAX_ERROR_TEXT].decode("utf-8", errors="replace")
    return text + "..." if len(payload) > MAX_ERROR_TEXT else text
