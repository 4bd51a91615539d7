"""The Pub/Sub messages between the stages: identity only, never build state.

Each message is a frozen dataclass carried as a JSON object with a schema
`version`. A message names what to sync and when it was planned; the sync
re-reads Datastore, so a late or repeated message cannot overwrite newer data.
Decoding any bytes either returns a message or raises MessageError, a
permanent error.

Triggers are typed by people (`gcloud pubsub topics publish … --message='{}'`),
so a trigger's version is optional and its rejection lists every problem with
what to write instead. The shard and sync messages are written by code and
keep requiring their version.
"""

from __future__ import annotations

import dataclasses
import datetime
import difflib
import json
from typing import Any, ClassVar

from buildsync.errors import MessageError
from buildsync.remote.prpc import header_value_problem
from buildsync.rules.task_rules import MAX_TASK_IDS

SCHEMA_VERSION = 1

# A batch is synced with one FetchTasks call, so it holds no more ids than that takes.
MAX_BATCH_SIZE = MAX_TASK_IDS

# The backend and project travel on as Pub/Sub attributes of the next stage's
# messages, whose values Pub/Sub takes up to 1,024 bytes (docs/platform.md "Pub/Sub").
MAX_NAME_BYTES = 1024


def name_problem(field: str, value: object) -> str | None:
    """Why `value` cannot be the `field` ("backend" or "project") of a message, or None.

    The planner asks it of the projects it reads from Datastore, so that a
    build's project no message can carry is left out there, not in every
    message of its shard.
    """
    if not isinstance(value, str) or not value:
        return f"{field} {value!r} is not a non-empty string"
    if len(value.encode(errors="replace")) > MAX_NAME_BYTES:
        return f"{field} is over {MAX_NAME_BYTES} bytes, more than any {field} name (a Pub/Sub attribute's limit)"
    # The project also travels as the X-Luci-Project header of every FetchTasks call.
    problem = header_value_problem(value) if field == "project" else None
    return f"project {problem}, so no X-Luci-Project header carries it" if problem else None


def _decode_object(data: bytes | str, kind: str, hint: str = "") -> dict[str, Any]:
    """The JSON object in `data`; `hint` (what a valid message looks like) ends each rejection."""
    try:
        payload = json.loads(data)
    except (ValueError, RecursionError) as error:  # bad UTF-8 or JSON, absurd nesting or numbers
        raise MessageError(f"{kind} message is not JSON: {error}{hint}") from error
    if not isinstance(payload, dict):
        raise MessageError(f"{kind} message is a JSON {type(payload).__name__}, not an object{hint}")
    try:  # JSON's \\ud800 escapes decode to lone surrogates, which no publish, query or log line can carry
        json.dumps(payload, ensure_ascii=False).encode()
    except UnicodeEncodeError as error:
        raise MessageError(f"{kind} message holds a string that is not Unicode text: {error}{hint}") from error
    return payload


def _version_problem(payload: dict[str, Any], required: bool) -> str | None:
    """What is wrong with the popped `version` of `payload`, in words that show the fix."""
    if "version" not in payload:
        return f'"version" is missing; add "version": {SCHEMA_VERSION}' if required else None
    version = payload.pop("version")
    if version is None and not required:
        return None
    if type(version) is int and version == SCHEMA_VERSION:  # not True, not 1.0
        return None
    instead = f'write "version": {SCHEMA_VERSION}' + ("" if required else " or leave it out")
    if isinstance(version, str):
        return f'"version" is the string {json.dumps(version)}, not a number; {instead} (no quotes)'
    if isinstance(version, (bool, float)) or version is None:
        return f'"version" is {json.dumps(version)}, not a whole number; {instead}'
    if isinstance(version, int):
        return f"schema version {version} is not one this code reads; {instead}"
    return f'"version" is a JSON {_json_type(version)}, not a number; {instead}'


def _require_version(payload: dict[str, Any], kind: str) -> None:
    problem = _version_problem(payload, required=True)
    if problem:
        raise MessageError(f"{kind} message: {problem}")


def _json_type(value: Any) -> str:
    names = {bool: "boolean", int: "number", float: "number", str: "string", list: "list", dict: "object"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _field(payload: dict[str, Any], name: str, kind: str, expected: type, optional: bool = False) -> Any:
    value = payload.get(name)
    if value is None and optional:
        return None
    # bool is an int in Python; a JSON true is never a shard index or an id.
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        what = "missing" if name not in payload else f"{type(value).__name__} {repr(value)[:100]}"
        raise MessageError(f"{kind} message field {name!r}: expected {expected.__name__}, got {what}")
    if expected is str and not value:
        raise MessageError(f"{kind} message field {name!r} is empty")
    return value


def _name_field(payload: dict[str, Any], name: str, kind: str) -> str:
    """The backend or project of a message, as name_problem admits it."""
    value = _field(payload, name, kind, str)
    problem = name_problem(name, value)
    if problem:
        raise MessageError(f"{kind} message field {name!r}: {problem}")
    return value


def _time_field(payload: dict[str, Any], kind: str, name: str = "planned_at") -> datetime.datetime:
    text = _field(payload, name, kind, str)
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError as error:
        raise MessageError(f"{kind} message field {name!r}: {text[:100]!r} is not an ISO 8601 time") from error
    if moment.tzinfo is None:
        raise MessageError(f"{kind} message field {name!r}: {text!r} has no timezone")
    return moment


def _reject_unknown(payload: dict[str, Any], cls: type, kind: str) -> None:
    unknown = set(payload) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise MessageError(f"{kind} message has unknown fields {sorted(unknown)}")


def _encode(kind_fields: dict[str, Any]) -> bytes:
    return json.dumps({"version": SCHEMA_VERSION, **kind_fields}, separators=(",", ":")).encode()


@dataclasses.dataclass(frozen=True)
class SyncTrigger:
    """trigger → planner: what to sync; None means every backend / every project."""

    KIND: ClassVar[str] = "trigger"
    backend: str | None = None
    project: str | None = None

    def to_json(self) -> bytes:
        return _encode({k: v for k, v in dataclasses.asdict(self).items() if v is not None})

    @classmethod
    def from_json(cls, data: bytes | str) -> SyncTrigger:
        """Decodes a trigger; `{}` means every backend and every project.

        Raises MessageError listing every problem at once, each with what to
        write instead.
        """
        payload = _decode_object(data, cls.KIND, hint=f"; {_TRIGGER_EXAMPLES}")
        problems = [problem for problem in [_version_problem(payload, required=False)] if problem]
        for name in sorted(set(payload) - set(_TRIGGER_FIELDS)):
            close = difflib.get_close_matches(name, _TRIGGER_FIELDS, n=1)
            guess = f'did you mean "{close[0]}"? ' if close else ""
            problems.append(f'unknown field "{name}": {guess}a trigger has only "backend" and "project"')
        values = {}
        for name, (example, if_left_out) in _TRIGGER_FIELDS.items():
            value = payload.get(name)
            if value is not None and (not isinstance(value, str) or not value):
                got = "an empty string" if value == "" else f"{_json_type(value)} {json.dumps(value)[:100]}"
                problems.append(
                    f'field "{name}": expected a string such as "{example}", got {got}; leave it out {if_left_out}'
                )
            elif value is not None and (problem := name_problem(name, value)):
                problems.append(f'field "{name}": {problem}')
            else:
                values[name] = value
        if problems:
            raise MessageError(f"trigger message: {'; '.join(problems)}. {_TRIGGER_EXAMPLES}")
        return cls(**values)


# A trigger's fields: an example value, and what leaving the field out means.
_TRIGGER_FIELDS = {
    "backend": ("swarming://chromium-swarm", "to sync every full-mode backend"),
    "project": ("chromium", "to sync every project with incomplete builds"),
}
_TRIGGER_EXAMPLES = (
    'A trigger is a JSON object: {} syncs everything; {"backend": "swarming://chromium-swarm"} one backend; '
    '{"project": "chromium"} one project; "version": 1 is optional'
)


@dataclasses.dataclass(frozen=True)
class ShardJob:
    """planner → shard: one shard of one (backend, project), with the run's cut-off.

    A probe job (its backend's breaker is open, docs/isolation.md) yields one
    small batch at most.
    """

    KIND: ClassVar[str] = "shard"
    backend: str
    project: str
    shard: int
    shards: int
    planned_at: datetime.datetime
    probe: bool = False

    def to_json(self) -> bytes:
        return _encode(
            {
                "backend": self.backend,
                "project": self.project,
                "shard": self.shard,
                "shards": self.shards,
                "planned_at": self.planned_at.isoformat(),
                **_probe_field(self.probe),
            }
        )

    @classmethod
    def from_json(cls, data: bytes | str) -> ShardJob:
        payload = _decode_object(data, cls.KIND)
        _require_version(payload, cls.KIND)
        _reject_unknown(payload, cls, cls.KIND)
        job = cls(
            backend=_name_field(payload, "backend", cls.KIND),
            project=_name_field(payload, "project", cls.KIND),
            shard=_field(payload, "shard", cls.KIND, int),
            shards=_field(payload, "shards", cls.KIND, int),
            planned_at=_time_field(payload, cls.KIND),
            probe=_probe(payload, cls.KIND),
        )
        if not 0 <= job.shard < job.shards:
            raise MessageError(f"shard message: shard {job.shard} is outside [0, {job.shards})")
        return job


@dataclasses.dataclass(frozen=True)
class SyncBatch:
    """shard → sync: up to 1000 build ids of one (backend, project).

    A probe batch passes its backend's open breaker; `attempt` counts the
    batches that redid the failed part of an earlier one (retry.py).
    """

    KIND: ClassVar[str] = "sync"
    backend: str
    project: str
    build_ids: tuple[int, ...]
    planned_at: datetime.datetime
    probe: bool = False
    attempt: int = 1

    def to_json(self) -> bytes:
        return _encode(
            {
                "backend": self.backend,
                "project": self.project,
                "build_ids": list(self.build_ids),
                "planned_at": self.planned_at.isoformat(),
                **_probe_field(self.probe),
                **({"attempt": self.attempt} if self.attempt != 1 else {}),
            }
        )

    @classmethod
    def from_json(cls, data: bytes | str) -> SyncBatch:
        payload = _decode_object(data, cls.KIND)
        _require_version(payload, cls.KIND)
        _reject_unknown(payload, cls, cls.KIND)
        ids = _field(payload, "build_ids", cls.KIND, list)
        if not 0 < len(ids) <= MAX_BATCH_SIZE:
            raise MessageError(f"sync message: {len(ids)} build ids; a batch holds 1 to {MAX_BATCH_SIZE}")
        if not all(isinstance(i, int) and not isinstance(i, bool) and 0 < i < 2**63 for i in ids):
            raise MessageError("sync message field 'build_ids': every id must be a positive 64-bit integer")
        attempt = _field(payload, "attempt", cls.KIND, int, optional=True)
        if attempt is not None and attempt < 1:
            raise MessageError(f"sync message field 'attempt': {attempt}; the first attempt is 1")
        return cls(
            backend=_name_field(payload, "backend", cls.KIND),
            project=_name_field(payload, "project", cls.KIND),
            build_ids=tuple(ids),
            planned_at=_time_field(payload, cls.KIND),
            probe=_probe(payload, cls.KIND),
            attempt=attempt or 1,
        )


def _probe_field(probe: bool) -> dict[str, bool]:
    """Written only when true, so that every message without it reads as before."""
    return {"probe": True} if probe else {}


def _probe(payload: dict[str, Any], kind: str) -> bool:
    return bool(_field(payload, "probe", kind, bool, optional=True))
