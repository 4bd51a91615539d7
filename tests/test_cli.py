"""`buildsync sync` as a user runs it: a real process on the emulator and a real TaskBackend."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys

import pytest
from buildsync.proto import buildbucket_pb2 as pb
from buildsync.stages.pipeline import DEFAULT_WORKERS
from buildsync.store import outbox

from tests import buildbucket_writer as bb
from tests.builds import BACKEND, get_build, put_build, put_healthy_and_hung_builds
from tests.harness import HUNG, LONG_AGO
from tools.emulators import free_port


def run_buildsync(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "buildsync", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env or os.environ.copy(), timeout=120)


@pytest.fixture
def run_cli(datastore_client, datastore_env, settings_file):
    def run(*args: str, settings=settings_file) -> subprocess.CompletedProcess:
        options = ["--settings", str(settings)] if settings else []
        return run_buildsync("sync", *args, *options, env={**os.environ, **datastore_env})

    return run


@pytest.fixture
def unreachable_backend(task_backend, monkeypatch):
    """The test TaskBackend stopped, and a fetch deadline that gives up after one retry.

    pRPC retries an unreachable host (1 s doubling, 6 attempts within the
    deadline): the default 60 s deadline spends about 31 s before the CLI reports.
    """
    task_backend.stop()
    monkeypatch.setenv("BUILDSYNC_FETCH_DEADLINE_SECONDS", "2")


def assert_one_line_naming(result: subprocess.CompletedProcess, code: int, *words: str) -> None:
    """The CLI failed with `code` and one stderr line (besides log lines) that names the cause."""
    assert result.returncode == code, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if not line.startswith("{")]
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0], lines[0]


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
        "    publish BuildsV2PubSub to the builds_notification_topics of proj",
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


def test_a_bad_fetch_deadline_exits_two_naming_the_variable(run_cli, monkeypatch):
    monkeypatch.setenv("BUILDSYNC_FETCH_DEADLINE_SECONDS", "soon")

    result = run_cli("--backend", BACKEND, "--project", "proj")

    assert result.returncode == 2
    assert "BUILDSYNC_FETCH_DEADLINE_SECONDS='soon'" in result.stderr


def test_lite_mode_exits_zero_doing_nothing(run_cli):
    result = run_cli("--backend", "lite://backend", "--project", "proj")

    assert result.returncode == 0
    assert "lite mode" in result.stdout


def test_unreachable_backend_exits_one(datastore_client, unreachable_backend, run_cli):
    put_build(datastore_client, 1, updated=LONG_AGO)

    result = run_cli("--backend", BACKEND, "--project", "proj")

    assert result.returncode == 1, result.stdout + result.stderr
    assert "failed     1" in result.stdout and "UNAVAILABLE" in result.stdout
    assert get_build(datastore_client, 1)[1].status == pb.STARTED


def test_unreachable_backend_names_it_on_the_last_line(datastore_client, unreachable_backend, run_cli):
    put_build(datastore_client, 1, updated=LONG_AGO)

    result = run_cli("--backend", BACKEND, "--project", "proj", "--quiet")

    assert_one_line_naming(result, 1, "1 of 1 due builds failed", BACKEND, "UNAVAILABLE")


# --- every mistake named in one line ---------------------------------------------------------


def clean_env(**values: str) -> dict[str, str]:
    """This environment without anything that points at Google Cloud, plus `values`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOOGLE_", "DATASTORE_", "CLOUDSDK_"))}
    return {**env, "NO_GCE_CHECK": "true", **values}


def test_missing_google_cloud_project_exits_two_naming_it(settings_file):
    result = run_buildsync("sync", "--settings", str(settings_file), env=clean_env())

    assert_one_line_naming(result, 2, "GOOGLE_CLOUD_PROJECT is not set")


def test_missing_credentials_exit_two_naming_them(settings_file, tmp_path):
    env = clean_env(GOOGLE_CLOUD_PROJECT="p", HOME=str(tmp_path), CLOUDSDK_CONFIG=str(tmp_path / "gcloud"))

    result = run_buildsync("status", "--settings", str(settings_file), env=env)

    assert_one_line_naming(result, 2, "no Google Cloud credentials", "gcloud auth application-default login")


@pytest.mark.parametrize("workers", ["0", "-3", "four", "1.5"])
def test_bad_workers_exit_two_naming_the_value(workers, settings_file):
    result = run_buildsync("sync", "--workers", workers, "--settings", str(settings_file))

    assert_one_line_naming(result, 2, "--workers", repr(workers), "not a whole number of 1 or more")


def test_a_settings_file_that_does_not_exist_exits_two_naming_it(run_cli, tmp_path):
    result = run_cli(settings=tmp_path / "nowhere.cfg")

    assert_one_line_naming(result, 2, "nowhere.cfg", "cannot be read")


def test_invalid_settings_exit_two_in_one_line(run_cli, tmp_path):
    bad = tmp_path / "bad.cfg"
    bad.write_text('backends { target: "x" full_mode { build_sync_setting { shards: -1 } } }')

    result = run_cli(settings=bad)

    assert_one_line_naming(result, 2, "hostname", "shards: -1 is negative")


@pytest.mark.parametrize("command", ["sync", "status"])
def test_an_unavailable_datastore_exits_one_naming_its_host(command, settings_file):
    dead = f"127.0.0.1:{free_port()}"
    env = clean_env(GOOGLE_CLOUD_PROJECT="p", DATASTORE_EMULATOR_HOST=dead)

    result = run_buildsync(command, "--settings", str(settings_file), env=env)

    assert_one_line_naming(result, 1, f"Datastore at {dead} is unavailable")


# --- what runs and what it prints --------------------------------------------------------------


def test_without_a_project_every_project_on_the_backend_is_synced(datastore_client, task_backend, run_cli):
    for build_id, project in enumerate(["alpha", "beta", "v8--beta"], 1):
        put_build(datastore_client, build_id, project=project, updated=LONG_AGO)
        task_backend.backend.set_task(f"task-{build_id}", pb.SUCCESS, 2)

    result = run_cli("--backend", BACKEND)

    assert result.returncode == 0, result.stderr
    assert "due        3" in result.stdout and "completed  3" in result.stdout
    assert [get_build(datastore_client, i)[1].status for i in (1, 2, 3)] == [pb.INFRA_FAILURE] * 3


def test_a_project_without_incomplete_builds_is_named_with_those_that_have_some(datastore_client, run_cli):
    put_build(datastore_client, 1, project="chromium", updated=LONG_AGO)
    put_build(datastore_client, 2, project="fuchsia", updated=LONG_AGO)

    result = run_cli("--backend", BACKEND, "--project", "chromiun")

    assert result.returncode == 0, result.stderr
    assert f"project 'chromiun' has no incomplete builds on {BACKEND}; projects that do: chromium, fuchsia" in (
        result.stdout
    )


def test_quiet_prints_no_log_lines(datastore_client, unreachable_backend, run_cli):
    put_build(datastore_client, 1, updated=LONG_AGO)

    loud, quiet = run_cli("--backend", BACKEND), run_cli("--backend", BACKEND, "--quiet")

    assert loud.returncode == quiet.returncode == 1
    assert any(line.startswith("{") for line in loud.stderr.splitlines())
    assert_one_line_naming(quiet, 1, BACKEND)
    assert "sync summary" in quiet.stdout


def severities(result: subprocess.CompletedProcess) -> set[str]:
    return {json.loads(line)["severity"] for line in result.stderr.splitlines() if line.startswith("{")}


def test_log_level_drops_the_lines_below_it(datastore_client, task_backend, run_cli):
    put_build(datastore_client, 1, updated=LONG_AGO, task_update_id=5)
    task_backend.backend.set_task("task-1", pb.STARTED, 2)  # older than what is stored: a stale WARNING

    warning, error = (run_cli("--backend", BACKEND, "--log-level", level) for level in ("WARNING", "ERROR"))

    assert warning.returncode == error.returncode == 0, warning.stderr
    assert "WARNING" in severities(warning) and severities(error) == set()


def log_lines(result: subprocess.CompletedProcess) -> list[dict]:
    return [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]


def test_a_hung_backend_neither_delays_the_healthy_ones_nor_holds_every_worker(
    datastore_client, task_backend, hung_backend, two_backends_settings, run_cli, monkeypatch
):
    # 16 batches of the hung backend and 8 of the healthy one, on 8 workers;
    # each call to the hung backend gives up after the deadline.
    healthy, hung = put_healthy_and_hung_builds(datastore_client, task_backend.backend)
    monkeypatch.setenv("BUILDSYNC_FETCH_DEADLINE_SECONDS", "20")

    started = datetime.datetime.now(datetime.timezone.utc)
    result = run_cli(settings=two_backends_settings)

    lines = log_lines(result)
    ended = [i for i, e in enumerate(lines) if e.get("metric") == "build_completed"]
    gave_up = [i for i, e in enumerate(lines) if e.get("metric") == "fetch_tasks" and e["backend"] == HUNG]
    held_back = [e for e in lines if e["message"] == "batch failed" and "is held back since" in e["error"]]
    last_ended = datetime.datetime.fromisoformat(lines[ended[-1]]["time"].replace("Z", "+00:00"))
    figure(
        "isolation-cli",
        healthy_builds_ended_after_seconds=f"{(last_ended - started).total_seconds():.1f}",
        hung_fetch_tasks=len(hung_backend.backend.calls),
        hung_batches_held_back=len(held_back),
        deadline_seconds=20,
    )
    assert result.returncode == 1, result.stderr  # a later run may sync the hung backend's builds
    assert {i: get_build(datastore_client, i)[1].status for i in healthy} == {i: pb.FAILURE for i in healthy}
    assert {get_build(datastore_client, i)[1].status for i in hung} == {pb.STARTED}  # they wait
    assert len(ended) == len(healthy) and ended[-1] < gave_up[0]  # every healthy build ended before a hung call gave up
    assert len(task_backend.backend.calls) == len(healthy)  # one FetchTasks per batch
    # One wave of calls to the hung backend, at most one a worker; once they had all given up its breaker was
    # open, and the rest of its batches never reached it.
    assert 1 <= len(hung_backend.backend.calls) <= DEFAULT_WORKERS < len(hung)
    assert len(hung_backend.backend.calls) + len(held_back) == len(hung)
    assert [(e["backend"], e["state"]) for e in lines if e.get("metric") == "backend_breaker"] == [(HUNG, "opened")]


def figure(name: str, **values) -> None:
    print(f"\nFIGURE {name}: " + " ".join(f"{key}={value}" for key, value in values.items()), flush=True)
