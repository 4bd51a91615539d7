"""BUILDSYNC_BACKEND_OPTIONS: transport and identity per backend or for the whole deployment."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from buildsync.env import BACKEND_OPTIONS
from buildsync.errors import SettingsError
from buildsync.proto import buildbucket_pb2 as pb
from buildsync.remote.backend import BackendPool, GrpcTaskBackend, PrpcTaskBackend
from buildsync.remote.backend_options import BackendOptions, parse_backend_options
from buildsync.remote.identity import AccessTokenCredentials, IdTokenCredentials

from tests.builds import put_build
from tests.harness import BACKEND, LONG_AGO, settings_text

SWARM = "swarming://chromium-swarm"


def test_no_options_mean_prpc_and_an_access_token_for_every_backend():
    for text in (None, "", "{}"):
        assert parse_backend_options(text, BACKEND_OPTIONS).for_target(SWARM) == BackendOptions(
            "prpc", "access-token", None
        )


def test_a_backends_entry_overrides_the_deployment_default_key_by_key():
    options = parse_backend_options(
        json.dumps({"*": {"identity": "id-token", "audience": "https://all"}, SWARM: {"transport": "grpc"}}),
        BACKEND_OPTIONS,
    )

    assert options.for_target(SWARM) == BackendOptions("grpc", "id-token", "https://all")
    assert options.for_target("swarming://other") == BackendOptions("prpc", "id-token", "https://all")


def test_unset_keys_as_terraform_writes_them_mean_the_defaults():
    options = parse_backend_options(
        json.dumps({SWARM: {"transport": "grpc", "identity": None, "audience": None}}), BACKEND_OPTIONS
    )

    assert options.for_target(SWARM) == BackendOptions("grpc", "access-token", None)


def test_the_id_token_audience_defaults_to_the_backends_https_url():
    assert BackendOptions(identity="id-token").audience_for("run.example.app") == "https://run.example.app"
    assert BackendOptions(audience="https://aud").audience_for("run.example.app") == "https://aud"


@pytest.mark.parametrize(
    "text, problem",
    [
        ("{", "not JSON"),
        ("[]", "expected a JSON object"),
        (json.dumps({SWARM: "grpc"}), f"'{SWARM}': expected an object"),
        (json.dumps({SWARM: {"transport": "http"}}), f"'{SWARM}': transport: 'http' is not one of prpc, grpc"),
        (json.dumps({"*": {"identity": "none"}}), "'*': identity: 'none' is not one of access-token, id-token"),
        (json.dumps({SWARM: {"transprt": "grpc"}}), f"'{SWARM}': unknown key 'transprt'"),
        (json.dumps({SWARM: {"audience": ""}}), f"'{SWARM}': audience: expected a non-empty string"),
        ('{"*": ' * 100_000 + "{}" + "}" * 100_000, "nests too deep"),
    ],
)
def test_bad_options_are_a_settings_error_naming_the_backend_and_key(text, problem):
    with pytest.raises(SettingsError) as raised:
        parse_backend_options(text, BACKEND_OPTIONS)

    assert str(raised.value).startswith("BUILDSYNC_BACKEND_OPTIONS: ")
    assert problem in str(raised.value)


@pytest.mark.parametrize(
    "entry, transport, credentials",
    [
        ({}, PrpcTaskBackend, AccessTokenCredentials),
        ({"transport": "grpc"}, GrpcTaskBackend, AccessTokenCredentials),
        ({"identity": "id-token"}, PrpcTaskBackend, IdTokenCredentials),
    ],
)
def test_a_remote_backend_gets_the_chosen_transport_and_identity(entry, transport, credentials):
    pool = BackendPool(options=parse_backend_options(json.dumps({SWARM: entry}), BACKEND_OPTIONS))
    try:
        fetcher = pool.get(SWARM, "chromium-swarm.appspot.com")
        assert isinstance(fetcher, transport)
        chosen = fetcher._client.credentials if transport is PrpcTaskBackend else fetcher._credentials
        assert isinstance(chosen, credentials)
        if credentials is IdTokenCredentials:
            assert chosen.audience == "https://chromium-swarm.appspot.com"
    finally:
        pool.close()


def test_every_remote_backend_shares_one_access_token():
    pool = BackendPool()
    first = pool.get(SWARM, "chromium-swarm.appspot.com")
    second = pool.get("swarming://other", "other.appspot.com")
    assert first._client.credentials is second._client.credentials
    pool.close()


def run_cli(datastore_env, settings, options: str):
    command = [sys.executable, "-m", "buildsync", "sync", "--backend", BACKEND, "--project", "proj"]
    command += ["--settings", str(settings)]
    env = {**os.environ, **datastore_env, "BUILDSYNC_BACKEND_OPTIONS": options}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)


def test_the_cli_calls_a_backend_over_the_transport_the_environment_names(
    datastore_client, datastore_env, task_backend, tmp_path
):
    put_build(datastore_client, 1, updated=LONG_AGO)
    task_backend.backend.set_task("task-1", pb.SUCCESS, 2)
    settings = tmp_path / "settings.cfg"
    settings.write_text(settings_text(task_backend.grpc_hostname))  # only gRPC answers there

    result = run_cli(datastore_env, settings, json.dumps({BACKEND: {"transport": "grpc"}}))

    assert result.returncode == 0, result.stdout + result.stderr
    assert task_backend.backend.calls == [1]
    assert task_backend.backend.call_headers[0]["x-luci-project"] == "proj"


def test_the_cli_refuses_bad_options_naming_the_variable(datastore_client, datastore_env, settings_file):
    result = run_cli(datastore_env, settings_file, '{"*": {"transport": "carrier-pigeon"}}')

    assert result.returncode == 2
    assert "BUILDSYNC_BACKEND_OPTIONS: '*': transport: 'carrier-pigeon' is not one of prpc, grpc" in result.stderr
