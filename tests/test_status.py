"""`buildsync status`: counts and ages from seeded sync keys, pure and on the Datastore emulator."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys

import pytest
from buildsync.rules.settings import parse_settings
from buildsync.stages.status import (
    LITE_MODE,
    NOT_IN_SETTINGS,
    NotSynced,
    ShardStatus,
    collect_status,
    format_age,
    format_table,
    projects_hint,
    shard_rows,
)
from google.cloud import datastore

NOW = datetime.datetime(2026, 12, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)
T = int(NOW.timestamp())
FULL = "swarming://full"
LITE = "swarming://lite"
GONE = "swarming://gone"
SETTINGS_TEXT = f"""
backends {{ target: "{FULL}" hostname: "full.example" full_mode {{ build_sync_setting {{ shards: 3 }} }} }}
backends {{ target: "{LITE}" lite_mode {{}} }}
"""
SETTINGS = parse_settings(SETTINGS_TEXT, "text")


def key(backend: str, project: str, shard: int, unix: int) -> str:
    """Our own encoder of next_backend_sync_time, independent of sync_time.py."""
    return f"{backend}--{project}--{shard}--{unix}"


# --- pure ---------------------------------------------------------------------------------


def test_rows_count_incomplete_due_and_the_oldest_due_age_per_shard():
    keys = [key(FULL, "p", 0, T - 600), key(FULL, "p", 0, T - 60), key(FULL, "p", 0, T + 300), key(FULL, "p", 2, T - 1)]

    rows, unreadable = shard_rows(FULL, "p", keys, NOW, shards=3)

    assert rows == [
        ShardStatus(FULL, "p", 0, incomplete=3, due=2, oldest_due_age_seconds=600),
        ShardStatus(FULL, "p", 1, incomplete=0, due=0, oldest_due_age_seconds=None),
        ShardStatus(FULL, "p", 2, incomplete=1, due=1, oldest_due_age_seconds=1),
    ]
    assert unreadable == 0


def test_a_build_due_exactly_now_is_not_due_yet_as_in_the_shard_query():
    rows, _ = shard_rows(FULL, "p", [key(FULL, "p", 0, T)], NOW, shards=1)

    assert (rows[0].incomplete, rows[0].due) == (1, 0)


def test_projects_and_backends_with_double_dashes_are_read_from_the_right():
    backend = "swarming://xn--bcher-kva"
    rows, unreadable = shard_rows(backend, "v8--beta", [key(backend, "v8--beta", 4, T - 90)], NOW)

    assert rows == [ShardStatus(backend, "v8--beta", 4, 1, 1, 90)] and unreadable == 0


def test_unreadable_keys_are_counted_not_guessed():
    _, unreadable = shard_rows(FULL, "p", ["garbage", key("swarming://other", "p", 0, T), key(FULL, "q", 0, T)], NOW)

    assert unreadable == 3


@pytest.mark.parametrize(
    "backend, project, hint",
    [
        (
            FULL,
            "chromiun",
            "project 'chromiun' has no incomplete builds on swarming://full; projects that do: chromium, v8",
        ),
        (None, "chromiun", "project 'chromiun' has no incomplete builds; projects that do: chromium, fuchsia, v8"),
        (LITE, "chromium", "project 'chromium' has no incomplete builds on swarming://lite; projects that do: none"),
        (FULL, "chromium", None),
    ],
)
def test_a_project_without_incomplete_builds_is_named_with_those_that_have_some(backend, project, hint):
    pairs = [(FULL, "chromium"), (FULL, "v8"), ("swarming://other", "fuchsia")]

    assert projects_hint(pairs, backend, project) == hint


@pytest.mark.parametrize(
    "seconds, text", [(None, "-"), (0, "0s"), (59, "59s"), (61, "1m01s"), (3600 * 2 + 60, "2h01m")]
)
def test_ages_read_as_people_say_them(seconds, text):
    assert format_age(seconds) == text


# --- on the emulator ----------------------------------------------------------------------


def put_raw_build(client: datastore.Client, build_id: int, backend: str, project: str, sync_key: str, incomplete=True):
    """A Build entity with only the properties the status reads, written as Buildbucket writes them."""
    entity = datastore.Entity(client.key("Build", build_id), exclude_from_indexes=("proto",))
    entity.update(
        {
            "proto": b"",
            "project": project,
            "backend_target": backend,
            "incomplete": incomplete,
            "status_v2": 2 if incomplete else 12,
            "next_backend_sync_time": sync_key,
        }
    )
    client.put(entity)


@pytest.fixture
def seeded(datastore_client):
    builds = [
        (FULL, "chromium", key(FULL, "chromium", 0, T - 600)),
        (FULL, "chromium", key(FULL, "chromium", 0, T - 60)),
        (FULL, "chromium", key(FULL, "chromium", 0, T + 300)),
        (FULL, "chromium", key(FULL, "chromium", 2, T - 30)),
        (FULL, "v8--beta", key(FULL, "v8--beta", 1, T - 120)),
        (FULL, "fuchsia", key(FULL, "fuchsia", 0, T + 60)),
        (LITE, "chromium", key(LITE, "chromium", 0, T - 5000)),
        (LITE, "chromium", key(LITE, "chromium", 0, T - 5000)),
        (GONE, "chromium", key(GONE, "chromium", 7, T - 7000)),
    ]
    for build_id, (backend, project, sync_key) in enumerate(builds, 1):
        put_raw_build(datastore_client, build_id, backend, project, sync_key)
    put_raw_build(datastore_client, 100, FULL, "chromium", key(FULL, "chromium", 1, T - 999), incomplete=False)
    return datastore_client


def test_status_of_seeded_builds_on_the_emulator(seeded):
    status = collect_status(seeded, SETTINGS, NOW)

    assert [(r.backend, r.project, r.shard, r.incomplete, r.due, r.oldest_due_age_seconds) for r in status.rows] == [
        (FULL, "chromium", 0, 3, 2, 600),
        (FULL, "chromium", 1, 0, 0, None),  # the ended build is not counted
        (FULL, "chromium", 2, 1, 1, 30),
        (FULL, "fuchsia", 0, 1, 0, None),
        (FULL, "fuchsia", 1, 0, 0, None),
        (FULL, "fuchsia", 2, 0, 0, None),
        (FULL, "v8--beta", 0, 0, 0, None),
        (FULL, "v8--beta", 1, 1, 1, 120),
        (FULL, "v8--beta", 2, 0, 0, None),
        (GONE, "chromium", 7, 1, 1, 7000),
        (LITE, "chromium", 0, 2, 2, 5000),
    ]
    assert status.not_synced == (NotSynced(GONE, NOT_IN_SETTINGS, 1), NotSynced(LITE, LITE_MODE, 2))


def test_status_narrowed_to_a_backend_and_project(seeded):
    status = collect_status(seeded, SETTINGS, NOW, backend=FULL, project="chromium")

    assert [(r.shard, r.due) for r in status.rows] == [(0, 2), (1, 0), (2, 1)] and status.not_synced == ()


def test_the_table_marks_backends_the_sync_skips_and_totals_the_synced_ones(seeded):
    table = format_table(collect_status(seeded, SETTINGS, NOW))

    lines = table.splitlines()
    assert lines[0] == "as of 2026-12-01T12:00:00+00:00"
    assert lines[1].split() == ["backend", "project", "shard", "incomplete", "due", "oldest", "due"]
    assert any(line.split()[:6] == [FULL, "chromium", "0", "3", "2", "10m00s"] for line in lines)
    assert any(line.startswith(LITE) and line.endswith(LITE_MODE) for line in lines)
    assert "synced backends in all: 6 incomplete, 4 due now, oldest due 10m00s" in lines
    assert f"not synced: 1 incomplete builds on {GONE} ({NOT_IN_SETTINGS})" in lines


@pytest.fixture
def run_status(seeded, datastore_env, tmp_path):
    settings = tmp_path / "settings.cfg"
    settings.write_text(SETTINGS_TEXT)

    def run(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "buildsync", "status", "--settings", str(settings), "--at", NOW.isoformat()]
        return subprocess.run(
            [*command, *args], capture_output=True, text=True, env={**os.environ, **datastore_env}, timeout=120
        )

    return run


def test_status_json_has_one_row_per_backend_project_and_shard(run_status):
    result = run_status("--json", "--backend", FULL, "--project", "chromium")

    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)["rows"]
    assert rows == [
        {"backend": FULL, "project": "chromium", "shard": 0, "incomplete": 3, "due": 2, "oldest_due_age_seconds": 600},
        {"backend": FULL, "project": "chromium", "shard": 1, "incomplete": 0, "due": 0, "oldest_due_age_seconds": None},
        {"backend": FULL, "project": "chromium", "shard": 2, "incomplete": 1, "due": 1, "oldest_due_age_seconds": 30},
    ]


def test_status_of_a_misspelt_project_names_the_projects_that_have_builds(run_status):
    result = run_status("--project", "chromiun")

    assert result.returncode == 0, result.stderr
    assert "project 'chromiun' has no incomplete builds; projects that do: chromium, fuchsia, v8--beta" in result.stdout
