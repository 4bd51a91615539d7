"""Backend settings: parsing (json and text), loading from files, validation, defaults."""

import datetime
import json
import pathlib

import pytest
from buildsync.errors import PermanentError, SettingsError, UnknownBackendError
from buildsync.proto import service_config_pb2
from buildsync.rules.settings import MANY_SHARDS, BackendSettings, load_settings, parse_settings
from google.protobuf import json_format, text_format

from tests.harness import captured_logs

# Buildbucket's settings.cfg as upstream accepts it, every section included.
BUILDBUCKET_SAMPLE = pathlib.Path(__file__).parent / "data" / "buildbucket_settings.cfg"

SWARM = "swarming://chromium-swarm"
OTHER = "swarming://other-swarm"
LITE = "lite://backend"

TEXT = f"""
backends {{
  target: "{SWARM}"
  hostname: "chromium-swarm.example.com"
  full_mode {{
    pubsub_id: "swarm-topic"
    succeed_build_if_task_is_succeeded: true
    build_sync_setting {{ shards: 4 sync_interval_seconds: 120 }}
  }}
}}
backends {{ target: "{LITE}" lite_mode {{}} }}
"""

JSON = json.dumps(
    {
        "backends": [
            {
                "target": SWARM,
                "hostname": "chromium-swarm.example.com",
                "fullMode": {
                    "pubsubId": "swarm-topic",
                    "succeedBuildIfTaskIsSucceeded": True,
                    "buildSyncSetting": {"shards": 4, "syncIntervalSeconds": 120},
                },
            },
            {"target": LITE, "liteMode": {}},
        ]
    }
)

EXPECTED = (
    BackendSettings(
        target=SWARM,
        hostname="chromium-swarm.example.com",
        lite_mode=False,
        shards=4,
        sync_interval=datetime.timedelta(seconds=120),
        succeed_build_if_task_is_succeeded=True,
    ),
    BackendSettings(
        target=LITE,
        hostname="",
        lite_mode=True,
        shards=1,
        sync_interval=datetime.timedelta(seconds=300),
        succeed_build_if_task_is_succeeded=False,
    ),
)


def full(target=SWARM, hostname="h.example.com", shards=None, interval=None, task_success=None):
    """One full-mode backend in text format."""
    sync = "".join(
        f"{name}: {value} "
        for name, value in (("shards", shards), ("sync_interval_seconds", interval))
        if value is not None
    )
    success = "" if task_success is None else f"succeed_build_if_task_is_succeeded: {str(task_success).lower()}"
    host = f'hostname: "{hostname}"' if hostname else ""
    return f'backends {{ target: "{target}" {host} full_mode {{ {success} build_sync_setting {{ {sync} }} }} }}\n'


def rejection(text, fmt="text"):
    with pytest.raises(SettingsError) as raised:
        parse_settings(text, fmt)
    return str(raised.value)


# --- parsing ----------------------------------------------------------------------------------


@pytest.mark.parametrize("text, fmt", [(TEXT, "text"), (JSON, "json")], ids=["text", "json"])
def test_both_formats_parse_to_the_same_settings(text, fmt):
    assert parse_settings(text, fmt).backends == EXPECTED


def test_json_accepts_proto_field_names_too():
    text = json.dumps({"backends": [{"target": LITE, "lite_mode": {}}]})

    assert parse_settings(text, "json").backends == (EXPECTED[1],)


def test_empty_settings_have_no_backends():
    assert parse_settings("", "text").backends == ()
    assert parse_settings("{}", "json").backends == ()


def test_unknown_format_is_rejected():
    with pytest.raises(SettingsError, match="unknown settings format 'yaml'"):
        parse_settings("backends: []", "yaml")


@pytest.mark.parametrize("text, fmt", [("backends {", "text"), ("{", "json"), ("5", "json"), ("null", "json")])
def test_text_that_does_not_parse_is_rejected_with_its_format(text, fmt):
    assert f"do not parse as SettingsCfg ({fmt})" in rejection(text, fmt)


# --- Buildbucket's own settings.cfg ----------------------------------------------------------------

SAMPLE_BACKENDS = (
    BackendSettings(
        target="swarming://chromium-swarm",
        hostname="chromium-swarm.appspot.com",
        lite_mode=False,
        shards=5,
        sync_interval=datetime.timedelta(seconds=300),
        succeed_build_if_task_is_succeeded=False,
    ),
    BackendSettings(
        target="lite://foo-lite",
        hostname="foo-hostname",
        lite_mode=True,
        shards=1,
        sync_interval=datetime.timedelta(seconds=300),
        succeed_build_if_task_is_succeeded=False,
    ),
)

# Every section and field of SettingsCfg that buildsync does not read, as Buildbucket declares them.
EVERY_SECTION = """
swarming {
  milo_hostname: "ci.chromium.org"
  global_caches { name: "git" path: "git" wait_for_warm_cache_secs: 60 env_var: "GIT_CACHE" }
  user_packages {
    package_name: "infra/tools/git/${platform}"
    version: "latest"
    version_canary: "canary"
    builders { regex: "chromium/.+" regex_exclude: "chromium/try/.+" }
    subdir: "bin"
    omit_on_experiment: "luci.no_git"
    include_on_experiment: "luci.git"
  }
  bbagent_package { package_name: "infra/tools/luci/bbagent/${platform}" version: "latest" }
  kitchen_package { package_name: "infra/tools/luci/kitchen/${platform}" version: "latest" }
  alternative_agent_packages { package_name: "alt/${platform}" version: "1" include_on_experiment: "alt" }
  bbagent_utility_packages { package_name: "util/${platform}" version: "2" }
}
logdog { hostname: "logs.chromium.org" }
known_public_gerrit_hosts: "a.googlesource.com"
known_public_gerrit_hosts: "b.googlesource.com"
resultdb { hostname: "results.api.cr.dev" }
experiment {
  experiments {
    name: "luci.buildbucket.canary"
    default_value: 10
    minimum_value: 1
    builders { regex: ".*" }
    inactive: true
  }
}
cipd {
  server: "https://chrome-infra-packages.appspot.com"
  source { package_name: "cipd/${platform}" version: "1" version_canary: "2" }
}
swarming_backends { key: "chromium-swarm.appspot.com" value: "swarming://chromium-swarm" }
custom_metrics { name: "/x/completed" description: "done" extra_fields: "os" metric_base: CUSTOM_METRIC_BASE_COMPLETED }
custom_metrics { name: "/x/age" metric_base: CUSTOM_METRIC_BASE_AGE }
"""


def test_buildbuckets_sample_settings_cfg_loads_unchanged():
    assert load_settings(BUILDBUCKET_SAMPLE).backends == SAMPLE_BACKENDS


def test_buildbuckets_sample_loads_as_proto3_json_too(tmp_path):
    config = text_format.Parse(BUILDBUCKET_SAMPLE.read_text(), service_config_pb2.SettingsCfg())
    path = tmp_path / "settings.json"
    path.write_text(json_format.MessageToJson(config))

    assert load_settings(path).backends == SAMPLE_BACKENDS


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_every_section_buildsync_does_not_read_is_accepted(fmt):
    text = EVERY_SECTION + full()
    if fmt == "json":
        text = json_format.MessageToJson(text_format.Parse(text, service_config_pb2.SettingsCfg()))

    (backend,) = parse_settings(text, fmt).backends

    assert backend.target == SWARM


def test_deprecated_backend_fields_are_accepted_and_not_read():
    text = f"""backends {{
      target: "{SWARM}" hostname: "h"
      pubsub_id: "old-topic"
      build_sync_setting {{ shards: 9 sync_interval_seconds: 600 }}
      full_mode {{ build_sync_setting {{ shards: 2 }} }}
    }}"""

    (backend,) = parse_settings(text, "text").backends

    assert (backend.shards, backend.sync_interval) == (2, datetime.timedelta(seconds=300))


def test_a_misspelt_field_inside_a_backend_names_the_backend_field_and_line():
    text = full() + f'backends {{\n  target: "{OTHER}"\n  hostnme: "h"\n  full_mode {{}}\n}}\n'

    message = rejection(text)

    assert f"backends[1] ('{OTHER}')" in message
    assert '"hostnme"' in message and "4:3" in message


def test_a_misspelt_field_deep_inside_a_json_backend_names_the_backend():
    text = json.dumps({"backends": [{"target": SWARM, "hostname": "h", "fullMode": {"redirectToTaskpage": True}}]})

    message = rejection(text, "json")

    assert f"backends[0] ('{SWARM}')" in message and '"redirectToTaskpage"' in message


def test_a_misspelt_field_outside_backends_is_rejected_as_buildbucket_rejects_it():
    message = rejection("swarming { milo_host: 'x' }\n" + full())

    assert '"milo_host"' in message and "1:" in message
    assert "backends[" not in message


def test_a_backend_block_after_comments_and_strings_with_braces_is_found():
    text = (
        '# backends { not a block }\nswarming { milo_hostname: "a{b" }\n'
        + full()
        + f'backends {{ target: "{OTHER}" full_mode {{ shard: 1 }} }}\n'
    )

    assert f"backends[1] ('{OTHER}')" in rejection(text)


@pytest.mark.parametrize("hostname", ["https://chromium-swarm.appspot.com", "http://127.0.0.1:8080"])
def test_a_hostname_with_a_scheme_is_rejected_naming_the_backend(hostname):
    message = rejection(full(hostname=hostname))

    assert f"backends[0] ('{SWARM}'): hostname: {hostname!r} must be a bare host[:port], without '://'" in message


@pytest.mark.parametrize(
    "hostname",
    [
        "swarm.example.com/prpc",
        "swarm example.com",
        "host:port",
        "a:1:2",
        "swarm.example.com@evil.example",
        "evil#",
        "evil?",
        "host:99999",
        "host:\u00b2",
    ],
)
def test_settings_rule_accepts_a_hostname_upstream_accepts_and_warns_it_cannot_be_called(hostname):
    settings = parse_settings(full(hostname=hostname) + full(target=OTHER), "text")

    assert [b.hostname for b in settings.full_mode_backends()] == [hostname, "h.example.com"]
    (warning,) = settings.warnings
    assert warning.startswith(f"backend '{SWARM}': hostname {hostname!r} is not a host[:port]")


@pytest.mark.parametrize(
    "hostname", ["chromium-swarm.appspot.com", "127.0.0.1:8080", "[::1]:50051", "a_b.internal:443"]
)
def test_callable_hostnames_are_accepted(hostname):
    settings = parse_settings(full(hostname=hostname), "text")

    assert (settings.backends[0].hostname, settings.warnings) == (hostname, ())


def test_a_lite_backend_hostname_with_a_scheme_is_rejected_too():
    message = rejection(f'backends {{ target: "{LITE}" hostname: "https://x" lite_mode {{}} }}')

    assert f"backends[0] ('{LITE}'): hostname" in message


# --- defaults and modes -------------------------------------------------------------------------


@pytest.mark.parametrize("shards, expected", [(None, 1), (0, 1), (1, 1), (7, 7)])
def test_zero_or_unset_shards_mean_one(shards, expected):
    (backend,) = parse_settings(full(shards=shards), "text").backends

    assert backend.shards == expected


@pytest.mark.parametrize("interval, expected", [(None, 300), (0, 300), (60, 60), (61, 61), (3600, 3600)])
def test_unset_interval_means_300_seconds_and_60_is_allowed(interval, expected):
    (backend,) = parse_settings(full(interval=interval), "text").backends

    assert backend.sync_interval == datetime.timedelta(seconds=expected)


@pytest.mark.parametrize("task_success, expected", [(None, False), (False, False), (True, True)])
def test_task_success_setting_is_read(task_success, expected):
    (backend,) = parse_settings(full(task_success=task_success), "text").backends

    assert backend.succeed_build_if_task_is_succeeded is expected


def test_lite_mode_backend_needs_no_hostname_and_is_not_synced():
    settings = parse_settings(TEXT, "text")

    assert settings.backend(LITE).lite_mode is True
    assert settings.full_mode_backends() == (EXPECTED[0],)


def test_full_mode_without_sync_settings_gets_the_defaults():
    (backend,) = parse_settings(f'backends {{ target: "{SWARM}" hostname: "h" full_mode {{}} }}', "text").backends

    assert (backend.lite_mode, backend.shards, backend.sync_interval) == (False, 1, datetime.timedelta(seconds=300))


def test_backend_looks_up_by_target():
    settings = parse_settings(TEXT, "text")

    assert settings.backend(SWARM) == EXPECTED[0]
    assert settings.backend(LITE) == EXPECTED[1]


def test_unknown_target_is_a_permanent_error_naming_the_target():
    settings = parse_settings(TEXT, "text")

    with pytest.raises(UnknownBackendError) as raised:
        settings.backend(OTHER)

    assert repr(OTHER) in str(raised.value)
    assert SWARM in str(raised.value)  # and lists the known ones
    assert isinstance(raised.value, PermanentError)


def test_unknown_target_with_no_backends_says_none_are_known():
    with pytest.raises(UnknownBackendError, match=r"known: none"):
        parse_settings("", "text").backend(SWARM)


# --- rejections: each names the backend and the field ----------------------------------------------


def test_settings_rule_duplicate_target_takes_each_field_from_the_entry_upstream_takes_it_from():
    text = full(hostname="first.example.com", shards=2, interval=120, task_success=False)
    text += full(target=OTHER) + full(hostname="last.example.com", shards=7, interval=600, task_success=True)

    settings = parse_settings(text, "text")

    assert settings.backend(SWARM) == BackendSettings(
        target=SWARM,
        hostname="first.example.com",  # the client's GetBackendHost: the first entry
        lite_mode=False,
        shards=7,  # the sync's loop over every entry: the last one
        sync_interval=datetime.timedelta(seconds=120),  # new builds (tasks/backend.go): the first entry
        succeed_build_if_task_is_succeeded=True,  # the sync's loop: the last one
    )
    assert [b.target for b in settings.full_mode_backends()] == [SWARM, OTHER]
    (warning,) = settings.warnings
    assert warning.startswith(f"backend '{SWARM}': listed 2 times (backends[0], backends[2])")


@pytest.mark.parametrize("lite_first", [True, False])
def test_settings_rule_duplicate_target_with_a_lite_entry_is_not_synced(lite_first):
    lite = f'backends {{ target: "{SWARM}" hostname: "h" lite_mode {{}} }}\n'
    text = lite + full() if lite_first else full() + lite

    settings = parse_settings(text + full(target=OTHER), "text")

    assert settings.backend(SWARM).lite_mode is True
    assert [b.target for b in settings.full_mode_backends()] == [OTHER]
    assert "not synced, since backends[" in settings.warnings[0]


@pytest.mark.parametrize("shards", [-1, -100])
def test_negative_shards_are_rejected_naming_the_backend_and_field(shards):
    message = rejection(full() + full(target=OTHER, shards=shards))

    assert f"backends[1] ('{OTHER}')" in message
    assert f"full_mode.build_sync_setting.shards: {shards} is negative" in message


@pytest.mark.parametrize("interval", [1, 30, 59, -1, -300])
def test_interval_under_a_minute_is_rejected_naming_the_backend_and_field(interval):
    message = rejection(full(interval=interval))

    assert f"backends[0] ('{SWARM}')" in message
    assert f"full_mode.build_sync_setting.sync_interval_seconds: {interval} is under 60" in message


def test_full_mode_backend_without_hostname_is_rejected_naming_the_backend_and_field():
    message = rejection(full(hostname=""))

    assert f"backends[0] ('{SWARM}')" in message
    assert "hostname: must be set for a full_mode backend" in message


def test_settings_rule_accepts_an_entry_without_target_and_never_syncs_it():
    settings = parse_settings('backends { hostname: "h" full_mode {} }\n' + full(), "text")

    assert [b.target for b in settings.full_mode_backends()] == [SWARM]
    assert settings.warnings == (
        "backend '': no target: never synced, as Buildbucket finds its work by a non-empty backend_target",
    )


def test_backend_without_mode_is_rejected_naming_the_backend_and_field():
    message = rejection(f'backends {{ target: "{SWARM}" hostname: "h" }}')

    assert f"backends[0] ('{SWARM}'): mode: set full_mode or lite_mode" in message


def test_every_problem_is_reported_at_once():
    message = rejection(full(hostname="", shards=-2) + full(target=OTHER, interval=5))

    assert f"backends[0] ('{SWARM}'): hostname" in message
    assert f"backends[0] ('{SWARM}'): full_mode.build_sync_setting.shards" in message
    assert f"backends[1] ('{OTHER}'): full_mode.build_sync_setting.sync_interval_seconds" in message


def test_unknown_field_in_json_is_rejected_naming_the_backend_and_field():
    text = json.dumps(
        {
            "backends": [
                {"target": SWARM, "hostname": "h", "fullMode": {}},
                {"target": OTHER, "hostname": "h", "fullMode": {"buildSyncSetting": {"shard": 3}}},
            ]
        }
    )

    message = rejection(text, "json")

    assert '"shard"' in message
    assert "backends[1]" in message


def test_unknown_field_in_text_is_rejected_naming_the_field_and_where_it_is():
    text = full() + f'backends {{ target: "{OTHER}" hostname: "h" full_mode {{ build_sync_setting {{ shard: 3 }} }} }}'

    message = rejection(text)

    assert '"shard"' in message
    assert "BuildSyncSetting" in message
    assert "2:" in message  # line 2: the second backend


def test_unknown_top_level_field_is_rejected_in_both_formats():
    assert '"backend"' in rejection('backend { target: "x" }')
    assert '"backend"' in rejection('{"backend": []}', "json")


# --- load_settings ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, text", [("s.json", JSON), ("s.textproto", TEXT), ("s.cfg", TEXT)])
def test_load_settings_reads_the_format_of_the_suffix(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)

    assert load_settings(path).backends == EXPECTED
    assert load_settings(str(path)).backends == EXPECTED


def test_missing_file_is_rejected_naming_the_file(tmp_path):
    path = tmp_path / "nope.cfg"

    with pytest.raises(SettingsError) as raised:
        load_settings(path)

    assert str(path) in str(raised.value)
    assert "cannot be read" in str(raised.value)


@pytest.mark.parametrize("name", ["settings.yaml", "settings", "settings.JSON", "settings.txt"])
def test_unknown_suffix_is_rejected_naming_the_suffix(tmp_path, name):
    path = tmp_path / name
    path.write_text(JSON)

    with pytest.raises(SettingsError) as raised:
        load_settings(path)

    assert "unknown suffix" in str(raised.value)
    assert repr(path.suffix) in str(raised.value)


def test_invalid_file_is_rejected_naming_the_file_backend_and_field(tmp_path):
    path = tmp_path / "settings.cfg"
    path.write_text(full(shards=-1))

    with pytest.raises(SettingsError) as raised:
        load_settings(path)

    assert str(path) in str(raised.value)
    assert f"backends[0] ('{SWARM}'): full_mode.build_sync_setting.shards" in str(raised.value)


def test_json_file_with_text_content_is_rejected(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text(TEXT)

    with pytest.raises(SettingsError, match=r"\(json\)"):
        load_settings(path)


def test_settings_rule_accepts_shards_over_100_syncs_every_one_and_warns_what_they_cost():
    assert parse_settings(full(shards=MANY_SHARDS), "text").warnings == ()
    settings = parse_settings(full(shards=250), "text")
    assert settings.backend(SWARM).shards == 250
    (warning,) = settings.warnings
    assert warning.startswith(f"backend '{SWARM}': 250 shards: every one is synced")


def test_settings_warnings_are_logged_once_each_when_the_file_is_loaded(tmp_path):
    path = tmp_path / "settings.cfg"
    path.write_text(full(shards=250, hostname="a b") + full(target=OTHER))

    with captured_logs() as captured:
        settings = load_settings(path)

    warnings = [e for e in captured.events() if e["severity"] == "WARNING"]
    assert [e["message"] for e in warnings] == [f"settings file {path}: {w}" for w in settings.warnings]
    assert len(warnings) == 2


def test_a_settings_file_that_is_not_utf8_is_a_settings_error_naming_it(tmp_path):
    path = tmp_path / "settings.cfg"
    path.write_bytes(b'backends { target: "swarming://x\xff" }')
    with pytest.raises(SettingsError, match=f"settings file {path} cannot be read"):
        load_settings(path)


def test_the_resultdb_host_is_read_and_one_that_cannot_be_called_is_warned_of():
    assert parse_settings('resultdb { hostname: "results.api.cr.dev" }', "text").resultdb_hostname == (
        "results.api.cr.dev"
    )
    assert parse_settings("", "text").resultdb_hostname == ""
    (warning,) = parse_settings('resultdb { hostname: "results.api.cr.dev@evil.example" }', "text").warnings
    assert warning.startswith("resultdb.hostname: 'results.api.cr.dev@evil.example' is not a host[:port]")
