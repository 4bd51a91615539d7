"""Which hosts may be called: a bare host[:port], and for ResultDB the settings' host alone."""

from __future__ import annotations

import pytest
from buildsync.rules import hosts


@pytest.mark.parametrize(
    "host",
    ["results.api.cr.dev", "chromium-swarm.appspot.com:443", "127.0.0.1:8080", "[::1]:50051", "a_b.internal"],
)
def test_a_dns_name_or_address_with_an_optional_port_may_be_called(host):
    assert hosts.host_problem(host) is None


@pytest.mark.parametrize(
    "host",
    [
        "",
        "results.api.cr.dev@evil.example",  # a user name, then the real host
        "evil.example#results.api.cr.dev",
        "evil.example?results.api.cr.dev",
        "evil.example\\results.api.cr.dev",
        "evil.example/results.api.cr.dev",
        "https://results.api.cr.dev",
        "results.api.cr.dev:0",
        "results.api.cr.dev:65536",
        "results.api.cr.dev:\u00b2",
        "results.api.cr.dev:",
        "r\u00e9sults.api.cr.dev",
        "results .api.cr.dev",
        "results.api.cr.dev\n",
    ],
)
def test_anything_else_is_refused_naming_the_host(host):
    assert f"{host!r} is not a host[:port] that can be called" in hosts.host_problem(host)


def test_a_resultdb_host_must_be_the_settings_host():
    assert hosts.resultdb_host_problem("results.api.cr.dev", "results.api.cr.dev") is None
    assert hosts.resultdb_host_problem("Results.API.cr.dev", "results.api.cr.dev") is None
    assert "is not the settings' ResultDB host" in hosts.resultdb_host_problem("evil.example", "results.api.cr.dev")
    assert "name no ResultDB host" in hosts.resultdb_host_problem("results.api.cr.dev", "")
    bad = hosts.resultdb_host_problem("results.api.cr.dev@evil.example", "results.api.cr.dev")
    assert bad.startswith("ResultDB host 'results.api.cr.dev@evil.example' is not a host[:port]")
