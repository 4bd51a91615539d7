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
