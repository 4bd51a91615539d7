"""A ResultDB Recorder on a real pRPC port that records every FinalizeInvocation.

It behaves as ResultDB does where the sync can tell: an invocation it knows
is finalized once, and asking again answers FAILED_PRECONDITION; a wrong
update token answers PERMISSION_DENIED. `fail_next` makes the next calls
fail with a chosen code, to prove the retry paths; `hold` keeps calls waiting
(a caller can be killed mid-call) until `release`.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping

import grpc
from buildsync.ending import resultdb
from buildsync.proto import resultdb_pb2 as rpb
from buildsync.remote import identity

from tools.prpc_server import PrpcServer, PrpcStatus


@dataclasses.dataclass(frozen=True)
class FinalizeCall:
    invocation: str
    update_token: str
    project: str


class ResultDBRecorder:
    """Serves luci.resultdb.v1.Recorder/FinalizeInvocation until `stop`."""

    def __init__(self) -> None:
        self.server = PrpcServer()
        self.server.add_method(resultdb.SERVICE, resultdb.METHOD, rpb.FinalizeInvocationRequest, self._finalize)
        self.hostname = self.server.hostname
        self.calls: list[FinalizeCall] = []
        # invocation name -> the update token it accepts
        self.tokens: dict[str, str] = {}
        self.finalized: set[str] = set()
        self._failures: list[grpc.StatusCode] = []
        self._lock = threading.Lock()
        self._open = threading.Event()
        self._open.set()
        self.arrived = threading.Event()  # set by the first call to arrive

    def add_invocation(self, name: str, update_token: str) -> None:
        with self._lock:
            self.tokens[name] = update_token

    def fail_next(self, *codes: grpc.StatusCode) -> None:
        """The next len(codes) calls fail with these codes, in order."""
        with self._lock:
            self._failures.extend(codes)

    def hold(self) -> None:
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def start(self) -> ResultDBRecorder:
        self.server.start()
        return self

    def stop(self) -> None:
        self.release()
        self.server.stop()

    def _finalize(self, request: rpb.FinalizeInvocationRequest, headers: Mapping[str, str]) -> rpb.Invocation:
        call = FinalizeCall(
            request.name,
            headers.get(resultdb.UPDATE_TOKEN_HEADER.lower(), ""),
            headers.get(identity.PROJECT_HEADER.lower(), ""),
        )
        self.arrived.set()
        self._open.wait(timeout=120)
        with self._lock:
            self.calls.append(call)
            if self._failures:
                code = self._failures.pop(0)
                raise PrpcStatus(code, f"injected {code.name}")
            if request.name not in self.tokens:
                raise PrpcStatus(grpc.StatusCode.NOT_FOUND, f"{request.name} not found")
            if call.update_token != self.tokens[request.name]:
                raise PrpcStatus(grpc.StatusCode.PERMISSION_DENIED, "invalid update token")
            if request.name in self.finalized:
                raise PrpcStatus(grpc.StatusCode.FAILED_PRECONDITION, f"{request.name} is not active")
            self.finalized.add(request.name)
        return rpb.Invocation(name=request.name, state=rpb.Invocation.FINALIZING)
