"""The TaskBackend client: FetchTasks over pRPC (the default) or native gRPC, behind one seam.

The sync stage sees only `TaskFetcher`; which transport and identity a backend
gets is backend_options.py's choice. Both transports send the same headers:
the caller's token (none to a plaintext loopback backend) and
`X-Luci-Project: <the batch's project>`, as Buildbucket does.
"""

from __future__ import annotations

import abc
import threading
import time
from collections.abc import Callable
from typing import Protocol

import grpc
from google.protobuf.message import DecodeError

from buildsync import logs, metrics, wire
from buildsync.errors import PermanentError, ResponseTooBigError, classified
from buildsync.proto import buildbucket_pb2 as pb
from buildsync.remote import identity
from buildsync.remote.backend_options import GRPC, ID_TOKEN, PRPC, BackendOptions, DeploymentOptions
from buildsync.remote.prpc import Credentials, PrpcClient, PrpcError, is_loopback_address, rpc_error
from buildsync.rules.hosts import host_problem
from buildsync.rules.task_rules import MAX_TASK_IDS

# Long enough for a backend to look up 1000 tasks, short enough that a hung
# backend fails the batch well within a function's 540 s limit.
DEFAULT_DEADLINE_SECONDS = 60.0

# 1000 tasks whose details are near the 50 KB limit answer about 50 MB; both
# transports accept that, and a batch whose answer is larger is asked in halves.
MAX_FETCH_RESPONSE_BYTES = 64 * 1024 * 1024

SERVICE = "buildbucket.v2.TaskBackend"


class TaskFetcher(Protocol):
    def fetch_tasks(self, task_ids: list[pb.TaskID], project: str) -> pb.FetchTasksResponse: ...


def _measured_call(
    target: str, transport: str, task_ids: list[pb.TaskID], call: Callable[[], pb.FetchTasksResponse]
) -> pb.FetchTasksResponse:
    """Runs one FetchTasks call after checking its size, and records it in metrics either way."""
    if len(task_ids) > MAX_TASK_IDS:
        raise PermanentError(f"{len(task_ids)} task ids asked of {target}; the limit is {MAX_TASK_IDS}")
    started, code = time.monotonic(), metrics.OK
    try:
        return call()
    except BaseException as error:
        code = _code_name(error)
        raise
    finally:
        metrics.fetch_tasks(target, transport, code, time.monotonic() - started, len(task_ids))


def _code_name(error: BaseException) -> str:
    """The gRPC code name of a failed call, or the error's type when it never got one (no token)."""
    if isinstance(error, (PrpcError, ResponseTooBigError)):
        return error.code.name
    if isinstance(error, grpc.RpcError) and hasattr(error, "code"):
        return error.code().name
    return type(error).__name__


class _BackendClient(abc.ABC):
    """What both transports' clients hold: one backend's target and address, and the call's deadline."""

    def __init__(
        self,
        target: str,
        hostname: str,
        deadline_seconds: float = DEFAULT_DEADLINE_SECONDS,
        credentials: Credentials | None = None,
        max_response_bytes: int = MAX_FETCH_RESPONSE_BYTES,
    ) -> None:
        self.target = target
        self.hostname = hostname
        self.deadline_seconds = deadline_seconds
        # A plaintext loopback backend gets no token: there is none to send.
        self._connect(None if is_loopback_address(hostname) else credentials, max_response_bytes)

    @abc.abstractmethod
    def _connect(self, credentials: Credentials | None, max_response_bytes: int) -> None:
        """Opens the transport's connection (lazily: nothing is sent until the first call)."""


class PrpcTaskBackend(_BackendClient):
    """FetchTasks as Buildbucket calls it: pRPC over one pooled HTTPS session (HTTP on loopback)."""

    def _connect(self, credentials: Credentials | None, max_response_bytes: int) -> None:
        self._client = PrpcClient(self.hostname, credentials=credentials, max_response_bytes=max_response_bytes)

    def fetch_tasks(self, task_ids: list[pb.TaskID], project: str) -> pb.FetchTasksResponse:
        """Raises the client's PrpcError: transient or permanent by errors.py, or ResponseTooBigError."""
        request = pb.FetchTasksRequest(task_ids=task_ids)

        def call() -> pb.FetchTasksResponse:
            return self._client.call(
                SERVICE,
                "FetchTasks",
                request,
                pb.FetchTasksResponse,
                timeout=self.deadline_seconds,
                headers=identity.project_headers(project),
                decode=decode_fetch_response,
            )

        try:
            return _measured_call(self.target, PRPC, task_ids, call)
        except ResponseTooBigError as error:
            message = f"FetchTasks on {self.target} failed: {error}"
            raise ResponseTooBigError(message, error.size, error.limit, error.code) from error
        except PrpcError as error:
            raise rpc_error(error.code, f"FetchTasks on {self.target} failed: {error.text}", error.details) from error

    def close(self) -> None:
        self._client.close()


class GrpcTaskBackend(_BackendClient):
    """FetchTasks over a native gRPC channel, for a backend that serves no pRPC."""

    def _connect(self, credentials: Credentials | None, max_response_bytes: int) -> None:
        self._credentials = credentials
        options = [("grpc.max_receive_message_length", max_response_bytes)]
        if is_loopback_address(self.hostname):
            self._channel = grpc.insecure_channel(self.hostname, options=options)
        else:
            address = self.hostname if ":" in self.hostname else f"{self.hostname}:443"
            self._channel = grpc.secure_channel(address, grpc.ssl_channel_credentials(), options=options)
        # The stub's method, but reading the answer a task at a time (decode_fetch_response).
        self._fetch = self._channel.unary_unary(
            f"/{SERVICE}/FetchTasks",
            request_serializer=pb.FetchTasksRequest.SerializeToString,
            response_deserializer=decode_fetch_response,
        )

    def fetch_tasks(self, task_ids: list[pb.TaskID], project: str) -> pb.FetchTasksResponse:
        """Raises TransientError when a retry may help, PermanentError when not."""
        request = pb.FetchTasksRequest(task_ids=task_ids)

        def call() -> pb.FetchTasksResponse:
            headers = dict(self._credentials.headers()) if self._credentials is not None else {}
            headers.update(identity.project_headers(project))
            metadata = [(name.lower(), value) for name, value in headers.items()]
            return self._fetch(request, timeout=self.deadline_seconds, metadata=metadata)

        try:
            return _measured_call(self.target, GRPC, task_ids, call)
        except grpc.RpcError as error:
            text = f"{error.code().name}: FetchTasks on {self.target} ({self.hostname}) failed: {error.details()}"
            if error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in (error.details() or ""):
                raise ResponseTooBigError(text) from error
            raise (classified(error, text) or error) from error  # every code is in one of errors.py's tables

    def close(self) -> None:
        self._channel.close()


def decode_fetch_response(data: bytes | bytearray) -> pb.FetchTasksResponse:
    """A FetchTasks answer read a task at a time, so that a task that does not decode fails alone.

    Such a task (nested deeper than Go takes, or broken) becomes that
    position's error, which task_rules.sort_responses turns into its build's
    rejection; the other tasks stand. Raises DecodeError only when the answer
    itself is broken, which fails the batch.
    """
    response = pb.FetchTasksResponse()
    for number, item in wire.length_delimited(data):
        if number != _RESPONSES_FIELD:
            continue  # a field this answer does not declare: nothing to sync from
        entry = response.responses.add()
        try:
            wire.merge(entry, item)
        except DecodeError as error:
            _task_error(
                entry, grpc.StatusCode.DATA_LOSS, f"the backend's answer for this task does not decode: {error}"
            )
    return response


def _task_error(entry: pb.FetchTasksResponse.Response, code: grpc.StatusCode, message: str) -> None:
    """Makes `entry` the error of its task, as a backend answers one task it cannot give."""
    entry.Clear()
    entry.error.code, entry.error.message = code.value[0], message


_RESPONSES_FIELD = pb.FetchTasksResponse.DESCRIPTOR.fields_by_name["responses"].number


def fetch_in_halves(fetcher: TaskFetcher, task_ids: list[pb.TaskID], project: str) -> pb.FetchTasksResponse:
    """FetchTasks for `task_ids`, asked again in halves while an answer is over the size limit.

    The halves' answers are joined in order, so the response still lines up
    with `task_ids`. A single task too big to answer even alone gets an
    error in its place, so that only its build is rejected.
    """
    try:
        return fetcher.fetch_tasks(task_ids, project)
    except ResponseTooBigError as error:
        if len(task_ids) < 2:
            logs.event("WARNING", "one task's answer is over the limit", task=task_ids[0].id, error=str(error))
            response = pb.FetchTasksResponse()
            message = f"the answer for this task alone is over the size limit: {error}"
            _task_error(response.responses.add(), grpc.StatusCode.RESOURCE_EXHAUSTED, message)
            return response
        logs.event(
            "WARNING", "FetchTasks answer over the limit; asking in halves", tasks=len(task_ids), error=str(error)
        )
    half = len(task_ids) // 2
    response = fetch_in_halves(fetcher, task_ids[:half], project)
    response.MergeFrom(fetch_in_halves(fetcher, task_ids[half:], project))
    return response


class BackendPool:
    """One fetcher per backend target, made on first use with the deployment's options, then reused."""

    def __init__(
        self,
        deadline_seconds: float = DEFAULT_DEADLINE_SECONDS,
        options: DeploymentOptions | None = None,
        max_response_bytes: int = MAX_FETCH_RESPONSE_BYTES,
    ) -> None:
        self._deadline_seconds = deadline_seconds
        self._options = options or DeploymentOptions()
        self._max_response_bytes = max_response_bytes
        self._backends: dict[str, PrpcTaskBackend | GrpcTaskBackend] = {}
        self._access_token: identity.AccessTokenCredentials | None = None
        self._lock = threading.Lock()

    def get(self, target: str, hostname: str) -> TaskFetcher:
        with self._lock:
            fetcher = self._backends.get(target)
            if fetcher is None or fetcher.hostname != hostname:
                if fetcher is not None:
                    fetcher.close()
                fetcher = self._open(target, hostname)
                self._backends[target] = fetcher
            return fetcher

    def _open(self, target: str, hostname: str) -> PrpcTaskBackend | GrpcTaskBackend:
        """The fetcher of `target`; a hostname that cannot be called (hosts.py) is a PermanentError, not a call."""
        problem = host_problem(hostname)
        if problem is not None:
            raise PermanentError(f"backend {target}: hostname {problem}; no FetchTasks is sent")
        options = self._options.for_target(target)
        kind = GrpcTaskBackend if options.transport == GRPC else PrpcTaskBackend
        credentials = self._credentials(hostname, options)
        return kind(target, hostname, self._deadline_seconds, credentials, self._max_response_bytes)

    def _credentials(self, hostname: str, options: BackendOptions) -> Credentials | None:
        if is_loopback_address(hostname):
            return None  # plaintext: there is no token to send
        if options.identity == ID_TOKEN:
            return identity.IdTokenCredentials(options.audience_for(hostname))
        if self._access_token is None:  # one token for every backend, refreshed by google-auth
            self._access_token = identity.AccessTokenCredentials()
        return self._access_token

    def close(self) -> None:
        with self._lock:
            for backend in self._backends.values():
                backend.close()
            self._backends.clear()
