"""Finalizing an ended build's ResultDB invocation, as Buildbucket does.

Only a build whose BuildInfra names both a ResultDB host and an invocation
has one. The call is `luci.resultdb.v1.Recorder/FinalizeInvocation` over
pRPC with the build's update token and on behalf of the build's project
(docs/rules.md "ResultDB"). It is safe to repeat: an invocation that
is already final answers FAILED_PRECONDITION, which counts as done.

The host comes from the stored build, so it is called only when it is the
settings' ResultDB host (rules/hosts.py); any other is given up with an
ERROR, and no request, token or header reaches it.
"""

from __future__ import annotations

import enum
import threading
import time
from typing import Callable

import grpc

from buildsync import logs
from buildsync.errors import TransientError, as_sync_error
from buildsync.proto import buildbucket_pb2 as pb
from buildsync.proto import resultdb_pb2 as rpb
from buildsync.remote import identity
from buildsync.remote.prpc import PrpcClient
from buildsync.rules.hosts import resultdb_host_problem

SERVICE = "luci.resultdb.v1.Recorder"
METHOD = "FinalizeInvocation"
UPDATE_TOKEN_HEADER = "Update-Token"

# One call finalizes one invocation; ResultDB answers in well under this.
DEFAULT_TIMEOUT_SECONDS = 30.0

# After a host fails transiently, calls to it are left to the outbox for this
# long instead of each waiting out the timeout: a ResultDB outage must not
# hold a batch of 1000 builds past the function's time limit.
HOST_COOL_DOWN_SECONDS = 60.0

# Codes after which the invocation needs nothing more from us (upstream's fatal pair).
_FINAL_CODES = {
    grpc.StatusCode.FAILED_PRECONDITION: "already finalized",
    grpc.StatusCode.PERMISSION_DENIED: "permission denied; the invocation stays open",
}


class Finalization(enum.Enum):
    """What finalizing one invocation came to (build_update.Outcome is what a sync did to a build)."""

    DONE = "done"  # finalized now or before, or nothing to finalize
    GAVE_UP = "gave_up"  # a permanent error, logged; retrying will not help
    RETRY = "retry"  # a transient error; the outbox keeps the effect


def invocation_of(infra: pb.BuildInfra) -> tuple[str, str] | None:
    """(host, invocation name), or None when the build has no invocation to finalize."""
    if infra.resultdb.hostname and infra.resultdb.invocation:
        return infra.resultdb.hostname, infra.resultdb.invocation
    return None


class Finalizer:
    """Finalizes invocations, keeping one pRPC client per ResultDB host; thread-safe."""

    def __init__(
        self,
        make_client: Callable[[str], PrpcClient],
        allowed_host: str,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        cool_down: float = HOST_COOL_DOWN_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._make_client = make_client
        self._allowed_host = allowed_host  # the settings' resultdb.hostname; "" calls no host
        self._timeout = timeout
        self._cool_down = cool_down
        self._clock = clock
        self._clients: dict[str, PrpcClient] = {}
        # host -> when calls to it resume, after a transient failure
        self._resume_at: dict[str, float] = {}
        self._lock = threading.Lock()

    def _cooling(self, host: str) -> bool:
        with self._lock:
            return self._clock() < self._resume_at.get(host, 0.0)

    def _client(self, host: str) -> PrpcClient:
        with self._lock:
            if host not in self._clients:
                self._clients[host] = self._make_client(host)
            return self._clients[host]

    def finalize(self, build_id: int, project: str, infra: pb.BuildInfra, update_token: str) -> Finalization:
        """Finalizes the build's invocation; never raises a SyncError, it returns its verdict."""
        target = invocation_of(infra)
        if target is None:
            return Finalization.DONE
        host, invocation = target
        headers = {UPDATE_TOKEN_HEADER: update_token, **identity.project_headers(project)}
        fields = {"build_id": build_id, "host": host, "invocation": invocation}
        problem = resultdb_host_problem(host, self._allowed_host)
        if problem is not None:
            logs.event("ERROR", "invocation left open: its host is not called", error=problem, **fields)
            return Finalization.GAVE_UP
        if self._cooling(host):
            return Finalization.RETRY
        try:
            self._client(host).call(
                SERVICE,
                METHOD,
                rpb.FinalizeInvocationRequest(name=invocation),
                rpb.Invocation,
                timeout=self._timeout,
                headers=headers,
            )
        except Exception as sync_error:  # sorted by the one table in errors.py (a token refresh, too)
            error = as_sync_error(sync_error, f"finalizing {invocation} on {host}")
            code = getattr(error, "code", None)
            if code in _FINAL_CODES:
                severity = "INFO" if code is grpc.StatusCode.FAILED_PRECONDITION else "ERROR"
                logs.event(severity, f"invocation {_FINAL_CODES[code]}", error=str(error), **fields)
                return Finalization.DONE if code is grpc.StatusCode.FAILED_PRECONDITION else Finalization.GAVE_UP
            logs.event("WARNING", "finalizing the invocation failed; retried later", error=str(error), **fields)
            if isinstance(error, TransientError):
                with self._lock:
                    self._resume_at[host] = self._clock() + self._cool_down
            return Finalization.RETRY
        logs.event("INFO", "invocation finalized", **fields)
        return Finalization.DONE


def prpc_finalizer(allowed_host: str, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> Finalizer:
    """A Finalizer over pRPC to `allowed_host` alone; loopback hosts (tests, the local stack) get no credentials."""
    credentials = identity.AccessTokenCredentials()  # Buildbucket's way: the service account's token
    return Finalizer(lambda host: PrpcClient(host, credentials=credentials), allowed_host, timeout)
