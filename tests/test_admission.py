"""Admission: which shard jobs and sync batches a stage takes on."""

import datetime

import pytest
from buildsync.errors import MessageError, PermanentError, SupersededError
from buildsync.rules.settings import parse_settings
from buildsync.stages import admission
from buildsync.stages.messages import ShardJob, SyncBatch

NOW = datetime.datetime(2026, 12, 1, 12, 0, tzinfo=datetime.timezone.utc)
CUT_OFF = datetime.timedelta(minutes=10)
SETTINGS = parse_settings(
    'backends { target: "swarming://s" hostname: "s.example.com" full_mode { build_sync_setting { shards: 4 } } }',
    "text",
)
BACKEND = SETTINGS.backend("swarming://s")


def job(planned_at=NOW, shards=4):
    return ShardJob("swarming://s", "chromium", 0, shards, planned_at)


def batch(planned_at=NOW):
    return SyncBatch("swarming://s", "chromium", (1, 2), planned_at)


def test_a_fresh_job_and_batch_are_taken():
    admission.check_job(job(NOW - datetime.timedelta(minutes=9)), BACKEND, NOW, CUT_OFF)
    admission.check_batch(batch(NOW - datetime.timedelta(minutes=9)), NOW, CUT_OFF)


@pytest.mark.parametrize("check", ["job", "batch"])
def test_a_message_planned_before_the_cut_off_is_superseded_with_its_age(check):
    planned = NOW - datetime.timedelta(minutes=11)
    with pytest.raises(SupersededError, match="over the 600 s cut-off") as raised:
        if check == "job":
            admission.check_job(job(planned), BACKEND, NOW, CUT_OFF)
        else:
            admission.check_batch(batch(planned), NOW, CUT_OFF)
    assert raised.value.age == datetime.timedelta(minutes=11)
    assert isinstance(raised.value, PermanentError), "acknowledged, never retried"


@pytest.mark.parametrize(
    "ahead,rejected", [(datetime.timedelta(seconds=30), False), (datetime.timedelta(minutes=2), True)]
)
def test_a_plan_in_the_future_is_rejected_beyond_clock_skew(ahead, rejected):
    if rejected:
        with pytest.raises(MessageError, match="in the future"):
            admission.check_batch(batch(NOW + ahead), NOW, CUT_OFF)
    else:
        admission.check_batch(batch(NOW + ahead), NOW, CUT_OFF)


def test_a_job_with_other_shards_than_the_settings_is_rejected():
    with pytest.raises(MessageError, match="splits into 8 shards; the settings say 4"):
        admission.check_job(job(shards=8), BACKEND, NOW, CUT_OFF)
