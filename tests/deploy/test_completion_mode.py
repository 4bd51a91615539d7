"""Buildbucket completion mode (handoff.tf): the grants on Buildbucket's queues and the functions' variables."""

from __future__ import annotations

from buildsync import env
from buildsync.ending import handoff

from tests.deploy.terraform import CONFIG, load_config, ref, resources

BUILDBUCKET_MODE = {
    "completion": "buildbucket",
    "buildbucket_project": "bb-project",
    "buildbucket_location": "us-central1",
    "buildbucket_push": "https://bb.example",
    "buildbucket_push_as": "pusher@bb-project.iam.gserviceaccount.com",
}


def test_standalone_mode_grants_nothing_on_buildbuckets_queues():
    assert resources("google_cloud_tasks_queue_iam_member") == {}
    assert not any(name.startswith("push_as") for name in resources("google_service_account_iam_member"))


def test_buildbucket_mode_lets_the_planner_and_the_sync_enqueue_into_exactly_buildbuckets_queues():
    config = load_config(BUILDBUCKET_MODE)
    grants = config["resource"]["google_cloud_tasks_queue_iam_member"].values()
    granted = {(ref(body["member"]), body["name"]) for body in grants}
    accounts = {f'google_service_account.function["{function}"]' for function in ("planner", "sync")}
    assert granted == {(account, queue) for account in accounts for queue in handoff.QUEUES}
    assert {(body["role"], body["project"], body["location"]) for body in grants} == {
        ("roles/cloudtasks.enqueuer", "${var.buildbucket_project}", "${var.buildbucket_location}")
    }
    acting = [
        body
        for name, body in config["resource"]["google_service_account_iam_member"].items()
        if name.startswith("push_as")
    ]
    assert {ref(body["member"]) for body in acting} == accounts
    assert {body["role"] for body in acting} == {"roles/iam.serviceAccountUser"}
    assert {body["service_account_id"] for body in acting} == {
        "projects/${var.buildbucket_project}/serviceAccounts/${var.buildbucket_push_as}"
    }


def test_the_functions_get_every_completion_variable_env_py_names():
    names = {env.COMPLETION, env.BUILDBUCKET_QUEUES, env.BUILDBUCKET_PUSH, env.BUILDBUCKET_PUSH_AS, env.DSCACHE_REDIS}
    assert names <= set(CONFIG["locals"]["function_env"])
    assert CONFIG["locals"]["function_env"][env.COMPLETION] == "${var.completion}"
