"""The two kinds of failure, and the one table that sorts errors into them.

A *transient* error may go away on its own (a backend restarting, Datastore
contention): the caller raises it so that Pub/Sub redelivers the message. A
*permanent* error will fail the same way every time (a malformed message, an
unknown backend): the caller logs it and acknowledges the message. Nothing is
lost by acknowledging, because the next scheduled run finds the same due builds
again.
"""

from __future__ import annotations

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


class BackendResponseError(PermanentError):
    """A FetchTasks response that breaks the protocol for the whole batch."""


class ResponseTooBigError(PermanentError):
    """An answer over the client's size limit: asking again gets the same answer, so ask for less."""


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


def is_transient(error: BaseException) -> bool:
    """Whether retrying the work that raised `error` may succeed."""
    if isinstance(error, SyncError):
        return isinstance(error, TransientError)
    if isinstance(error, grpc.RpcError) and hasattr(error, "code"):
        return error.code() in TRANSIENT_GRPC_CODES
    return isinstance(error, TRANSIENT_API_ERRORS) or _is_expired_transaction(error)


def _is_expired_transaction(error: BaseException) -> bool:
    """Datastore's INVALID_ARGUMENT for a transaction that timed out (60 s idle, 270 s in all).

    It blames the transaction, not the request: a fresh transaction succeeds.
    """
    text = str(error).lower()
    return isinstance(error, api_exceptions.InvalidArgument) and "transaction" in text and "expired" in text


def as_sync_error(error: BaseException, context: str) -> SyncError:
    """Wraps a client error with what was being done, tagged by `is_transient`."""
    if isinstance(error, SyncError):
        return error
    kind = TransientError if is_transient(error) else PermanentError
    return kind(f"{context}: {error}")
