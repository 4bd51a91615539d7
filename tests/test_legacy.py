"""docs/storage.md ("Legacy properties", "The lease"): legacy_properties and cleared_lease."""

import datetime

import pytest
from buildsync.proto import buildbucket_pb2 as pb
from buildsync.rules import legacy

NO_DETAILS = pb.StatusDetails()
TIMEOUT = pb.StatusDetails(timeout=pb.StatusDetails.Timeout())
EXHAUSTION = pb.StatusDetails(resource_exhaustion=pb.StatusDetails.ResourceExhaustion())

# (status_v2, details) → (status, result, failure_reason, cancelation_reason); None = not written.
TABLE = [
    ("scheduled", pb.SCHEDULED, NO_DETAILS, (1, 0, None, None)),
    ("started", pb.STARTED, NO_DETAILS, (2, 0, None, None)),
    ("started with timeout details", pb.STARTED, TIMEOUT, (2, 0, None, None)),
    ("success", pb.SUCCESS, NO_DETAILS, (3, 1, None, None)),
    ("failure", pb.FAILURE, NO_DETAILS, (3, 2, 1, None)),
    ("failure with timeout details", pb.FAILURE, TIMEOUT, (3, 2, 1, None)),
    ("infra failure", pb.INFRA_FAILURE, NO_DETAILS, (3, 2, 3, None)),
    ("infra failure, resource exhaustion", pb.INFRA_FAILURE, EXHAUSTION, (3, 2, 3, None)),
    ("infra failure, timeout", pb.INFRA_FAILURE, TIMEOUT, (3, 3, None, 2)),
    ("canceled", pb.CANCELED, NO_DETAILS, (3, 3, None, 1)),
    ("canceled with timeout details", pb.CANCELED, TIMEOUT, (3, 3, None, 1)),
]


@pytest.mark.parametrize("status, details, expected", [row[1:] for row in TABLE], ids=[row[0] for row in TABLE])
def test_legacy_properties_follow_the_contract_table(status, details, expected):
    written = legacy.legacy_properties(status, details)

    names = ("status", "result", "failure_reason", "cancelation_reason")
    assert written == {name: value for name, value in zip(names, expected, strict=True) if value is not None}


@pytest.mark.parametrize("status", [pb.STATUS_UNSPECIFIED, pb.ENDED_MASK, 100])
def test_statuses_outside_the_table_write_no_legacy_property(status):
    assert legacy.legacy_properties(status, NO_DETAILS) == {}


def test_cleared_lease_rule_is_go_s_zero_values_and_keeps_never_leased():
    lease = legacy.cleared_lease()

    assert lease == {
        "is_leased": False,
        "leasee": b"",
        "lease_expiration_date": datetime.datetime(1, 1, 1, tzinfo=datetime.timezone.utc),
        "lease_key": 0,
    }
    assert "never_leased" not in lease
