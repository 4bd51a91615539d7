"""The whole job on this machine: emulators, the three functions, a demo backend.

Run it with `tools/local.sh` (which makes the virtualenv). It starts the
Datastore and Pub/Sub emulators, serves the planner, shard and sync functions
with functions-framework behind push subscriptions, starts a demo TaskBackend
whose tasks move on over time, seeds demo builds over several projects and
shards, then publishes a trigger every few seconds (standing in for Cloud
Scheduler's every minute) and shows progress until the builds settle. At the
end, or on Ctrl-C, it stops every process it started.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import pathlib
import random
import signal
import sys
import tempfile
import time

import grpc
from buildsync import model
from buildsync.messages import SyncTrigger
from buildsync.notification_format import from_pubsub_data
from buildsync.proto import buildbucket_pb2 as pb
from google.cloud import datastore

from tools.emulators import DATASTORE_KINDS, Emulator, EmulatorUnavailable, datastore_client
from tools.stack import LocalStack
from tools.task_backend import FakeTaskBackend, TaskBackendServer

PROJECT = "buildsync-local"
BACKEND = "swarming://demo-swarm"
PROJECTS = ("chromium", "fuchsia", "v8--beta")
SHARDS = 3

# Demo builds are due again 5 s after each sync instead of five minutes; sync
# times have minute precision, so each build is still synced about once a
# minute, and the demo settles in one to two minutes.
DEMO_SYNC_INTERVAL = datetime.timedelta(seconds=5)
TRIGGER_EVERY_SECONDS = 5.0

# What the demo tasks do: (share of tasks, final status; None = hangs forever).
SCENARIOS = ((0.6, pb.SUCCESS), (0.25, pb.FAILURE), (0.15, None))


class DemoTaskBackend(FakeTaskBackend):
    """Tasks that run for a while, report progress, then end (or never do)."""

    def __init__(self, rng: random.Random) -> None:
        super().__init__()
        self._rng = rng
        self._plans: dict[str, tuple[float, int | None]] = {}
        self._started = time.monotonic()

    def add(self, task_id: str) -> None:
        roll, final = self._rng.random(), None
        for share, status in SCENARIOS:
            if roll < share:
                final = status
                break
            roll -= share
        self._plans[task_id] = (self._rng.uniform(3, 30), final)

    def FetchTasks(self, request: pb.FetchTasksRequest, context: grpc.ServicerContext) -> pb.FetchTasksResponse:
        elapsed = time.monotonic() - self._started
        for task_id in request.task_ids:
            finish_after, final = self._plans.get(task_id.id, (0.0, pb.INFRA_FAILURE))
            if final is not None and elapsed >= finish_after:
                self.set_task(task_id.id, final, update_id=1_000_000, target=task_id.target)
            else:
                # A running task reports progress every 2 s: a newer update_id.
                self.set_task(
                    task_id.id, pb.STARTED, update_id=2 + int(min(elapsed, finish_after) // 2), target=task_id.target
                )
        return super().FetchTasks(request, context)


def write_settings(directory: pathlib.Path, hostname: str) -> pathlib.Path:
    path = directory / "settings.cfg"
    path.write_text(
        f"""# Written by tools/local_stack.py for the demo.
backends {{
  target: "{BACKEND}"
  hostname: "{hostname}"
  full_mode {{
    succeed_build_if_task_is_succeeded: true
    build_sync_setting {{ shards: {SHARDS} }}
  }}
}}
backends {{ target: "swarming://lite-demo" lite_mode {{}} }}
"""
    )
    return path


def seed_builds(client: datastore.Client, backend: DemoTaskBackend, count: int, rng: random.Random) -> list[int]:
    due_since = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=10)
    entities, build_ids = [], []
    for build_id in range(1001, 1001 + count):
        spec = model.NewBuild(
            build_id=build_id,
            project=PROJECTS[build_id % len(PROJECTS)],
            backend=BACKEND,
            task_id=f"demo-task-{build_id}",
            update_time=due_since,
            shards=SHARDS,
            sync_interval=DEMO_SYNC_INTERVAL,
            builder=rng.choice(("linux", "mac", "win")),
        )
        entities += model.new_build_entities(client, spec)
        backend.add(spec.task_id)
        build_ids.append(build_id)
    for start in range(0, len(entities), 300):
        client.put_multi(entities[start : start + 300])
    return build_ids


def status_table(client: datastore.Client, build_ids: list[int]) -> dict[str, collections.Counter]:
    table: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for entity in client.get_multi([model.build_key(client, i) for i in build_ids]):
        table[entity["project"]][pb.Status.Name(entity["status_v2"])] += 1
    return table


def synced_tasks(client: datastore.Client, build_ids: list[int]) -> int:
    """Builds whose stored task moved past the update it was seeded with."""
    infras = client.get_multi([model.infra_key(client, i) for i in build_ids])
    return sum(1 for entity in infras if model.read_infra(entity).backend.task.update_id > 1)


def print_table(table: dict[str, collections.Counter], notified: int) -> None:
    columns = ("SCHEDULED", "STARTED", "SUCCESS", "FAILURE", "INFRA_FAILURE", "CANCELED")
    print(f"\n{'project':<12}" + "".join(f"{c:>15}" for c in columns) + f"{'total':>8}")
    for project in sorted(table):
        counts = table[project]
        print(f"{project:<12}" + "".join(f"{counts[c]:>15}" for c in columns) + f"{sum(counts.values()):>8}")
    print(f"completion notifications received: {notified}")


def settled(table: dict[str, collections.Counter], hanging: int) -> bool:
    running = sum(c["SCHEDULED"] + c["STARTED"] for c in table.values())
    return running <= hanging


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--builds", type=int, default=60, help="demo builds to seed (default 60)")
    parser.add_argument("--timeout", type=float, default=180, help="seconds to wait for the builds to settle")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the demo")
    parser.add_argument(
        "--emulator",
        choices=DATASTORE_KINDS,
        default="firestore",
        help="Datastore to run on: the Firestore emulator in Datastore mode (default; it locks like production) "
        "or the legacy Datastore emulator",
    )
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="buildsync-local-"))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))  # run the finally below on kill
    started: list = []
    try:
        print(f"starting the {args.emulator} and Pub/Sub emulators…", flush=True)
        datastore_emulator = Emulator(args.emulator, PROJECT)
        started.append(datastore_emulator)
        pubsub_emulator = Emulator("pubsub", PROJECT)
        started.append(pubsub_emulator)
        datastore_emulator.start()
        pubsub_emulator.start()
        demo_backend = DemoTaskBackend(rng)
        server = TaskBackendServer(demo_backend).start()
        started.append(server)
        settings = write_settings(workdir, server.hostname)
        print(f"demo TaskBackend on {server.hostname}; starting the planner, shard and sync functions…", flush=True)
        stack = LocalStack(
            PROJECT,
            datastore_emulator.host,
            pubsub_emulator.host,
            settings,
            log_dir=workdir,
            extra_env=datastore_emulator.env,  # BUILDSYNC_TRANSACTION_BEGIN=explicit on Firestore
        )
        started.append(stack)
        stack.start()
        client = datastore_client(datastore_emulator.host, PROJECT)
        build_ids = seed_builds(client, demo_backend, args.builds, rng)
        hanging = sum(1 for finish, final in demo_backend._plans.values() if final is None)
        print(
            f"seeded {len(build_ids)} builds over {len(PROJECTS)} projects and {SHARDS} shards "
            f"({hanging} of their tasks will hang); function logs in {workdir}",
            flush=True,
        )

        notified: set[int] = set()
        deadline = time.monotonic() + args.timeout
        table = status_table(client, build_ids)
        while time.monotonic() < deadline:
            stack.publish(stack.topics.trigger, SyncTrigger().to_json())
            next_trigger = time.monotonic() + TRIGGER_EVERY_SECONDS
            while time.monotonic() < next_trigger:
                notified |= {from_pubsub_data(m.message.data).build.id for m in stack.pull_notifications()}
                time.sleep(0.5)
            table = status_table(client, build_ids)
            ended = sum(c[s] for c in table.values() for s in ("SUCCESS", "FAILURE", "INFRA_FAILURE", "CANCELED"))
            print(
                f"  {synced_tasks(client, build_ids)}/{len(build_ids)} builds have heard from their task, "
                f"{ended} ended, {len(notified)} notifications",
                flush=True,
            )
            if settled(table, hanging):
                break
        print_table(table, len(notified))
        ok = settled(table, hanging)
        print("settled: every build whose task ended has ended." if ok else "did not settle before --timeout.")
        return 0 if ok else 1
    except EmulatorUnavailable as error:
        print(f"cannot start an emulator: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    finally:
        print("stopping everything this run started…", flush=True)
        for thing in reversed(started):
            thing.stop()


if __name__ == "__main__":
    sys.exit(main())
