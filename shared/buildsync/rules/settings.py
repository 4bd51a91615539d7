"""Backend settings: Buildbucket's own settings.cfg, read once, validated, then looked up by target.

The file is Buildbucket's `SettingsCfg` as it is, in text format (`.cfg`,
`.textproto`, as LUCI Config serves it) or proto3 JSON (`.json`). It is parsed
as strictly as Buildbucket parses it, against every section
(proto/service_config.proto); buildsync then reads and validates only
`backends` and `resultdb.hostname` (docs/protocols.md "Buildbucket's service
config"; hosts.py says which hosts may be called). Every problem
is reported with the backend and field it is about, because an operator reads
these errors in a log line.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import pathlib
import re

from google.protobuf import json_format, text_format

from buildsync import logs
from buildsync.errors import SettingsError, UnknownBackendError
from buildsync.proto import service_config_pb2 as pb
from buildsync.rules import hosts
from buildsync.rules.sync_time import DEFAULT_SYNC_INTERVAL

# The variable that names the settings file for the functions and the CLI.

# docs/rules.md "Limits": shorter than a minute is meaningless because sync times
# are kept at minute precision (unset means sync_time.DEFAULT_SYNC_INTERVAL).
MIN_SYNC_INTERVAL_SECONDS = 60
# Each shard is one message and one query per project per run. Buildbucket
# takes any number and so does buildsync (a clamp would strand the builds of
# the shards above it), but past this many it says what they cost.
MANY_SHARDS = 100

_TEXT_SUFFIXES = (".textproto", ".cfg", ".txtpb", ".pbtxt")


@dataclasses.dataclass(frozen=True)
class BackendSettings:
    """What the sync needs to know about one backend."""

    target: str
    hostname: str
    lite_mode: bool
    shards: int
    sync_interval: datetime.timedelta
    succeed_build_if_task_is_succeeded: bool


@dataclasses.dataclass(frozen=True)
class Settings:
    """One BackendSettings per target, and what the file holds that costs something (one line each)."""

    backends: tuple[BackendSettings, ...]
    warnings: tuple[str, ...] = ()
    # `resultdb.hostname`: the one ResultDB host a build's invocation is finalized on (hosts.py); "" for none.
    resultdb_hostname: str = ""

    def backend(self, target: str) -> BackendSettings:
        """The settings of `target`; unknown targets are a permanent error."""
        for backend in self.backends:
            if backend.target == target:
                return backend
        known = ", ".join(b.target for b in self.backends) or "none"
        raise UnknownBackendError(f"backend {target!r} is not in the settings (known: {known})")

    def knows(self, target: str) -> bool:
        """Whether the settings name `target` (in any mode)."""
        return any(backend.target == target for backend in self.backends)

    def full_mode_backends(self, target: str | None = None) -> tuple[BackendSettings, ...]:
        """The backends a sync of `target` (None: of every backend) has work for.

        The one home of the lite-mode rule: a lite-mode backend's builds are
        never synced, so it is left out. An unknown `target` is still an error.
        An entry without a target is left out too: Buildbucket's sync finds
        its work by a non-empty `backend_target`, so it never syncs one.
        """
        backends = self.backends if target is None else (self.backend(target),)
        return tuple(b for b in backends if not b.lite_mode and b.target)


def parse_settings(text: str, fmt: str) -> Settings:
    """Parses and validates settings text; `fmt` is "json" or "text"."""
    config = pb.SettingsCfg()
    try:
        if fmt == "json":
            json_format.Parse(text, config)
        elif fmt == "text":
            text_format.Parse(text, config)
        else:
            raise SettingsError(f"unknown settings format {fmt!r}: use json or text")
    except (json_format.ParseError, text_format.ParseError) as error:
        where = _backend_of_parse_error(text, fmt, error)
        raise SettingsError(f"settings do not parse as SettingsCfg ({fmt}): {where}{error}") from error
    return validate_settings(config)


def _backend_of_parse_error(text: str, fmt: str, error: Exception) -> str:
    """`backends[i] ('target'): ` when the error lies inside a backend entry, else ""."""
    if fmt == "json":
        found = re.search(r"SettingsCfg\.backends\[(\d+)\]", str(error))
        index = int(found[1]) if found else None
    else:
        line = error.GetLine() if isinstance(error, text_format.ParseError) else None
        index = _text_block_index(text, "backends", line) if line else None
    if index is None:
        return ""
    lenient = pb.SettingsCfg()
    try:  # the entry's target, if the rest of the file can be read at all
        if fmt == "json":
            json_format.Parse(text, lenient, ignore_unknown_fields=True)
        else:
            text_format.Parse(text, lenient, allow_unknown_field=True)
        target = lenient.backends[index].target
    except (json_format.ParseError, text_format.ParseError, IndexError):
        target = ""
    return f"backends[{index}] ({target!r}): " if target else f"backends[{index}]: "


def _text_block_index(text: str, field: str, line: int) -> int | None:
    """Which top-level `field { ... }` block of text-format `text` holds `line` (1-based), if any."""
    depth, count, start, index = 0, 0, 0, None
    for number, content in enumerate(text.splitlines(), start=1):
        for token in _TOKEN.finditer(content):
            word = token[0]
            if word.startswith(("#", '"', "'")):
                continue
            if depth == 0 and word == field:
                index, start = count, number
                count += 1
            elif word in "{<":
                depth += 1
            elif word in "}>":
                depth -= 1
                if depth == 0 and index is not None and start <= line <= number:
                    return index
                index = None if depth == 0 else index
        if number >= line and depth > 0 and index is not None:
            return index
    return None


# A text-format token that matters for finding blocks: a comment or string (skipped), a name, a brace.
_TOKEN = re.compile(r"#.*|\"(?:[^\"\\]|\\.)*\"?|'(?:[^'\\]|\\.)*'?|[A-Za-z_][A-Za-z0-9_]*|[{}<>]")


def load_settings(path: str | os.PathLike[str]) -> Settings:
    """Reads and validates the settings file at `path` (the edge says which: edge/environment.py)."""
    path = pathlib.Path(path)
    fmt = "json" if path.suffix == ".json" else "text" if path.suffix in _TEXT_SUFFIXES else None
    if fmt is None:
        raise SettingsError(f"settings file {path}: unknown suffix {path.suffix!r}; use .json, .textproto or .cfg")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise SettingsError(f"settings file {path} cannot be read: {error}") from error
    try:
        settings = parse_settings(text, fmt)
    except SettingsError as error:
        raise SettingsError(f"settings file {path}: {error}") from error
    for warning in settings.warnings:
        logs.event("WARNING", f"settings file {path}: {warning}", settings=str(path))
    return settings


def validate_settings(config: pb.SettingsCfg) -> Settings:
    """Checks every backend and returns the settings the sync uses.

    Refuses what Buildbucket's config validation refuses and accepts the
    rest, used as Buildbucket uses it (docs/rules.md "Settings as Buildbucket
    takes them"): a target listed twice is one backend whose fields come from
    the entries Buildbucket takes them from, and a value that costs something
    is accepted with a warning.
    """
    problems = []
    entries: dict[str, list[tuple[int, pb.BackendSetting]]] = {}
    for index, backend in enumerate(config.backends):
        name = f"backends[{index}] ({backend.target!r})" if backend.target else f"backends[{index}]"
        problems += [f"{name}: {problem}" for problem in _backend_problems(backend)]
        entries.setdefault(backend.target, []).append((index, backend))
    if problems:
        raise SettingsError("invalid settings: " + "; ".join(problems))
    backends, warnings = [], []
    for target, listed in entries.items():
        backend, merged = _merged(listed)
        backends.append(backend)
        warnings += [f"backend {target!r}: {warning}" for warning in merged + _costs(backend)]
    resultdb_hostname = config.resultdb.hostname
    if resultdb_hostname and hosts.host_problem(resultdb_hostname):
        warnings.append(f"resultdb.hostname: {hosts.host_problem(resultdb_hostname)}; no invocation is finalized")
    return Settings(backends=tuple(backends), warnings=tuple(warnings), resultdb_hostname=resultdb_hostname)


def _merged(listed: list[tuple[int, pb.BackendSetting]]) -> tuple[BackendSettings, list[str]]:
    """One target's entries as Buildbucket reads them, and a warning when there are several.

    Its sync (tasks/sync_builds_with_backend_tasks.go) skips the target when
    any entry is in lite mode and takes shards and task-success from the last
    entry; its backend client (internal/clients/backend.go) calls the first
    entry's hostname, and new builds take the first entry's sync interval
    (tasks/backend.go).
    """
    first, last = _backend_settings(listed[0][1]), _backend_settings(listed[-1][1])
    if len(listed) == 1:
        return first, []
    lite = [index for index, entry in listed if entry.WhichOneof("Mode") != "full_mode"]
    backend = dataclasses.replace(
        first,
        lite_mode=bool(lite),
        shards=last.shards,
        succeed_build_if_task_is_succeeded=last.succeed_build_if_task_is_succeeded,
    )
    where = ", ".join(f"backends[{index}]" for index, _ in listed)
    lite_note = f"; not synced, since backends[{lite[0]}] is in lite mode" if lite else ""
    return backend, [
        f"listed {len(listed)} times ({where}); as in Buildbucket, hostname and sync interval come from "
        f"backends[{listed[0][0]}], shards and succeed_build_if_task_is_succeeded from "
        f"backends[{listed[-1][0]}]{lite_note}"
    ]


def _costs(backend: BackendSettings) -> list[str]:
    """Accepted values that cost something, each said once."""
    warnings = []
    if not backend.target:
        warnings.append("no target: never synced, as Buildbucket finds its work by a non-empty backend_target")
    if backend.lite_mode:
        return warnings
    if backend.shards > MANY_SHARDS:
        warnings.append(
            f"{backend.shards} shards: every one is synced, so each run publishes {backend.shards} shard "
            f"messages and runs {backend.shards} queries per project (over {MANY_SHARDS} buys no cheaper query)"
        )
    if hosts.host_problem(backend.hostname):
        warnings.append(
            f"hostname {backend.hostname!r} is not a host[:port]: it is never called (rules/hosts.py), "
            "every batch of its builds fails with one ERROR, as Buildbucket's calls would fail, and they stay due"
        )
    return warnings


def _backend_problems(backend: pb.BackendSetting) -> list[str]:
    problems = []
    mode = backend.WhichOneof("Mode")
    if mode is None:
        problems.append("mode: set full_mode or lite_mode")
    if "://" in backend.hostname:
        problems.append(f"hostname: {backend.hostname!r} must be a bare host[:port], without '://'")
    if mode == "full_mode":
        if not backend.hostname:
            problems.append("hostname: must be set for a full_mode backend")
        sync = backend.full_mode.build_sync_setting
        if sync.shards < 0:
            problems.append(f"full_mode.build_sync_setting.shards: {sync.shards} is negative")
        if sync.sync_interval_seconds < 0 or 0 < sync.sync_interval_seconds < MIN_SYNC_INTERVAL_SECONDS:
            problems.append(
                "full_mode.build_sync_setting.sync_interval_seconds: "
                f"{sync.sync_interval_seconds} is under {MIN_SYNC_INTERVAL_SECONDS} "
                f"(leave it unset for {DEFAULT_SYNC_INTERVAL.total_seconds():.0f})"
            )
    return problems


def _backend_settings(backend: pb.BackendSetting) -> BackendSettings:
    full = backend.full_mode
    sync = full.build_sync_setting
    return BackendSettings(
        target=backend.target,
        hostname=backend.hostname,
        lite_mode=backend.WhichOneof("Mode") != "full_mode",
        shards=max(sync.shards, 1),
        sync_interval=(
            datetime.timedelta(seconds=sync.sync_interval_seconds)
            if sync.sync_interval_seconds
            else DEFAULT_SYNC_INTERVAL
        ),
        succeed_build_if_task_is_succeeded=full.succeed_build_if_task_is_succeeded,
    )
