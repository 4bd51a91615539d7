"""Session-wide emulators and a TaskBackend server; per-test clean state.

Each emulator starts once per session on a free port and is stopped at the
end. When an emulator cannot start (gcloud or its component missing) the tests
that need it are skipped with a loud warning; every other test still runs.
"""

from __future__ import annotations

import datetime
import warnings

import hypothesis
import pytest
from buildsync.settings import parse_settings
from google.cloud import datastore

from tools.emulators import Emulator, EmulatorUnavailable
from tools.task_backend import TaskBackendServer

# Property tests share two cores with Java emulators: a slow example is not a failure.
hypothesis.settings.register_profile("buildsync", deadline=None)
hypothesis.settings.load_profile("buildsync")

PROJECT = "buildsync-test"
BACKEND = "swarming://test-swarm"


def _running(kind: str):
    """Starts the `kind` emulator for the session, or skips its tests loudly."""
    try:
        emulator = Emulator(kind, PROJECT).start()
    except EmulatorUnavailable as error:
        message = f"THE {kind.upper()} EMULATOR IS NOT AVAILABLE; its tests are skipped: {error}"
        warnings.warn(message, stacklevel=2)
        print(f"\n\n!!! {message}\n", flush=True)
        pytest.skip(message)
    yield emulator
    emulator.stop()


@pytest.fixture(scope="session")
def datastore_emulator():
    yield from _running("datastore")


@pytest.fixture(scope="session")
def pubsub_emulator():
    yield from _running("pubsub")


@pytest.fixture
def datastore_client(datastore_emulator, monkeypatch) -> datastore.Client:
    """A client on an emptied emulator; the environment points at it too."""
    datastore_emulator.reset()
    monkeypatch.setenv("DATASTORE_EMULATOR_HOST", datastore_emulator.host)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", PROJECT)
    return datastore.Client(project=PROJECT)


@pytest.fixture
def task_backend():
    """A real grpcio TaskBackend server on loopback; `.backend` is its FakeTaskBackend."""
    server = TaskBackendServer().start()
    yield server
    server.stop()


def settings_text(hostname: str, **options) -> str:
    shards = options.get("shards", 1)
    task_success = str(options.get("task_success", False)).lower()
    return f"""
backends {{
  target: "{options.get("target", BACKEND)}"
  hostname: "{hostname}"
  full_mode {{
    succeed_build_if_task_is_succeeded: {task_success}
    build_sync_setting {{ shards: {shards} }}
  }}
}}
backends {{ target: "lite://backend" lite_mode {{}} }}
"""


@pytest.fixture
def make_settings(task_backend):
    def make(**options):
        return parse_settings(settings_text(task_backend.hostname, **options), "text")

    return make


@pytest.fixture
def settings_file(tmp_path, task_backend):
    path = tmp_path / "settings.cfg"
    path.write_text(settings_text(task_backend.hostname, shards=3))
    return path


def utc(*args) -> datetime.datetime:
    return datetime.datetime(*args, tzinfo=datetime.timezone.utc)
