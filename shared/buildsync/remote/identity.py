"""Who buildsync is to a task backend: the token it sends, as Buildbucket sends one.

Buildbucket calls a backend with an OAuth2 access token of its service account
(scope userinfo.email) and `X-Luci-Project: <the build's project>`
(docs/protocols.md "Identity: who a backend lets in"). buildsync does the same
with the function's own service account, through google-auth's default
credentials, which refresh themselves. A backend on Cloud Run that wants an ID
token instead gets one for its audience.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Mapping

import google.auth
import google.auth.credentials
import google.auth.exceptions
import google.auth.transport.requests

from buildsync.errors import PermanentError, TransientError

# The scope Buildbucket's calls to backends carry.
USERINFO_EMAIL_SCOPE = "https://www.googleapis.com/auth/userinfo.email"

# The header that makes a LUCI backend treat the call as `project:<name>`.
PROJECT_HEADER = "X-Luci-Project"


def project_headers(project: str) -> dict[str, str]:
    """The headers of a call made on behalf of `project`'s build, the same on every transport."""
    return {PROJECT_HEADER: project}


class _RefreshingToken(abc.ABC):
    """One google-auth credential shared by every call, refreshed under a lock when stale."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._credentials: google.auth.credentials.Credentials | None = None
        self._request = google.auth.transport.requests.Request()

    @abc.abstractmethod
    def _make(self, request: google.auth.transport.requests.Request) -> google.auth.credentials.Credentials:
        """The credential, made once on first use (a cold start needs no token)."""

    def headers(self) -> Mapping[str, str]:
        """`Authorization: Bearer <token>`; a failure to get one is sorted transient or permanent."""
        with self._lock:
            try:
                if self._credentials is None:
                    self._credentials = self._make(self._request)
                if not self._credentials.valid:
                    self._credentials.refresh(self._request)
                token = self._credentials.token
            except google.auth.exceptions.TransportError as error:
                raise TransientError(f"{self}: the token source did not answer: {error}") from error
            except google.auth.exceptions.GoogleAuthError as error:
                kind = TransientError if getattr(error, "retryable", False) else PermanentError
                raise kind(f"{self}: no token: {error}") from error
        return {"Authorization": f"Bearer {token}"}


class AccessTokenCredentials(_RefreshingToken):
    """The default credentials' OAuth2 access token, scope userinfo.email (what Buildbucket sends)."""

    def _make(self, request: google.auth.transport.requests.Request) -> google.auth.credentials.Credentials:
        credentials, _ = google.auth.default(scopes=[USERINFO_EMAIL_SCOPE])
        return credentials

    def __str__(self) -> str:
        return "OAuth2 access token of the default credentials"


class IdTokenCredentials(_RefreshingToken):
    """A Google-signed ID token for `audience`, for backends behind Cloud Run's IAM check."""

    def __init__(self, audience: str) -> None:
        super().__init__()
        self.audience = audience

    def _make(self, request: google.auth.transport.requests.Request) -> google.auth.credentials.Credentials:
        from google.oauth2 import id_token

        return id_token.fetch_id_token_credentials(self.audience, request=request)

    def __str__(self) -> str:
        return f"ID token for audience {self.audience!r}"
