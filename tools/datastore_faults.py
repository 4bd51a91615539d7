"""A real gRPC proxy in front of a Datastore emulator that aborts chosen commits, as contention would.

Every Datastore call goes through unchanged, except a Commit that writes (or
deletes) an entity of one of the `doomed` builds while failures are left: that
one is answered ABORTED, as production answers a transaction that lost to
contention, and its transaction is rolled back upstream so that its locks go
(a pessimistic database holds them otherwise). Point a client or a function's
DATASTORE_EMULATOR_HOST at `host`.
"""

from __future__ import annotations

import threading
from concurrent import futures

import grpc
from google.cloud.datastore_v1.types import CommitRequest, RollbackRequest

from tools.emulators import free_port

SERVICE = "/google.datastore.v1.Datastore/"
BUILD_KIND = "Build"


class CommitFaults:
    """Aborts the first `failures` commits that touch a build of `doomed`; passes everything else on."""

    def __init__(self, upstream: str, doomed: set[int], failures: int) -> None:
        self.doomed = set(doomed)
        self._left = failures
        self.aborted = 0  # commits answered ABORTED so far
        self._lock = threading.Lock()
        self._upstream = grpc.insecure_channel(upstream)
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
        self._server.add_generic_rpc_handlers([_Passthrough(self)])
        self.host = f"127.0.0.1:{free_port()}"
        self._server.add_insecure_port(self.host)

    def start(self) -> CommitFaults:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop(grace=None)
        self._upstream.close()

    def __enter__(self) -> CommitFaults:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def handle(self, method: str, request: bytes, context: grpc.ServicerContext) -> bytes:
        if method == SERVICE + "Commit" and self._take_failure(request):
            context.abort(grpc.StatusCode.ABORTED, "too much contention on these datastore entities (injected)")
        try:
            return self._upstream.unary_unary(method)(request, timeout=context.time_remaining())
        except grpc.RpcError as error:
            context.abort(error.code(), error.details())

    def _take_failure(self, data: bytes) -> bool:
        """Whether to abort this commit; when so, its transaction is rolled back upstream first."""
        commit = CommitRequest.pb().FromString(data)
        touched = {_build_of(getattr(m, m.WhichOneof("operation"))) for m in commit.mutations}
        with self._lock:
            if self._left <= 0 or not touched & self.doomed:
                return False
            self._left -= 1
            self.aborted += 1
        if commit.transaction:
            rollback = RollbackRequest.pb()(
                project_id=commit.project_id, database_id=commit.database_id, transaction=commit.transaction
            )
            self._upstream.unary_unary(SERVICE + "Rollback")(rollback.SerializeToString(), timeout=30)
        return True


def _build_of(entity_or_key) -> int | None:
    """The build id an entity's key (or a key) is under: its root, when that is a Build."""
    key = entity_or_key.key if hasattr(entity_or_key, "key") else entity_or_key
    root = key.path[0] if key.path else None
    return root.id if root is not None and root.kind == BUILD_KIND else None


class _Passthrough(grpc.GenericRpcHandler):
    """Every unary method of the Datastore service, as raw bytes, to CommitFaults.handle."""

    def __init__(self, faults: CommitFaults) -> None:
        self._faults = faults

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        method = details.method
        return grpc.unary_unary_rpc_method_handler(
            lambda request, context: self._faults.handle(method, request, context)
        )
