"""The two kinds of failure, and the one table that sorts errors into them.

A *transient* error may go away on its own (a backend restarting, Datastore
contention): the caller raises it so that Pub/Sub redelivers the message. A
*permanent* error will fail the same way every time (a malformed message, an
unknown backend): the caller logs it and acknowledges the message. Nothing is
lost by acknowledging, because the next scheduled run finds the same due builds
again.

An error in neither table is a bug, not a verdict on the message: it stays
what it is, so events.handle logs its traceback and Pub/Sub retries it until
it is dead-lettered.
"""

from __future__ import annotations

import datetime

import google.auth.exceptions
import grpc
from google.api_core import exceptions as api_exceptions


class SyncError(Exception):
    """Base of every error buildsync raises on purpose."""


class TransientError(SyncError):
    """A failure worth retrying: raise it and let Pub/Sub redeliver."""


class PermanentError(SyncError):
    """A failure no retry can fix: log it and acknowledge the message."""


class SettingsError(PermanentError):
    """The settings file is missing, unreadable or invalid."""


class UnknownBackendError(PermanentError):
    """A message names a backend target the settings do not have."""


class MessageError(PermanentError):
    """A Pub/Sub message that cannot be decoded into what its topic carries."""


class SupersededError(PermanentError):
    """A message that newer plans cover (admission.py): acknowledged unhandled, which is no failure."""

    # The `reason` label of the messages_dropped metric.
    reason = "planned too long ago"

    def __init__(self, message: str, age: datetime.timedelta) -> None:
        super().__init__(message)
        self.age = age


class StoredDataError(PermanentError):
    """Something stored (an entity's property, a sync-time key, a steps blob) that does not hold what it should.

    It fails only what it belongs to (one build, one outbox entry): reading
    it again reads the same bytes.
    """


class DatastoreUnavailable(TransientError):
    """Datastore did not answer a small read: the run stops, naming the host."""


class BreakerOpenError(SupersededError):
    """A batch for a backend whose breaker is open (docs/isolation.md): held back, its builds left due.

    Acknowledged unhandled like any superseded message: the planner's probe,
    then its full plans once the backend answers, cover its builds.
    """

    reason = "backend breaker open"


class RetriesExhaustedError(PermanentError):
    """A batch still failing in part on its last attempt: not published again; the next plan finds its builds due."""


class BackendResponseError(PermanentError):
    """A FetchTasks response that breaks the protocol for the whole batch."""


class ResponseTooBigError(PermanentError):
    """An answer over the client's size limit: asking again gets the same answer, so ask for less.

    `code` is what the transport said (pRPC says UNAVAILABLE, with a
    ResponseTooBig detail); `size` and `limit` are in bytes, 0 when unknown.
    """

    def __init__(
        self, message: str, size: int = 0, limit: int = 0, code: grpc.StatusCode = grpc.StatusCode.RESOURCE_EXHAUSTED
    ) -> None:
        super().__init__(message)
        self.size = size
        self.limit = limit
        self.code = code


# gRPC codes from a task backend that a later attempt may not see again.
TRANSIENT_GRPC_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.CANCELLED,
    }
)

# gRPC codes that say the request itself is wrong; every attempt gets the same.
PERMANENT_GRPC_CODES = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.DATA_LOSS,
    }
)

# Datastore and Pub/Sub client errors that a later attempt may not see again.
# Contention is reported as Aborted in production and as Conflict by some
# emulators, so both are here. Under pessimistic locking (Firestore in Datastore
# mode) a transaction that waited too long for a lock gets Aborted, "409
# Transaction lock timeout": contention like any other, retried.
TRANSIENT_API_ERRORS = (
    api_exceptions.Aborted,
    api_exceptions.Conflict,
    api_exceptions.DeadlineExceeded,
    api_exceptions.InternalServerError,
    api_exceptions.ServiceUnavailable,
    api_exceptions.TooManyRequests,
    api_exceptions.GatewayTimeout,
    api_exceptions.BadGateway,
    api_exceptions.Unknown,
    api_exceptions.RetryError,
    api_exceptions.Cancelled,
    google.auth.exceptions.TransportError,  # fetching an ID token: the metadata server hiccuped
    ConnectionError,
    TimeoutError,
)


# Datastore and Pub/Sub client errors that every attempt gets the same (a
# missing topic or index, no permission). InvalidArgument is here except for an
# expired transaction, which _is_expired_transaction makes transient first.
PERMANENT_API_ERRORS = (
    api_exceptions.InvalidArgument,
    api_exceptions.NotFound,
    api_exceptions.AlreadyExists,
    api_exceptions.PermissionDenied,
    api_exceptions.Unauthenticated,
    api_exceptions.FailedPrecondition,
    api_exceptions.OutOfRange,
    api_exceptions.MethodNotImplemented,
    api_exceptions.DataLoss,
)


def is_transient(error: BaseException) -> bool:
    """Whether retrying the work that raised `error` may succeed."""
    if isinstance(error, SyncError):
        return isinstance(error, TransientError)
    if isinstance(error, grpc.RpcError) and hasattr(error, "code"):
        return error.code() in TRANSIENT_GRPC_CODES
    if isinstance(error, api_exceptions.AlreadyExists):  # a Conflict to api_core, but no contention: permanent
        return False
    return isinstance(error, TRANSIENT_API_ERRORS) or _is_expired_transaction(error)


def is_permanent(error: BaseException) -> bool:
    """Whether `error` is known to fail the same way on every attempt."""
    if isinstance(error, SyncError):
        return isinstance(error, PermanentError)
    if is_transient(error):
        return False
    if isinstance(error, grpc.RpcError) and hasattr(error, "code"):
        return error.code() in PERMANENT_GRPC_CODES
    return isinstance(error, PERMANENT_API_ERRORS)


def _is_expired_transaction(error: BaseException) -> bool:
    """Datastore's INVALID_ARGUMENT for a transaction that timed out (60 s idle, 270 s in all).

    It blames the transaction, not the request: a fresh transaction succeeds.
    """
    text = str(error).lower()
    return isinstance(error, api_exceptions.InvalidArgument) and "transaction" in text and "expired" in text


def classified(error: BaseException, message: str) -> SyncError | None:
    """`message` as the TransientError or PermanentError the tables make of `error`; None when in neither."""
    if is_transient(error):
        return TransientError(message)
    if is_permanent(error):
        return PermanentError(message)
    return None


def as_sync_error(error: Exception, context: str) -> Exception:
    """Wraps a client error in the tables with what was being done, as a TransientError or PermanentError.

    A SyncError comes back as it is. Any other error is a bug and also comes
    back as it is, with `context` added as a note, so raising the result
    retries it instead of acknowledging it.
    """
    if isinstance(error, SyncError):
        return error
    known = classified(error, f"{context}: {error}")
    if known is not None:
        return known
    error.add_note(context)
    return error
