"""Peak memory of the sync stage for one batch, measured in a fresh process.

Run by tools/bench (singles.py), not by hand: the benchmark seeds the builds and
starts the emulator and the TaskBackend, then runs

    python -m tools.bench.memory_probe --backend-host HOST --backend TARGET \
        --project P --first-id ID --count 1000 --planned-at ISO [--tracemalloc]

with DATASTORE_EMULATOR_HOST and GOOGLE_CLOUD_PROJECT set. It imports what the
sync function imports, opens the Datastore client and the backend channel and
makes one call on each (so connection set-up is in the baseline, as in a warm
function instance), then runs `sync_batch` once and prints one JSON line:
ru_maxrss before and after (MiB); the RSS just before the sync and the
high-water mark during it (VmHWM, reset through /proc/self/clear_refs first,
because ru_maxrss cannot be reset and the imports may already have peaked
higher than the sync does); and with --tracemalloc the Python heap peak (which
misses protobuf's and gRPC's C allocations).
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import resource
import sys
import time
import tracemalloc


def max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def proc_status_mib(field: str) -> float:
    """VmRSS (now) or VmHWM (high-water mark) from /proc/self/status, in MiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def reset_high_water_mark() -> bool:
    """Resets VmHWM to the current RSS (Linux 4.0+), so the next peak is the sync's own."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend-host", required=True)
    parser.add_argument("--backend", required=True)
    parser.add_argument("--project", required=True)
    parser.add_argument("--first-id", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--planned-at", required=True)
    parser.add_argument("--tracemalloc", action="store_true")
    parser.add_argument("--transport", default="prpc", choices=("prpc", "grpc"), help="how the backend is called")
    args = parser.parse_args(argv)

    from buildsync.edge import environment
    from buildsync.remote.backend import BackendPool
    from buildsync.remote.backend_options import DeploymentOptions
    from buildsync.rules.settings import BackendSettings
    from buildsync.rules.sync_time import DEFAULT_SYNC_INTERVAL
    from buildsync.stages.messages import SyncBatch
    from buildsync.stages.sync import SyncOptions, sync_batch
    from buildsync.store import model
    from google.cloud import datastore

    after_imports = max_rss_mib()
    client = datastore.Client()
    pool = BackendPool(options=DeploymentOptions({args.backend: {"transport": args.transport}}))
    fetcher = pool.get(args.backend, args.backend_host)
    client.get(model.build_key(client, 1))  # opens the Datastore channel
    fetcher.fetch_tasks([], "proj")  # opens the backend connection
    backend = BackendSettings(args.backend, args.backend_host, False, 1, DEFAULT_SYNC_INTERVAL, False)
    batch = SyncBatch(
        args.backend,
        args.project,
        tuple(range(args.first_id, args.first_id + args.count)),
        datetime.datetime.fromisoformat(args.planned_at),
    )
    gc.collect()
    baseline = max_rss_mib()
    hwm_reset = reset_high_water_mark()
    rss_before = proc_status_mib("VmRSS")
    if args.tracemalloc:
        tracemalloc.start()
    started = time.perf_counter()
    report = sync_batch(client, fetcher, backend, batch, SyncOptions(transaction_begin=environment.transaction_begin()))
    seconds = time.perf_counter() - started
    result = {
        "after_imports_mib": after_imports,
        "baseline_mib": baseline,
        "peak_mib": max_rss_mib(),
        "rss_before_mib": rss_before,
        "hwm_during_mib": proc_status_mib("VmHWM") if hwm_reset else float("nan"),
        "seconds": seconds,
        "counts": report.counts(),
    }
    if args.tracemalloc:
        result["tracemalloc_peak_mib"] = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    pool.close()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
