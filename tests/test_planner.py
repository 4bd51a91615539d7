"""The planner: which backends a trigger names, the log line that says what it resolved, and unknown backends."""

from __future__ import annotations

import datetime

import pytest
from buildsync.errors import UnknownBackendError
from buildsync.proto import buildbucket_pb2 as pb
from buildsync.rules.breaker import FAILURES_TO_OPEN
from buildsync.rules.settings import parse_settings
from buildsync.stages.messages import ShardJob, SyncTrigger
from buildsync.stages.planner import lite_mode_targets, plan, resolve_backends, shard_jobs, summarize
from buildsync.store import breakers

from tests.builds import put_build
from tests.harness import captured_logs

NOW = datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc)
SETTINGS = parse_settings(
    """
backends { target: "swarming://a" hostname: "a.example" full_mode { build_sync_setting { shards: 3 } } }
backends { target: "swarming://b" hostname: "b.example" full_mode {} }
backends { target: "lite://c" lite_mode {} }
""",
    "text",
)


def jobs_for(target: str, *projects: str) -> list[ShardJob]:
    backend = SETTINGS.backend(target)
    return [job for project in projects for job in shard_jobs(backend, project, NOW)]


def test_an_empty_trigger_resolves_to_every_full_mode_backend():
    assert [b.target for b in resolve_backends(SETTINGS, SyncTrigger())] == ["swarming://a", "swarming://b"]


def test_a_named_lite_backend_resolves_but_is_not_synced():
    (backend,) = resolve_backends(SETTINGS, SyncTrigger("lite://c"))

    assert backend.target == "lite://c"
    assert lite_mode_targets(SETTINGS, SyncTrigger("lite://c")) == {"lite://c"}
    assert lite_mode_targets(SETTINGS, SyncTrigger("swarming://a")) == set()


def test_a_lite_backend_is_summarized_as_not_synced():
    assert (
        summarize(SETTINGS, SyncTrigger("lite://c"), [])[0] == "planned 0 shard jobs: lite://c: lite mode, not synced"
    )


def test_a_plan_for_a_lite_backend_has_no_jobs_and_logs_that_it_is_in_lite_mode():
    with captured_logs() as captured:
        # With the project named, a plan queries nothing: no client is needed.
        jobs = plan(None, SETTINGS, SyncTrigger("lite://c", "p"), NOW)

    assert jobs == []
    [event] = captured.events()
    assert (event["message"], event["backend"]) == ("backend is in lite mode; nothing to sync", "lite://c")


def test_a_plan_for_a_named_project_has_one_job_per_shard_of_each_full_mode_backend(datastore_client):
    with captured_logs() as captured:
        jobs = plan(datastore_client, SETTINGS, SyncTrigger(project="p"), NOW)

    assert [(job.backend, job.shard) for job in jobs] == [
        ("swarming://a", 0),
        ("swarming://a", 1),
        ("swarming://a", 2),
        ("swarming://b", 0),
    ]
    assert captured.events() == []


def test_an_unknown_backend_is_named_with_the_known_ones_and_the_fix():
    with pytest.raises(UnknownBackendError) as raised:
        resolve_backends(SETTINGS, SyncTrigger("swarming://nowhere"))

    message = str(raised.value)
    assert "'swarming://nowhere', which is not in the settings" in message
    assert '(known: "swarming://a", "swarming://b", "lite://c")' in message
    assert 'leave "backend" out to sync every full-mode backend' in message


def test_the_log_line_names_each_backend_its_projects_and_their_shard_jobs():
    jobs = jobs_for("swarming://a", "chromium", "v8--beta") + jobs_for("swarming://b", "fuchsia")

    message, fields = summarize(SETTINGS, SyncTrigger(), jobs)

    assert message == (
        "planned 7 shard jobs: swarming://a: chromium (3 shard jobs), v8--beta (3 shard jobs); "
        "swarming://b: fuchsia (1 shard job)"
    )
    assert fields["jobs"] == 7 and fields["backend"] is None and fields["project"] is None
    assert fields["resolved"] == [
        {"backend": "swarming://a", "lite_mode": False, "projects": {"chromium": 3, "v8--beta": 3}},
        {"backend": "swarming://b", "lite_mode": False, "projects": {"fuchsia": 1}},
    ]


def test_the_log_line_says_when_a_backend_has_nothing_to_sync():
    message, _ = summarize(SETTINGS, SyncTrigger(), jobs_for("swarming://b", "fuchsia"))

    assert (
        message
        == "planned 1 shard job: swarming://a: no project has incomplete builds; swarming://b: fuchsia (1 shard job)"
    )


def test_the_log_line_of_a_lite_backend_says_it_is_not_synced():
    message, fields = summarize(SETTINGS, SyncTrigger("lite://c", "p"), [])

    assert message == "planned 0 shard jobs: lite://c: lite mode, not synced"
    assert fields["backend"] == "lite://c" and fields["project"] == "p"


# --- builds on a backend missing from the settings (on the emulator) ---------------------------


def test_unknown_backend_rule_one_error_line_and_metric_per_run_and_backend(datastore_client):
    put_build(datastore_client, 1, backend="swarming://a", project="p1", updated=NOW)
    for build_id, project in ((2, "p1"), (3, "p2"), (4, "p2")):
        put_build(datastore_client, build_id, backend="swarming://gone", project=project, updated=NOW)
    put_build(datastore_client, 5, backend="swarming://gone", project="p3", updated=NOW, status=pb.SUCCESS)

    with captured_logs() as captured:
        jobs = plan(datastore_client, SETTINGS, SyncTrigger(), NOW)

    assert jobs == jobs_for("swarming://a", "p1")  # the known backends are planned as ever
    [error] = [event for event in captured.events() if event["severity"] == "ERROR"]
    assert (error["metric"], error["backend"], error["projects"]) == (
        "unknown_backend",
        "swarming://gone",
        ["p1", "p2"],
    )
    assert "not in the settings" in error["message"]


def test_unknown_backend_rule_is_checked_only_by_a_whole_run(datastore_client):
    put_build(datastore_client, 2, backend="swarming://gone", project="p1", updated=NOW)

    with captured_logs() as captured:
        plan(datastore_client, SETTINGS, SyncTrigger(project="p1"), NOW)
        plan(datastore_client, SETTINGS, SyncTrigger("swarming://a"), NOW)

    assert [event for event in captured.events() if event["severity"] == "ERROR"] == []


def open_breaker(client, target: str, error: str = "DEADLINE_EXCEEDED") -> None:
    for _ in range(FAILURES_TO_OPEN):
        breakers.update(client, target, lambda breaker: breaker.after_failure(error, NOW, datetime.timedelta(0)))


def test_a_backend_whose_breaker_is_open_gets_one_probe_job_and_a_held_back_line(datastore_client):
    open_breaker(datastore_client, "swarming://a")

    with captured_logs() as captured:
        jobs = plan(datastore_client, SETTINGS, SyncTrigger(project="p"), NOW + datetime.timedelta(minutes=2))

    assert [(job.backend, job.shard, job.probe) for job in jobs] == [
        ("swarming://a", 2, True),
        ("swarming://b", 0, False),
    ]
    (held,) = captured.events()
    assert (held["metric"], held["backend"], held["failures"], held["open_seconds"]) == (
        "backend_held_back",
        "swarming://a",
        3,
        120.0,
    )
    assert held["probe"] == "p shard 2" and held["error"] == "DEADLINE_EXCEEDED"


def test_the_probe_moves_to_the_next_shard_job_each_minute(datastore_client):
    open_breaker(datastore_client, "swarming://a")
    minutes = [NOW + datetime.timedelta(seconds=s) for s in (0, 59, 60, 120, 180)]

    probes = [plan(datastore_client, SETTINGS, SyncTrigger("swarming://a", "p"), at) for at in minutes]

    assert [[(job.shard, job.probe) for job in jobs] for jobs in probes] == [
        [(0, True)],
        [(0, True)],
        [(1, True)],
        [(2, True)],
        [(0, True)],
    ]


def test_a_held_back_backend_with_nothing_incomplete_has_no_probe(datastore_client):
    open_breaker(datastore_client, "swarming://a")

    with captured_logs() as captured:
        jobs = plan(datastore_client, SETTINGS, SyncTrigger("swarming://a"), NOW)

    assert jobs == []
    assert [e["probe"] for e in captured.events()] == ["none (no project has incomplete builds)"]


def test_a_closed_breaker_plans_every_job_again(datastore_client):
    open_breaker(datastore_client, "swarming://a")
    breakers.update(datastore_client, "swarming://a", lambda breaker: breaker.after_success())

    jobs = plan(datastore_client, SETTINGS, SyncTrigger("swarming://a", "p"), NOW)

    assert jobs == jobs_for("swarming://a", "p")
