"""The sync stage's peak memory for one batch whose FetchTasks answer is about 50 MB, over each transport.

    python -m tools.large_answers [--count 1000] [--details-bytes 49900]

1000 tasks whose details are near the 50 KB limit answer about 50 MB. This
starts the Datastore emulator and a TaskBackend (pRPC and gRPC on loopback),
seeds the due builds, gives every task such details, then runs
tools/bench/memory_probe.py once per transport in a fresh process (so each
peak is that batch's own) and prints its figures. It prints; it asserts
nothing (tests/test_backend.py proves such an answer arrives whole).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys

from buildsync.proto import buildbucket_pb2 as pb
from google.protobuf import struct_pb2

from tools.bench.seeding import BACKEND, FIRST_BUILD_ID, PROJECT, Layout, build_ids, seed
from tools.emulators import Emulator, datastore_client
from tools.task_backend import TaskBackendServer

MEMORY_PROJECT = "large-answers"


def details_of(size: int) -> struct_pb2.Struct:
    details = struct_pb2.Struct()
    details["log"] = "x" * (size - 16)
    return details


def probe(server: TaskBackendServer, transport: str, count: int, datastore_host: str) -> dict:
    command = [
        sys.executable,
        "-m",
        "tools.bench.memory_probe",
        f"--backend-host={server.hostname_for(transport)}",
        f"--backend={BACKEND}",
        f"--project={MEMORY_PROJECT}",
        f"--first-id={FIRST_BUILD_ID}",
        f"--count={count}",
        f"--planned-at={datetime.datetime.now(datetime.timezone.utc).isoformat()}",
        f"--transport={transport}",
    ]
    env = dict(os.environ, DATASTORE_EMULATOR_HOST=datastore_host, GOOGLE_CLOUD_PROJECT=PROJECT)
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"memory probe over {transport} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--details-bytes", type=int, default=49_900)
    args = parser.parse_args(argv)

    emulator = Emulator("datastore", PROJECT)
    server = TaskBackendServer()
    try:
        emulator.start()
        server.start()
        details = details_of(args.details_bytes)
        for build_id in build_ids(args.count):
            server.backend.set_task(f"task-{build_id}", pb.STARTED, 2, target=BACKEND, details=details)
        answer = pb.FetchTasksResponse()
        for task in list(server.backend.tasks.values()):
            answer.responses.add().task.CopyFrom(task)
        size = answer.ByteSize() / 1e6
        print(f"{args.count} tasks, details {details.ByteSize()} bytes each: an answer of {size:.1f} MB")
        del answer
        client = datastore_client(emulator.host, PROJECT)
        for transport in ("prpc", "grpc"):
            emulator.reset()
            due_at = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)
            seed(client, Layout(projects=1, shards=1), args.count, due_at, project=MEMORY_PROJECT)
            result = probe(server, transport, args.count, emulator.host)
            before, peak = result["rss_before_mib"], result["hwm_during_mib"]
            print(
                f"{transport}: updated {result['counts']['updated']} of {args.count} builds "
                f"in {result['seconds']:.1f} s; RSS before the sync {before:.0f} MiB, "
                f"peak during it {peak:.0f} MiB (+{peak - before:.0f} MiB)"
            )
    finally:
        server.stop()
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
