"""The `next_backend_sync_time` key: its format, parsing, and shard ranges.

The key is `<backend>--<project>--<shard>--<unix seconds>` and Datastore
compares it as a string, so one shard's due builds are one key range. This
module is the only place that knows the format: the shard query and the
entity save both go through it.

Backends and projects may themselves contain `--` (a project may be
`chromium--beta`, a hostname `xn--…`), so a key is parsed from the right: the
last two parts are always the shard and the time, and the backend, which every
caller knows, is stripped from the left.
"""

from __future__ import annotations

import dataclasses
import datetime
import random
import re

from buildsync.errors import StoredDataError

SEPARATOR = "--"

# Unix seconds of 0001-01-01T00:00:00Z, the time part of every shard's lower
# bound (Go's zero time, so keys written by Buildbucket compare the same way).
ZERO_TIME_UNIX = -62135596800

# docs/storage.md "Build" and docs/rules.md "Limits": a build's backend_sync_interval
# of 0 (or none), and a backend's unset sync_interval_seconds, both mean five minutes.
DEFAULT_SYNC_INTERVAL = datetime.timedelta(minutes=5)
# The same as Go's time.Duration, which Buildbucket's save writes for a build
# on a backend whose stored interval is 0 (model/build.go Save).
DEFAULT_SYNC_INTERVAL_NANOS = int(DEFAULT_SYNC_INTERVAL.total_seconds()) * 1_000_000_000

# Above every character of a key's time part (digits and a minus sign): a bound past all of one shard's keys.
_PAST_EVERY_TIME = "~"

_SUFFIX = re.compile(r"--(?P<shard>\d+)--(?P<time>-?\d+)\Z")


class SyncTimeKeyError(StoredDataError):
    """A stored key that does not have the shape this module writes."""


@dataclasses.dataclass(frozen=True)
class SyncTimeKey:
    backend: str
    project: str
    shard: int
    unix_seconds: int

    def __str__(self) -> str:
        return SEPARATOR.join((self.backend, self.project, str(self.shard), str(self.unix_seconds)))

    def with_time(self, unix_seconds: int) -> SyncTimeKey:
        return dataclasses.replace(self, unix_seconds=unix_seconds)

    def settled(self, shards: int) -> SyncTimeKey:
        """This key in a shard below `shards`: its own, or for a shard at or above it, shard mod `shards`.

        Upstream keeps a build's shard for life; a build left above a lowered
        `shards` is moved the first time the sync saves it, so it needs no
        stray query after that (docs/rules.md "Shard counts that change").
        """
        shards = max(shards, 1)
        return self if self.shard < shards else dataclasses.replace(self, shard=self.shard % shards)


def parse_key(value: str, backend: str) -> SyncTimeKey:
    """Parses a stored key whose backend part is `backend`."""
    match = _SUFFIX.search(value)
    head = value[: match.start()] if match else ""
    if not match or not head.startswith(backend + SEPARATOR):
        raise SyncTimeKeyError(
            f"next_backend_sync_time {value!r} is not <backend>--<project>--<shard>--<unix seconds> "
            f"for backend {backend!r}"
        )
    project = head[len(backend) + len(SEPARATOR) :]
    return SyncTimeKey(backend, project, int(match["shard"]), int(match["time"]))


def parse_time(value: str) -> int:
    """The time part of any key, without knowing its backend or project."""
    match = _SUFFIX.search(value)
    if not match:
        raise SyncTimeKeyError(f"next_backend_sync_time {value!r} does not end in --<shard>--<unix seconds>")
    return int(match["time"])


def next_sync_unix(update_time: datetime.datetime, interval: datetime.timedelta) -> int:
    """When a build updated at `update_time` is next due: rounded to the minute, plus the interval."""
    return round_to_minute(update_time) + int(interval.total_seconds())


def round_to_minute(moment: datetime.datetime) -> int:
    """Unix seconds of `moment` rounded to the nearest minute, halves up (as Go's Time.Round)."""
    return (_unix_micros(moment) + 30_000_000) // 60_000_000 * 60


def truncate_to_minute(moment: datetime.datetime) -> int:
    """Unix seconds of `moment` truncated to the minute."""
    return _unix_micros(moment) // 60_000_000 * 60


def shard_range(backend: str, project: str, shard: int, now: datetime.datetime) -> tuple[str, str]:
    """The exclusive (lower, upper) key bounds of the builds of `shard` due at `now`."""
    lower = SyncTimeKey(backend, project, shard, ZERO_TIME_UNIX)
    upper = SyncTimeKey(backend, project, shard, _unix_micros(now) // 1_000_000)
    return str(lower), str(upper)


def stray_ranges(backend: str, project: str, shards: int) -> list[tuple[str, str | None]]:
    """The key ranges [lower, upper) of (backend, project) that hold no shard below `shards`; None: no upper bound.

    Datastore compares keys as strings, so the shards in use sort by their
    decimal names ("1" < "10" < "2"); every other key of the pair, a higher
    shard's above all, lies in one of the `shards` + 1 gaps around them.
    """
    prefix = f"{backend}{SEPARATOR}{project}{SEPARATOR}"
    ranges: list[tuple[str, str | None]] = []
    lower = prefix
    for name in sorted(str(shard) for shard in range(max(shards, 1))):
        ranges.append((lower, f"{prefix}{name}{SEPARATOR}"))
        lower = f"{prefix}{name}{SEPARATOR}{_PAST_EVERY_TIME}"
    ranges.append((lower, None))
    return ranges


def stray_ranges_of(backend: str, project: str, shard: int, shards: int) -> list[tuple[str, str | None]]:
    """The gaps shard job `shard` of `shards` reads: every `shards`-th from its own, so each is read once a trigger."""
    return stray_ranges(backend, project, shards)[shard :: max(shards, 1)]


def new_key(
    backend: str,
    project: str,
    shards: int,
    update_time: datetime.datetime,
    interval: datetime.timedelta,
    rng: random.Random | None = None,
) -> SyncTimeKey:
    """The key of a newly created build: a random shard, due one interval after `update_time`."""
    shard = (rng or random).randrange(max(shards, 1))
    return SyncTimeKey(backend, project, shard, next_sync_unix(update_time, interval))


def _unix_micros(moment: datetime.datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}: sync times need a timezone")
    delta = moment - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
