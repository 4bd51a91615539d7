"""Reading a function's configuration from its environment."""

from __future__ import annotations

import datetime

import pytest
from buildsync.edge.runtime import runtime_from_env
from buildsync.ending.completion import Targets
from buildsync.errors import SettingsError
from buildsync.proto import notification_pb2 as npb
from buildsync.remote.publishing import topic_path


@pytest.fixture
def env(tmp_path):
    settings = tmp_path / "settings.cfg"
    settings.write_text('backends { target: "swarming://s" hostname: "localhost:1" full_mode {} }')
    # Emulator hosts keep the clients from looking for credentials; nothing connects.
    return {
        "GOOGLE_CLOUD_PROJECT": "proj",
        "BUILDSYNC_SETTINGS": str(settings),
        "DATASTORE_EMULATOR_HOST": "127.0.0.1:9",
        "PUBSUB_EMULATOR_HOST": "127.0.0.1:9",
    }


def test_defaults_name_the_standard_topics_and_no_notifications(env, monkeypatch):
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    runtime = runtime_from_env(env)

    assert runtime.shard_topic == "projects/proj/topics/buildsync-shard"
    assert runtime.sync_topic == "projects/proj/topics/buildsync-sync"
    own = frozenset({runtime.shard_topic, runtime.sync_topic})  # never a build's callback
    assert runtime.completer.targets == Targets(builds_topic=None, builds_compression=npb.ZLIB, own_topics=own)
    assert runtime.sweep_min_age == datetime.timedelta(minutes=1)
    assert runtime.max_event_age == datetime.timedelta(minutes=10)
    assert runtime.settings.backend("swarming://s").hostname == "localhost:1"


def test_topics_and_durations_come_from_the_environment(env, monkeypatch):
    env |= {
        "BUILDSYNC_SHARD_TOPIC": "s",
        "BUILDSYNC_SYNC_TOPIC": "projects/other/topics/y",
        "BUILDSYNC_BUILDS_TOPIC": "b",
        "BUILDSYNC_BUILDS_TOPIC_COMPRESSION": "zstd",
        "BUILDSYNC_SWEEP_MIN_AGE_SECONDS": "0",
        "BUILDSYNC_FETCH_DEADLINE_SECONDS": "2.5",
        "BUILDSYNC_MAX_EVENT_AGE_SECONDS": "90",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    runtime = runtime_from_env(env)

    assert (runtime.shard_topic, runtime.sync_topic, runtime.completer.targets.builds_topic) == (
        "projects/proj/topics/s",
        "projects/other/topics/y",
        "projects/proj/topics/b",
    )
    assert runtime.completer.targets.builds_compression == npb.ZSTD
    assert runtime.sweep_min_age == datetime.timedelta(0)
    assert runtime.backends._deadline_seconds == 2.5
    assert runtime.max_event_age == datetime.timedelta(seconds=90)


@pytest.mark.parametrize(
    "change, problem",
    [
        ({"GOOGLE_CLOUD_PROJECT": ""}, "GOOGLE_CLOUD_PROJECT"),
        ({"BUILDSYNC_SETTINGS": ""}, "BUILDSYNC_SETTINGS"),
        ({"BUILDSYNC_FETCH_DEADLINE_SECONDS": "soon"}, "BUILDSYNC_FETCH_DEADLINE_SECONDS='soon'"),
        ({"BUILDSYNC_SWEEP_MIN_AGE_SECONDS": "-1"}, "BUILDSYNC_SWEEP_MIN_AGE_SECONDS='-1'"),
        ({"BUILDSYNC_TRANSACTION_BEGIN": "later"}, "BUILDSYNC_TRANSACTION_BEGIN='later'"),
        ({"BUILDSYNC_MAX_EVENT_AGE_SECONDS": "0"}, "BUILDSYNC_MAX_EVENT_AGE_SECONDS='0'"),
    ],
)
def test_bad_environment_is_a_settings_error_naming_the_variable(env, monkeypatch, change, problem):
    env |= change
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    with pytest.raises(SettingsError, match=problem):
        runtime_from_env(env)


@pytest.mark.parametrize(
    "topic, path",
    [("t", "projects/p/topics/t"), ("projects/q/topics/t", "projects/q/topics/t")],
)
def test_topic_path_accepts_names_and_full_paths(topic, path):
    assert topic_path("p", topic) == path
