"""Tokens for backends: refreshed when stale, shared under a lock, failures sorted transient or permanent."""

from __future__ import annotations

import google.auth
import google.auth.exceptions
import pytest
from buildsync.errors import PermanentError, TransientError
from buildsync.remote import identity


class FakeCredentials:
    """Stands in for google-auth's credentials (no metadata server here)."""

    def __init__(self, failure: Exception | None = None) -> None:
        self.token, self.valid, self.refreshes, self.failure = None, False, 0, failure

    def refresh(self, request) -> None:
        if self.failure is not None:
            raise self.failure
        self.refreshes += 1
        self.token, self.valid = f"token-{self.refreshes}", True


@pytest.fixture
def default_credentials(monkeypatch):
    made = []

    def default(scopes=None):
        made.append(scopes)
        return made_credentials, "project"

    made_credentials = FakeCredentials()
    monkeypatch.setattr(google.auth, "default", default)
    return made_credentials, made


def test_the_access_token_has_the_userinfo_email_scope_and_is_reused_while_valid(default_credentials):
    credentials, scopes = default_credentials
    source = identity.AccessTokenCredentials()

    assert source.headers() == {"Authorization": "Bearer token-1"}
    assert source.headers() == {"Authorization": "Bearer token-1"}
    assert scopes == [["https://www.googleapis.com/auth/userinfo.email"]]
    credentials.valid = False  # expired
    assert source.headers() == {"Authorization": "Bearer token-2"}


@pytest.mark.parametrize(
    "failure, kind",
    [
        (google.auth.exceptions.TransportError("metadata server down"), TransientError),
        (google.auth.exceptions.RefreshError("account disabled"), PermanentError),
        (google.auth.exceptions.DefaultCredentialsError("no credentials"), PermanentError),
    ],
)
def test_a_token_that_cannot_be_had_is_sorted_transient_or_permanent(monkeypatch, failure, kind):
    monkeypatch.setattr(google.auth, "default", lambda scopes=None: (FakeCredentials(failure), "p"))

    with pytest.raises(kind, match="OAuth2 access token of the default credentials"):
        identity.AccessTokenCredentials().headers()


def test_the_id_token_is_fetched_for_its_audience(monkeypatch):
    audiences = []

    def fetch(audience, request):
        audiences.append(audience)
        return FakeCredentials()

    monkeypatch.setattr("google.oauth2.id_token.fetch_id_token_credentials", fetch)
    source = identity.IdTokenCredentials("https://backend.run.app")

    assert source.headers() == {"Authorization": "Bearer token-1"}
    assert audiences == ["https://backend.run.app"]


def test_the_project_header_is_what_luci_reads():
    assert identity.project_headers("chromium") == {"X-Luci-Project": "chromium"}
