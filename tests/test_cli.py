"""`buildsync sync` as a user runs it: a real process on the emulator and a real TaskBackend."""

from __future__ import annotations

import datetime
import os
import subprocess
import sys

import pytest
from buildsync import outbox
from buildsync.proto import buildbucket_pb2 as pb

from tests import buildbucket_writer as bb
from tests.builds import BACKEND, get_build, put_build

LONG_AGO = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)


@pytest.fixture
def run_cli(datastore_client, datastore_env, settings_file):
    def run(*args: str, settings=settings_file) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "buildsync", "sync", *args]
        if settings is not None:
            command += ["--settings", str(settings)]
        return subprocess.run(command, capture_output=True, text=True, env={**os.environ, **datastore_env}, timeout=120)

    return run


def test_sync_prints_summary_and_exits_zero(datastore_client, task_backend, run_cli):
    put_build(datastore_client, 1, updated=LONG_AGO, shard=2, shards=3)
    task_backend.backend.set_task("task-1", pb.CANCELED, 2)

    result = run_cli("--backend", BACKEND, "--project", "proj")

    assert result.returncode == 0, result.stderr
    assert "completed  1" in result.stdout and "due        1" in result.stdout
    assert get_build(datastore_client, 1)[1].status == pb.CANCELED
    # The completion work of the functions, done here too: the metrics, and the outbox emptied.
    assert '"metric": "build_completed"' in result.stderr
    assert list(datastore_client.query(kind=outbox.OUTBOX_KIND).fetch()) == []


@pytest.mark.both_emulators  # the Firestore emulator refuses to commit a read-only transaction
def test_dry_run_writes_nothing_and_lists_the_effects_it_would_have(
    datastore_client, task_backend, run_cli, monkeypatch
):
    put_build(datastore_client, 1, updated=LONG_AGO)
    bb.set_build_properties(datastore_client, 1, callback_topic="projects/p/topics/callback")
    bb.set_invocation(datastore_client, 1, "results.example", "invocations/build-1")
    task_backend.backend.set_task("task-1", pb.CANCELED, 2)
    monkeypatch.setenv("BUILDSYNC_BUILDS_TOPIC", "projects/p/topics/builds")
    monkeypatch.setenv("BUILDSYNC_BUILDS_TOPIC_COMPRESSION", "ZSTD")

    result = run_cli("--backend", BACKEND, "--project", "proj", "--dry-run")

    assert result.returncode == 0, result.stderr
    assert "would sync summary" in result.stdout and "completed  1" in result.stdout
    assert get_build(datastore_client, 1)[1].status == pb.STARTED
    assert result.stdout.split("would complete:\n", 1)[1].splitlines() == [
        "  build 1:",
        "    publish BuildsV2PubSub (ZSTD) to projects/p/topics/builds",
        "    publish PubSubCallBack (ZLIB) to projects/p/topics/callback",
        "    finalize ResultDB invocation invocations/build-1 on results.example",
        "    record the completed-build metrics",
    ]
    assert list(datastore_client.query(kind=outbox.OUTBOX_KIND).fetch()) == []


def test_unknown_backend_exits_two_naming_it(run_cli):
    result = run_cli("--backend", "swarming://nowhere", "--project", "proj")

    assert result.returncode == 2
    assert "swarming://nowhere" in result.stderr


def test_bad_settings_exit_two_naming_the_field(run_cli, tmp_path):
    bad = tmp_path / "bad.cfg"
    bad.write_text(
        'backends { target: "x" hostname: "h" full_mode { build_sync_setting { sync_interval_seconds: 30 } } }'
    )

    result = run_cli("--backend", "x", "--project", "proj", settings=bad)

    assert result.returncode == 2
    assert "sync_interval_seconds" in result.stderr


def test_missing_settings_exit_two(run_cli, monkeypatch):
    monkeypatch.delenv("BUILDSYNC_SETTINGS", raising=False)

    result = run_cli("--backend", BACKEND, "--project", "proj", settings=None)

    assert result.returncode == 2
    assert "BUILDSYNC_SETTINGS" in result.stderr


def test_lite_mode_exits_zero_doing_nothing(run_cli):
    result = run_cli("--backend", "lite://backend", "--project", "proj")

    assert result.returncode == 0
    assert "lite mode" in result.stdout


def test_unreachable_backend_exits_one(datastore_client, task_backend, run_cli):
    put_build(datastore_client, 1, updated=LONG_AGO)
    task_backend.stop()

    result = run_cli("--backend", BACKEND, "--project", "proj")

    assert result.returncode == 1, result.stdout + result.stderr
    assert "failed     1" in result.stdout and "UNAVAILABLE" in result.stdout
    assert get_build(datastore_client, 1)[1].status == pb.STARTED
