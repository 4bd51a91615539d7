"""Which hosts buildsync sends requests to: a bare host[:port], and for ResultDB only the settings' host.

A backend's host comes from the settings; a ResultDB host comes from a stored
build (`BuildInfra.resultdb.hostname`), which anyone who can create a build
controls. Every request carries credentials (the service account's token, a
build's update token, the project), so a host is called only when it is
nothing but a DNS name or bracketed IP address with an optional port: a `@`
would make the part before it a user name and send the request to the part
after it, and `/`, `?`, `#` or `\\` would end the authority early. A ResultDB
host must also be the one the settings name (`resultdb.hostname`, where
Buildbucket creates every invocation), so a build cannot point the
finalization, with its token, anywhere else (docs/rules.md "ResultDB").
"""

from __future__ import annotations

import re

# A DNS name or a bracketed IPv6 address, then an optional port of 1 to 5 ASCII digits.
_HOST_AND_PORT = re.compile(r"(?:[A-Za-z0-9_.-]+|\[[0-9A-Fa-f:.]+\])(?::([0-9]{1,5}))?", re.ASCII)

MAX_PORT = 65535


def host_problem(host: str) -> str | None:
    """Why `host` is not a bare host[:port] that can be called, or None."""
    found = _HOST_AND_PORT.fullmatch(host)
    if found is None or (found[1] is not None and not 0 < int(found[1]) <= MAX_PORT):
        return f"{host!r} is not a host[:port] that can be called (a DNS name or [IPv6] address, port to {MAX_PORT})"
    return None


def resultdb_host_problem(host: str, allowed: str) -> str | None:
    """Why a build's ResultDB `host` must not be called, or None; `allowed` is the settings' host ("" for none)."""
    problem = host_problem(host)
    if problem is not None:
        return f"ResultDB host {problem}"
    if not allowed:
        return f"ResultDB host {host!r}: the settings name no ResultDB host (resultdb.hostname), so none is called"
    if host.lower() != allowed.lower():
        return f"ResultDB host {host!r} is not the settings' ResultDB host {allowed!r}"
    return None
