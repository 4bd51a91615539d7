"""The transient/permanent table: is_transient, classified and as_sync_error."""

import grpc
import pytest
from buildsync.errors import (
    TRANSIENT_GRPC_CODES,
    BackendResponseError,
    MessageError,
    PermanentError,
    SettingsError,
    SyncError,
    TransientError,
    UnknownBackendError,
    as_sync_error,
    classified,
    is_permanent,
    is_transient,
)
from google.api_core import exceptions as api_exceptions


class FakeRpcError(grpc.RpcError):
    """What a grpcio call raises: an RpcError that is also a Call with a code()."""

    def __init__(self, code):
        super().__init__(f"rpc failed with {code.name}")
        self._code = code

    def code(self):
        return self._code


@pytest.mark.parametrize(
    "error, transient",
    [
        # Our own errors say what they are.
        (TransientError("backend restarting"), True),
        (PermanentError("bad"), False),
        (SettingsError("bad settings"), False),
        (UnknownBackendError("who?"), False),
        (MessageError("garbage"), False),
        (BackendResponseError("2 responses for 3 ids"), False),
        (SyncError("untagged"), False),
        # gRPC errors from a task backend, by code.
        (FakeRpcError(grpc.StatusCode.UNAVAILABLE), True),
        (FakeRpcError(grpc.StatusCode.DEADLINE_EXCEEDED), True),
        (FakeRpcError(grpc.StatusCode.RESOURCE_EXHAUSTED), True),
        (FakeRpcError(grpc.StatusCode.ABORTED), True),
        (FakeRpcError(grpc.StatusCode.INTERNAL), True),
        (FakeRpcError(grpc.StatusCode.UNKNOWN), True),
        (FakeRpcError(grpc.StatusCode.CANCELLED), True),
        (FakeRpcError(grpc.StatusCode.INVALID_ARGUMENT), False),
        (FakeRpcError(grpc.StatusCode.NOT_FOUND), False),
        (FakeRpcError(grpc.StatusCode.PERMISSION_DENIED), False),
        (FakeRpcError(grpc.StatusCode.UNAUTHENTICATED), False),
        (FakeRpcError(grpc.StatusCode.UNIMPLEMENTED), False),
        (FakeRpcError(grpc.StatusCode.FAILED_PRECONDITION), False),
        (grpc.RpcError("no code at all"), False),
        # Datastore / Pub/Sub client errors.
        (api_exceptions.Aborted("contention"), True),
        (api_exceptions.Conflict("emulator contention"), True),
        (api_exceptions.ServiceUnavailable("down"), True),
        (api_exceptions.DeadlineExceeded("slow"), True),
        (api_exceptions.InternalServerError("oops"), True),
        (api_exceptions.TooManyRequests("slow down"), True),
        (api_exceptions.GatewayTimeout("gateway"), True),
        (api_exceptions.BadGateway("gateway"), True),
        (api_exceptions.Unknown("?"), True),
        (api_exceptions.RetryError("gave up", cause=None), True),
        (api_exceptions.InvalidArgument("bad request"), False),
        (api_exceptions.NotFound("no topic"), False),
        (api_exceptions.PermissionDenied("no access"), False),
        (api_exceptions.Unauthenticated("who"), False),
        (api_exceptions.FailedPrecondition("no index"), False),
        # Plain Python errors.
        (ConnectionResetError("reset"), True),
        (ConnectionRefusedError("refused"), True),
        (TimeoutError("timed out"), True),
        (ValueError("bug"), False),
        (KeyError("bug"), False),
        (RuntimeError("bug"), False),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else str(value),
)
def test_is_transient_sorts_errors(error, transient):
    assert is_transient(error) is transient


def test_as_sync_error_keeps_a_sync_error_as_it_is():
    for error in (TransientError("t"), PermanentError("p"), MessageError("m"), SyncError("s")):
        assert as_sync_error(error, "context") is error


@pytest.mark.parametrize(
    "error, kind",
    [
        (api_exceptions.ServiceUnavailable("datastore down"), TransientError),
        (api_exceptions.Aborted("contention"), TransientError),
        (FakeRpcError(grpc.StatusCode.UNAVAILABLE), TransientError),
        (TimeoutError("timed out"), TransientError),
        (api_exceptions.PermissionDenied("no access"), PermanentError),
        (api_exceptions.NotFound("no topic"), PermanentError),
        (FakeRpcError(grpc.StatusCode.INVALID_ARGUMENT), PermanentError),
    ],
)
def test_as_sync_error_wraps_others_with_the_context_and_tags_them(error, kind):
    wrapped = as_sync_error(error, "fetching 3 tasks from swarming://s")

    assert type(wrapped) is kind
    assert str(wrapped) == f"fetching 3 tasks from swarming://s: {error}"
    assert is_transient(wrapped) is (kind is TransientError)


@pytest.mark.parametrize(
    "error, permanent",
    [
        (PermanentError("bad"), True),
        (MessageError("garbage"), True),
        (TransientError("backend restarting"), False),
        (SyncError("untagged"), False),
        (FakeRpcError(grpc.StatusCode.INVALID_ARGUMENT), True),
        (FakeRpcError(grpc.StatusCode.NOT_FOUND), True),
        (FakeRpcError(grpc.StatusCode.PERMISSION_DENIED), True),
        (FakeRpcError(grpc.StatusCode.UNAUTHENTICATED), True),
        (FakeRpcError(grpc.StatusCode.UNIMPLEMENTED), True),
        (FakeRpcError(grpc.StatusCode.FAILED_PRECONDITION), True),
        (FakeRpcError(grpc.StatusCode.UNAVAILABLE), False),
        (grpc.RpcError("no code at all"), False),
        (api_exceptions.InvalidArgument("bad request"), True),
        (api_exceptions.InvalidArgument("The referenced transaction has expired or is no longer valid."), False),
        (api_exceptions.NotFound("no topic"), True),
        (api_exceptions.PermissionDenied("no access"), True),
        (api_exceptions.FailedPrecondition("no index"), True),
        (api_exceptions.ServiceUnavailable("down"), False),
        (ValueError("bug"), False),
        (KeyError("bug"), False),
        (TypeError("bug"), False),
        (RuntimeError("bug"), False),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else str(value),
)
def test_is_permanent_knows_only_the_errors_in_its_table(error, permanent):
    assert is_permanent(error) is permanent


@pytest.mark.parametrize("bug", [ValueError("bug"), KeyError("bug"), TypeError("bug"), grpc.RpcError("no code")])
def test_as_sync_error_leaves_a_bug_as_it_is_with_the_context_as_a_note(bug):
    result = as_sync_error(bug, "syncing 3 builds")

    assert result is bug
    assert not isinstance(result, SyncError)
    assert bug.__notes__ == ["syncing 3 builds"]


def test_an_expired_transaction_is_transient_but_other_invalid_arguments_are_not():
    assert is_transient(api_exceptions.InvalidArgument("The referenced transaction has expired or is no longer valid."))
    assert is_transient(api_exceptions.InvalidArgument("transaction has expired or is invalid"))
    assert not is_transient(api_exceptions.InvalidArgument("property name is too long"))


@pytest.mark.parametrize("code", [code for code in grpc.StatusCode if code is not grpc.StatusCode.OK])
def test_every_grpc_code_a_call_can_fail_with_is_classified_keeping_the_message(code):
    error = classified(FakeRpcError(code), "FetchTasks failed")

    assert type(error) is (TransientError if code in TRANSIENT_GRPC_CODES else PermanentError)
    assert str(error) == "FetchTasks failed"


def test_classified_leaves_an_error_in_neither_table_to_the_caller():
    assert classified(ZeroDivisionError("a bug"), "context") is None


@pytest.mark.parametrize("code", [code for code in grpc.StatusCode if code is not grpc.StatusCode.OK])
def test_every_client_library_error_of_a_grpc_code_is_sorted_as_the_code_is(code):
    """What Datastore, Pub/Sub and Cloud Tasks raise for a code: never in neither table (a bug retried as such)."""
    error = api_exceptions.from_grpc_status(code, "answered")

    assert is_transient(error) is (code in TRANSIENT_GRPC_CODES)
    assert is_permanent(error) is (code not in TRANSIENT_GRPC_CODES)
