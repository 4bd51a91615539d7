"""Google Cloud list prices the cost model uses: one table, with the date they were read.

These are the public list prices (USD, us-central1 / Tier 1, no free tier,
no committed-use discount) as the author knew them on PRICES_READ_ON; they were
not re-read from the price pages on the day this was written, and no network
was used. Check https://cloud.google.com/functions/pricing,
https://cloud.google.com/datastore/pricing and
https://cloud.google.com/pubsub/pricing before relying on them.
"""

from __future__ import annotations

PRICES_READ_ON = "2025-06-01 (list prices as of the author's knowledge; not re-read on 2026-12-01)"

# item: (USD per unit, what the units are)
PRICES: dict[str, tuple[float, str]] = {
    # Cloud Run functions (Cloud Functions 2nd gen), Tier 1 region, instance time billed per 100 ms.
    "invocation": (0.40 / 1_000_000, "function invocations"),
    "vcpu_second": (0.000024, "vCPU-seconds"),
    "gib_second": (0.0000025, "GiB-seconds"),
    # Firestore in Datastore mode, us-central1 (a regional location).
    "entity_read": (0.03 / 100_000, "entity reads"),
    "entity_write": (0.09 / 100_000, "entity writes"),
    # A query is billed as at least one entity read; the keys of a keys-only query are free small operations.
    "query": (0.03 / 100_000, "queries (one entity read each)"),
    # Pub/Sub throughput, publish and delivery alike, at least 1000 bytes per message.
    "pubsub_byte": (40.0 / 2**40, "Pub/Sub throughput bytes"),
    # Cloud Scheduler: one job.
    "scheduler_job_month": (0.10, "scheduler job-months"),
}

# Cloud Functions 2nd gen gives an instance this much CPU for its memory (the default mapping).
VCPU_FOR_MEMORY_MIB = {256: 0.167, 512: 0.333, 1024: 0.583, 2048: 1.0, 4096: 2.0}
# Cloud Run bills instance time rounded up to 100 ms per request.
BILLING_GRANULARITY_SECONDS = 0.1
# Pub/Sub bills every message as at least this many bytes.
PUBSUB_MINIMUM_BYTES = 1000
