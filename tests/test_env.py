"""The one policy for the environment: unset means the default, a bad value is an error naming it."""

from __future__ import annotations

import datetime

import pytest
from buildsync import env
from buildsync.edge import environment
from buildsync.errors import SettingsError
from buildsync.remote.backend import DEFAULT_DEADLINE_SECONDS


@pytest.mark.parametrize("environ", [{}, {env.MAX_EVENT_AGE: ""}])
def test_an_unset_or_empty_variable_means_its_default(environ):
    assert env.max_event_age(environ) == env.DEFAULT_MAX_EVENT_AGE
    assert environment.fetch_deadline_seconds(environ) == DEFAULT_DEADLINE_SECONDS
    assert env.text(env.BUILDS_TOPIC, environ) is None


def test_good_values_are_read_as_numbers_of_seconds():
    environ = {env.MAX_EVENT_AGE: "900", env.FETCH_DEADLINE: "2.5", env.SWEEP_MIN_AGE_SECONDS: "0"}

    assert env.max_event_age(environ) == datetime.timedelta(minutes=15)
    assert environment.fetch_deadline_seconds(environ) == 2.5
    assert environment.sweep_min_age(environ) == datetime.timedelta(0)


@pytest.mark.parametrize("value", ["abc", "-5", "0", "nan"])
def test_a_bad_max_event_age_is_an_error_naming_the_variable_not_the_default(value):
    with pytest.raises(SettingsError, match=f"{env.MAX_EVENT_AGE}='{value}'"):
        env.max_event_age({env.MAX_EVENT_AGE: value})


@pytest.mark.parametrize("value", ["soon", "-1", "0"])
def test_a_bad_fetch_deadline_is_an_error_naming_the_variable(value):
    with pytest.raises(SettingsError, match=f"{env.FETCH_DEADLINE}='{value}'"):
        environment.fetch_deadline_seconds({env.FETCH_DEADLINE: value})


def test_a_required_variable_that_is_missing_is_named():
    with pytest.raises(SettingsError, match=f"{env.PROJECT} is not set"):
        env.required(env.PROJECT, {env.PROJECT: ""})


BUILDBUCKET_MODE = {env.COMPLETION: "buildbucket", env.BUILDBUCKET_QUEUES: "projects/bb/locations/us-central1"}


@pytest.mark.parametrize(
    "environ, named",
    [
        ({env.COMPLETION: "buildbuckett"}, env.COMPLETION),
        ({env.COMPLETION: "buildbucket"}, env.BUILDBUCKET_QUEUES),
        ({**BUILDBUCKET_MODE, env.BUILDBUCKET_QUEUES: "projects/bb/locations/l/queues/q"}, env.BUILDBUCKET_QUEUES),
        ({**BUILDBUCKET_MODE, env.BUILDBUCKET_PUSH: "http://bb.example"}, env.BUILDBUCKET_PUSH),
        ({**BUILDBUCKET_MODE, env.BUILDBUCKET_PUSH: "https://bb.example/path"}, env.BUILDBUCKET_PUSH),
        ({**BUILDBUCKET_MODE, env.BUILDBUCKET_PUSH: "https://bb.example"}, env.BUILDBUCKET_PUSH_AS),
        ({**BUILDBUCKET_MODE, env.CLOUD_TASKS_ENDPOINT: "cloudtasks.googleapis.com:443"}, env.CLOUD_TASKS_ENDPOINT),
    ],
)
def test_a_bad_completion_setting_is_an_error_naming_the_variable(environ, named):
    with pytest.raises(SettingsError, match=named):
        environment.completion_targets(environ, "p")


def test_standalone_is_the_default_and_buildbucket_mode_hands_off_without_topics():
    assert environment.completion_targets({}, "p").handoff is None
    environ = {
        **BUILDBUCKET_MODE,
        env.BUILDS_TOPIC: "builds",
        env.BUILDBUCKET_PUSH: "https://cr-buildbucket.example",
        env.BUILDBUCKET_PUSH_AS: "pusher@bb.iam.gserviceaccount.com",
        env.CLOUD_TASKS_ENDPOINT: "127.0.0.1:8123",
    }
    targets = environment.completion_targets(environ, "p")
    assert targets.builds_topic is None, "unused in buildbucket mode: Buildbucket publishes"
    assert targets.handoff.queues == "projects/bb/locations/us-central1"
    assert (targets.handoff.push.host, targets.handoff.push.service_account) == (
        "cr-buildbucket.example",
        "pusher@bb.iam.gserviceaccount.com",
    )
    assert targets.handoff.endpoint == "127.0.0.1:8123"


def test_the_settings_file_is_the_one_buildsync_settings_names():
    assert environment.settings_file(None, {env.SETTINGS: "/etc/settings.cfg"}) == "/etc/settings.cfg"


def test_an_explicit_settings_file_wins_over_buildsync_settings():
    assert environment.settings_file("explicit.json", {env.SETTINGS: "/etc/settings.cfg"}) == "explicit.json"


@pytest.mark.parametrize("environ", [{}, {env.SETTINGS: ""}])
def test_no_settings_file_is_an_error_naming_the_option_and_the_variable(environ):
    with pytest.raises(SettingsError, match="pass --settings or set BUILDSYNC_SETTINGS"):
        environment.settings_file(None, environ)


@pytest.mark.parametrize("value", ["redis", "redis:", ":6379", "host:port", "host:70000"])
def test_a_bad_dscache_address_is_an_error_naming_the_variable(value):
    with pytest.raises(SettingsError, match=env.DSCACHE_REDIS):
        environment.dscache({env.DSCACHE_REDIS: value})


def test_no_dscache_address_means_no_cache_to_keep():
    assert environment.dscache({}) is None
    assert environment.dscache({env.DSCACHE_REDIS: "10.0.0.3:6379"}) is not None
