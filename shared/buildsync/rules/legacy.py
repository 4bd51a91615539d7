"""The v1 ("legacy") properties and the lease that Buildbucket keeps on a Build entity.

Older readers (the v1 API, dashboards querying `status`/`result`) still read
these integers, and Buildbucket rewrites them from the v2 status on every
save (docs/storage.md ("Legacy properties", "The lease")). Pure values;
model.save_build writes them onto the entity.
"""

from __future__ import annotations

import datetime

from buildsync.proto import buildbucket_pb2 as pb
from buildsync.rules import sync_time

# LegacyStatus, LegacyResult, LegacyFailureReason, LegacyCancelationReason.
SCHEDULED, STARTED, COMPLETED = 1, 2, 3
UNSET, SUCCESS, FAILURE, CANCELED = 0, 1, 2, 3
BUILD_FAILURE, INFRA_FAILURE = 1, 3
CANCELED_EXPLICITLY, TIMEOUT = 1, 2

# Go's zero time.Time, as Buildbucket's Datastore client (gae/impl/cloud) stores
# it: a timestamp of 0001-01-01T00:00:00Z, not the epoch.
ZERO_TIME = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc) + datetime.timedelta(
    seconds=sync_time.ZERO_TIME_UNIX
)


def legacy_properties(status: int, details: pb.StatusDetails) -> dict[str, int]:
    """The legacy properties a save writes for a build in `status` with `details`.

    A property left out is not written and keeps its stored value (a
    FAILURE build keeps its cancelation_reason, for instance), as upstream. A
    status outside the table writes nothing.
    """
    if status == pb.SCHEDULED:
        return {"status": SCHEDULED, "result": UNSET}
    if status == pb.STARTED:
        return {"status": STARTED, "result": UNSET}
    if status == pb.SUCCESS:
        return {"status": COMPLETED, "result": SUCCESS}
    if status == pb.FAILURE:
        return {"status": COMPLETED, "result": FAILURE, "failure_reason": BUILD_FAILURE}
    if status == pb.INFRA_FAILURE and details.HasField("timeout"):
        return {"status": COMPLETED, "result": CANCELED, "cancelation_reason": TIMEOUT}
    if status == pb.INFRA_FAILURE:
        return {"status": COMPLETED, "result": FAILURE, "failure_reason": INFRA_FAILURE}
    if status == pb.CANCELED:
        return {"status": COMPLETED, "result": CANCELED, "cancelation_reason": CANCELED_EXPLICITLY}
    return {}


def cleared_lease() -> dict[str, object]:
    """The lease properties of an ended build, as Go's ClearLease leaves them and its save stores them.

    `leasee` is Go's nil []byte, which the Datastore client stores as an empty
    blob (not null); `never_leased` is not among them and stays.
    """
    return {"is_leased": False, "leasee": b"", "lease_expiration_date": ZERO_TIME, "lease_key": 0}
