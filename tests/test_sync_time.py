"""The next_backend_sync_time key: format, parsing, shard ranges and minute rounding."""

import datetime

import pytest
from buildsync.rules import sync_time
from buildsync.rules.sync_time import ZERO_TIME_UNIX, SyncTimeKey, SyncTimeKeyError
from hypothesis import example, given
from hypothesis import strategies as st

UTC = datetime.timezone.utc
NOW = datetime.datetime(2024, 5, 17, 12, 34, 56, tzinfo=UTC)
NOW_UNIX = int(NOW.timestamp())

# Any text, weighted towards the characters that could confuse a parser of the key.
texts = st.text(alphabet=st.sampled_from("-0123456789abz_.:/") | st.characters(), max_size=30)
shards = st.integers(min_value=0, max_value=10**6)
times = st.integers(min_value=ZERO_TIME_UNIX, max_value=253402300799) | st.integers()
keys = st.builds(SyncTimeKey, texts, texts, shards, times)


def utc(*args):
    return datetime.datetime(*args, tzinfo=UTC)


# --- format and round trip ---------------------------------------------------


def test_key_is_backend_project_shard_time_joined_by_double_dash():
    key = SyncTimeKey("swarming://chromium-swarm", "chromium", 3, 1700000000)

    assert str(key) == "swarming://chromium-swarm--chromium--3--1700000000"


@given(keys)
@example(SyncTimeKey("swarming://x", "chromium--beta", 0, 1700000000))
@example(SyncTimeKey("swarming://x", "a--0", 1, 1700000000))
@example(SyncTimeKey("swarming://x", "a--1--2", 3, 4))
@example(SyncTimeKey("swarming://x", "proj-", 2, ZERO_TIME_UNIX))
@example(SyncTimeKey("swarming://x", "proj--", 2, -5))
@example(SyncTimeKey("swarming://x", "", 0, 0))
@example(SyncTimeKey("xn--backend-", "--", 10, ZERO_TIME_UNIX))
@example(SyncTimeKey("b--1", "7--8", 11, 12))
def test_any_key_round_trips_through_its_string(key):
    assert sync_time.parse_key(str(key), key.backend) == key


@pytest.mark.parametrize(
    "project",
    ["chromium--beta", "a--0", "proj-", "proj--", "--", "-", "123", "p--1--2", "x---3", "--9--9"],
)
def test_project_with_double_dash_trailing_dash_or_digits_round_trips(project):
    key = SyncTimeKey("swarming://chromium-swarm", project, 4, ZERO_TIME_UNIX)

    assert sync_time.parse_key(str(key), key.backend) == key


@given(keys)
def test_parse_time_returns_the_time_part_of_any_key(key):
    assert sync_time.parse_time(str(key)) == key.unix_seconds


@given(keys, times)
def test_with_time_keeps_everything_before_the_time(key, new_time):
    text, replaced = str(key), str(key.with_time(new_time))
    head = text[: len(text) - len(str(key.unix_seconds))]

    assert replaced == head + str(new_time)
    assert sync_time.parse_key(replaced, key.backend) == SyncTimeKey(key.backend, key.project, key.shard, new_time)
    assert sync_time.parse_time(replaced) == new_time


def test_with_time_changes_only_the_time():
    key = SyncTimeKey("b", "p", 2, 100)

    assert key.with_time(200) == SyncTimeKey("b", "p", 2, 200)
    assert key == SyncTimeKey("b", "p", 2, 100)  # frozen: the original is untouched


# --- malformed keys -------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "",
        "b--p--1",  # no time
        "b--p--1--",  # empty time
        "b--p--x--100",  # shard not a number
        "b--p--1--1.5",  # time not an integer
        "b--p--1--100 ",  # trailing space
        "b--p--1--100\n",  # trailing newline
        "other--p--1--100",  # another backend
        "b-p--1--100",  # backend not followed by the separator
        "b--1--100",  # backend, but no project part
    ],
)
def test_malformed_key_raises_with_the_value_in_the_message(value):
    with pytest.raises(SyncTimeKeyError) as raised:
        sync_time.parse_key(value, "b")

    assert repr(value) in str(raised.value)


@pytest.mark.parametrize("value", ["", "b--p--1", "b--p--x--100", "b--p--1--1.5", "b--p--1--100\n"])
def test_parse_time_rejects_a_key_without_shard_and_time(value):
    with pytest.raises(SyncTimeKeyError) as raised:
        sync_time.parse_time(value)

    assert repr(value) in str(raised.value)


# --- shard ranges (Python str order = Datastore string order) ------------------------


def test_shard_range_bounds_are_zero_time_and_now():
    lower, upper = sync_time.shard_range("b", "p", 3, NOW)

    assert lower == f"b--p--3--{ZERO_TIME_UNIX}"
    assert upper == f"b--p--3--{NOW_UNIX}"


def test_zero_time_is_go_zero_time():
    assert ZERO_TIME_UNIX == int((utc(1, 1, 1) - utc(1970, 1, 1)).total_seconds())


def test_shard_range_upper_bound_drops_sub_second_part_of_now():
    _, upper = sync_time.shard_range("b", "p", 0, NOW.replace(microsecond=999999))

    assert upper == f"b--p--0--{NOW_UNIX}"


# Times since 2001-09-09 have ten digits, like every real `now`; string order
# equals numeric order only between numbers of the same length, which the
# key format (fixed by Buildbucket) relies on.
due_times = st.integers(min_value=10**9, max_value=NOW_UNIX - 1)


@given(project=texts, shard=st.integers(min_value=0, max_value=1000), unix=due_times)
def test_due_key_of_the_shard_is_inside_its_range(project, shard, unix):
    lower, upper = sync_time.shard_range("swarming://s", project, shard, NOW)
    key = str(SyncTimeKey("swarming://s", project, shard, unix))

    assert lower < key < upper


@given(project=texts, shard=st.integers(min_value=0, max_value=1000), unix=st.integers(NOW_UNIX, 9_999_999_999))
def test_key_due_at_or_after_now_is_outside_the_range(project, shard, unix):
    lower, upper = sync_time.shard_range("swarming://s", project, shard, NOW)
    key = str(SyncTimeKey("swarming://s", project, shard, unix))

    assert not lower < key < upper


@pytest.mark.parametrize(
    "range_shard, key_shard",
    [(1, 10), (1, 11), (1, 100), (10, 1), (11, 1), (1, 0), (1, 2), (0, 10), (2, 20)],
)
def test_key_of_another_shard_is_outside_the_range(range_shard, key_shard):
    lower, upper = sync_time.shard_range("b", "p", range_shard, NOW)
    for unix in (10**9, NOW_UNIX - 600, NOW_UNIX - 1):
        key = str(SyncTimeKey("b", "p", key_shard, unix))

        assert not lower < key < upper, key


def test_key_of_zero_time_is_not_due():
    lower, upper = sync_time.shard_range("b", "p", 0, NOW)

    assert not lower < str(SyncTimeKey("b", "p", 0, ZERO_TIME_UNIX)) < upper


def test_key_due_one_second_before_now_is_due():
    lower, upper = sync_time.shard_range("b", "p", 0, NOW)

    assert lower < str(SyncTimeKey("b", "p", 0, NOW_UNIX - 1)) < upper


# --- new keys ------------------------------------------------------------------------


def test_next_sync_is_rounded_update_time_plus_interval():
    updated = utc(2024, 5, 17, 12, 0, 31)

    assert sync_time.next_sync_unix(updated, datetime.timedelta(minutes=5)) == int(utc(2024, 5, 17, 12, 6).timestamp())


class FixedShard:
    def __init__(self, shard):
        self.shard = shard
        self.asked = []

    def randrange(self, stop):
        self.asked.append(stop)
        return self.shard


def test_new_key_picks_a_shard_below_shards_and_due_one_interval_later():
    rng = FixedShard(2)

    key = sync_time.new_key("b", "p", 3, utc(2024, 1, 1, 0, 0, 10), datetime.timedelta(seconds=300), rng)

    assert rng.asked == [3]
    assert key == SyncTimeKey("b", "p", 2, int(utc(2024, 1, 1, 0, 5).timestamp()))


def test_new_key_with_zero_shards_uses_one_shard():
    rng = FixedShard(0)

    sync_time.new_key("b", "p", 0, NOW, datetime.timedelta(seconds=300), rng)

    assert rng.asked == [1]


# --- minute rounding --------------------------------------------------------------------


@pytest.mark.parametrize(
    "moment, rounded",
    [
        (utc(2024, 1, 1, 0, 0, 0), utc(2024, 1, 1, 0, 0)),
        (utc(2024, 1, 1, 0, 0, 29, 999999), utc(2024, 1, 1, 0, 0)),
        (utc(2024, 1, 1, 0, 0, 30), utc(2024, 1, 1, 0, 1)),  # half rounds up, as Go's Time.Round
        (utc(2024, 1, 1, 0, 0, 59, 999999), utc(2024, 1, 1, 0, 1)),
        (utc(2024, 1, 1, 0, 1, 30), utc(2024, 1, 1, 0, 2)),
        (utc(2023, 12, 31, 23, 59, 30), utc(2024, 1, 1, 0, 0)),
        (utc(1969, 12, 31, 23, 59, 30), utc(1970, 1, 1)),  # before the epoch, halves still go up
        (utc(1969, 12, 31, 23, 59, 29), utc(1969, 12, 31, 23, 59)),
        (utc(1, 1, 1), utc(1, 1, 1)),
        (utc(1, 1, 1, 0, 0, 30), utc(1, 1, 1, 0, 1)),
    ],
)
def test_round_to_minute_rounds_halves_up(moment, rounded):
    assert sync_time.round_to_minute(moment) == int((rounded - utc(1970, 1, 1)).total_seconds())


@pytest.mark.parametrize(
    "moment, truncated",
    [
        (utc(2024, 1, 1, 0, 0, 0), utc(2024, 1, 1, 0, 0)),
        (utc(2024, 1, 1, 0, 0, 59, 999999), utc(2024, 1, 1, 0, 0)),
        (utc(2024, 1, 1, 0, 1, 0), utc(2024, 1, 1, 0, 1)),
        (utc(1969, 12, 31, 23, 59, 1), utc(1969, 12, 31, 23, 59)),  # down, not towards the epoch
        (utc(1, 1, 1, 0, 0, 59), utc(1, 1, 1)),
    ],
)
def test_truncate_to_minute_drops_seconds(moment, truncated):
    assert sync_time.truncate_to_minute(moment) == int((truncated - utc(1970, 1, 1)).total_seconds())


moments = st.datetimes(timezones=st.just(UTC))


def exact_unix_micros(moment):
    delta = moment - utc(1970, 1, 1)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


@given(moments)
@example(utc(2024, 6, 1, 0, 0, 29, 999999))
# Far from 1970 a float cannot hold the microseconds: these must still round down.
@example(utc(1, 1, 1, 0, 0, 29, 999999))
@example(utc(3000, 12, 31, 23, 58, 29, 999999))
def test_round_to_minute_is_the_nearest_minute_halves_up(moment):
    micros = exact_unix_micros(moment)

    assert sync_time.round_to_minute(moment) == (micros + 30_000_000) // 60_000_000 * 60


@given(moments)
def test_truncate_to_minute_is_the_minute_at_or_before(moment):
    truncated = sync_time.truncate_to_minute(moment)

    assert truncated % 60 == 0
    assert truncated * 1_000_000 <= exact_unix_micros(moment) < (truncated + 60) * 1_000_000


def test_rounding_ignores_the_timezone_of_an_aware_datetime():
    moment = utc(2024, 1, 1, 12, 0, 30)
    elsewhere = moment.astimezone(datetime.timezone(datetime.timedelta(hours=5, minutes=30)))

    assert sync_time.round_to_minute(elsewhere) == sync_time.round_to_minute(moment)
    assert sync_time.truncate_to_minute(elsewhere) == sync_time.truncate_to_minute(moment)


@pytest.mark.parametrize(
    "call",
    [
        lambda naive: sync_time.round_to_minute(naive),
        lambda naive: sync_time.truncate_to_minute(naive),
        lambda naive: sync_time.shard_range("b", "p", 0, naive),
        lambda naive: sync_time.next_sync_unix(naive, datetime.timedelta(minutes=5)),
        lambda naive: sync_time.new_key("b", "p", 1, naive, datetime.timedelta(minutes=5)),
    ],
    ids=["round_to_minute", "truncate_to_minute", "shard_range", "next_sync_unix", "new_key"],
)
def test_naive_datetime_is_rejected(call):
    with pytest.raises(ValueError, match="naive datetime"):
        call(datetime.datetime(2024, 1, 1, 12, 0))


# --- shard counts that change ------------------------------------------------------------------


def _in(value: str, bounds: tuple[str, str | None]) -> bool:
    lower, upper = bounds
    return lower <= value and (upper is None or value < upper)


@given(st.integers(1, 120), st.integers(0, 10**4), st.integers(ZERO_TIME_UNIX, 2**33))
def test_a_key_lies_in_exactly_one_stray_range_when_its_shard_is_not_in_use(shards, shard, unix):
    key = str(SyncTimeKey("swarming://x", "proj", shard, unix))
    ranges = sync_time.stray_ranges("swarming://x", "proj", shards)

    holding = [bounds for bounds in ranges if _in(key, bounds)]

    assert len(ranges) == shards + 1
    assert len(holding) == (0 if shard < shards else 1)


@given(st.integers(1, 120))
def test_every_stray_range_is_read_by_exactly_one_shard_job(shards):
    every = sync_time.stray_ranges("swarming://x", "proj", shards)
    read = [
        bounds for shard in range(shards) for bounds in sync_time.stray_ranges_of("swarming://x", "proj", shard, shards)
    ]

    assert sorted(read, key=str) == sorted(every, key=str)


@given(st.integers(1, 120), st.integers(0, 10**4))
def test_a_settled_key_is_in_a_shard_in_use_and_one_in_use_stays_put(shards, shard):
    key = SyncTimeKey("swarming://x", "proj", shard, 1_800_000_000)

    settled = key.settled(shards)

    assert settled.shard < shards and settled.with_time(key.unix_seconds) == settled
    assert settled == (key if shard < shards else SyncTimeKey("swarming://x", "proj", shard % shards, 1_800_000_000))
