"""How buildsync reaches each backend: the transport and the identity, the deployment's choice.

Buildbucket's settings.cfg says where a backend is, not how to call it:
Buildbucket always calls with pRPC and an OAuth2 access token, and so does
buildsync unless `BUILDSYNC_BACKEND_OPTIONS` says otherwise. That variable
holds a JSON object from backend target, or "*" for every backend, to options:

    {"*": {"identity": "id-token"},
     "swarming://local": {"transport": "grpc", "audience": "https://local.example"}}

- `transport`: "prpc" (the default) or "grpc", for a backend that serves only
  native gRPC;
- `identity`: "access-token" (the default: the service account's token, scope
  userinfo.email) or "id-token" (a backend on Cloud Run that checks ID tokens);
- `audience`: the ID token's audience (default `https://<hostname>`).

A target's own entry overrides "*" key by key. Nothing here reaches a
loopback backend, which gets plaintext and no token whatever it says.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping

from buildsync.errors import SettingsError
from buildsync.metrics import GRPC, PRPC

ACCESS_TOKEN, ID_TOKEN = "access-token", "id-token"
EVERY_BACKEND = "*"

_CHOICES = {"transport": (PRPC, GRPC), "identity": (ACCESS_TOKEN, ID_TOKEN)}
_KEYS = (*_CHOICES, "audience")


@dataclasses.dataclass(frozen=True)
class BackendOptions:
    transport: str = PRPC
    identity: str = ACCESS_TOKEN
    # None: https://<the backend's hostname>.
    audience: str | None = None

    def audience_for(self, hostname: str) -> str:
        return self.audience or f"https://{hostname}"


@dataclasses.dataclass(frozen=True)
class DeploymentOptions:
    """The options of every backend; a target without an entry gets the "*" entry or the defaults."""

    entries: Mapping[str, Mapping[str, str]] = dataclasses.field(default_factory=dict)

    def for_target(self, target: str) -> BackendOptions:
        merged = {**self.entries.get(EVERY_BACKEND, {}), **self.entries.get(target, {})}
        return BackendOptions(**merged)


def parse_backend_options(text: str | None, source: str) -> DeploymentOptions:
    """Parses the JSON of `source` (where it was read); every problem names the target and key it is about."""
    if not text:
        return DeploymentOptions()
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise SettingsError(f"{source}: not JSON: {error}") from error
    except RecursionError as error:
        raise SettingsError(f"{source}: nests too deep to be the options of any backend") from error
    if not isinstance(value, dict):
        raise SettingsError(f"{source}: expected a JSON object from backend target to options")
    problems = []
    for target, options in value.items():
        if not isinstance(options, dict):
            problems.append(f"{target!r}: expected an object with {', '.join(_KEYS)}")
            continue
        for key, choice in options.items():
            if choice is None:
                continue  # unset, as Terraform's jsonencode writes an optional attribute
            if key not in _KEYS:
                problems.append(f"{target!r}: unknown key {key!r} (known: {', '.join(_KEYS)})")
            elif not isinstance(choice, str) or not choice:
                problems.append(f"{target!r}: {key}: expected a non-empty string")
            elif key in _CHOICES and choice not in _CHOICES[key]:
                problems.append(f"{target!r}: {key}: {choice!r} is not one of {', '.join(_CHOICES[key])}")
    if problems:
        raise SettingsError(f"{source}: " + "; ".join(problems))
    entries = {target: {k: v for k, v in options.items() if v is not None} for target, options in value.items()}
    return DeploymentOptions(entries=entries)
