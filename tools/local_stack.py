"""The whole job on this machine: emulators, the three functions, a demo backend.

Run it with `tools/local.sh` (which makes the virtualenv). It starts the
Datastore and Pub/Sub emulators, serves the planner, shard and sync functions
with functions-framework behind push subscriptions on the README's topics,
starts the demo TaskBackend (tools/demo_backend.py), and seeds demo builds over
several projects and shards. Then either

- the demo: it publishes a trigger every few seconds (standing in for Cloud
  Scheduler's every minute) and shows progress until the builds settle; or
- with `--keep`, it publishes nothing: it prints the `gcloud pubsub topics
  publish` commands to drive it by hand and the `buildsync status` command to
  watch it, and shows progress until Ctrl-C.

With `--completion buildbucket` the functions hand each ended build to
Buildbucket's task queues instead of publishing (README "Choosing the
completion mode"): a local Cloud Tasks server (tools/cloud_tasks.py) receives
the tasks and a local redis-server stands for Buildbucket's cache; the
progress line counts the builds handed off.

At the end, or on Ctrl-C, it stops every process it started and removes its
folder of logs (kept, and named, with `--keep`).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime
import json
import pathlib
import random
import shlex
import shutil
import signal
import sys
import tempfile
import threading
import time

from buildsync.proto import buildbucket_pb2 as pb
from buildsync.rules import sync_time
from buildsync.store import model
from google.cloud import datastore
from google.protobuf import json_format

from tools.cloud_tasks import CloudTasksServer, decoded
from tools.demo_backend import DemoTaskBackend
from tools.emulators import DATASTORE_KINDS, Emulator, EmulatorUnavailable, datastore_client
from tools.new_builds import NewBuild, new_build_entities
from tools.redis_server import RedisServer
from tools.stack import LocalStack, Topics, from_pubsub_data
from tools.task_backend import TaskBackendServer

PROJECT = "buildsync-local"
BACKEND = "swarming://demo-swarm"
PROJECTS = ("chromium", "fuchsia", "v8--beta")
SHARDS = 3
# The topic names of the README and deploy/variables.tf, so its commands work here too.
README_TOPICS = Topics("buildsync-trigger", "buildsync-shard", "buildsync-sync", "buildsync-builds")

# Demo builds are due again 5 s after each sync instead of five minutes; sync
# times have minute precision, so each build is still synced about once a
# minute, and the demo settles in one to two minutes.
DEMO_SYNC_INTERVAL = datetime.timedelta(seconds=5)
TRIGGER_EVERY_SECONDS = 5.0
# How often the progress line is redrawn; without a terminal a line is printed only when it changes.
PROGRESS_EVERY_SECONDS = 1.0
ENDED = ("SUCCESS", "FAILURE", "INFRA_FAILURE", "CANCELED")


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


def seed_builds(client: datastore.Client, count: int, rng: random.Random) -> list[int]:
    """`count` STARTED builds, due since ten minutes ago, spread over the projects and shards."""
    due_since = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=10)
    entities, build_ids = [], []
    for build_id in range(1001, 1001 + count):
        spec = NewBuild(
            build_id=build_id,
            project=PROJECTS[build_id % len(PROJECTS)],
            backend=BACKEND,
            task_id=task_id_of(build_id),
            update_time=due_since,
            shards=SHARDS,
            sync_interval=DEMO_SYNC_INTERVAL,
            builder=rng.choice(("linux", "mac", "win")),
        )
        entities += new_build_entities(client, spec)
        build_ids.append(build_id)
    for start in range(0, len(entities), 300):
        client.put_multi(entities[start : start + 300])
    return build_ids


def task_id_of(build_id: int) -> str:
    return f"demo-task-{build_id}"


class Snapshot:
    """What the demo builds look like now: per project and status, due, synced, the next due time."""

    def __init__(self, client: datastore.Client, build_ids: list[int], now: float) -> None:
        builds = client.get_multi([model.build_key(client, i) for i in build_ids])
        infras = client.get_multi([model.infra_key(client, i) for i in build_ids])
        self.total = len(build_ids)
        self.table: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        times = []
        for entity in builds:
            self.table[entity["project"]][pb.Status.Name(entity["status_v2"])] += 1
            if entity["incomplete"]:
                times.append(sync_time.parse_time(entity["next_backend_sync_time"]))
        self.due = sum(1 for t in times if t < now)
        later = [t for t in times if t >= now]
        self.next_due = min(later) if later else None
        # Builds whose stored task moved past the update it was seeded with.
        self.synced = sum(1 for entity in infras if model.read_infra(entity).backend.task.update_id > 1)
        self.ended = sum(counts[s] for counts in self.table.values() for s in ENDED)
        self.running = sum(c["SCHEDULED"] + c["STARTED"] for c in self.table.values())

    def line(self, elapsed: float, notified: int, now: float, done: str = "notified") -> str:
        minutes, seconds = divmod(int(elapsed), 60)
        if self.next_due is None:
            upcoming = "nothing due later"
        else:
            at = datetime.datetime.fromtimestamp(self.next_due, datetime.timezone.utc).strftime("%H:%M:%S")
            upcoming = f"next due {at} UTC (in {int(self.next_due - now)}s)"
        return (
            f"[{minutes:d}:{seconds:02d}] {self.total} builds: {self.due} due, {self.synced} synced, "
            f"{self.ended} ended, {notified} {done}; {upcoming}"
        )


class ProgressLine:
    """One line redrawn in place on a terminal; plain lines, only when they change, elsewhere."""

    def __init__(self, stream=sys.stdout) -> None:
        self._stream = stream
        self._tty = stream.isatty()
        self._last = ""

    def show(self, text: str) -> None:
        if self._tty:
            self._stream.write("\r" + text.ljust(len(self._last)))
        elif self._changed(text):
            self._stream.write(text + "\n")
        self._stream.flush()
        self._last = text

    def _changed(self, text: str) -> bool:
        # The elapsed time and the countdown always move; the counts are the news.
        strip = lambda line: line.split("] ", 1)[-1].split("; next due")[0]  # noqa: E731
        return strip(text) != strip(self._last)

    def done(self) -> None:
        if self._tty and self._last:
            self._stream.write("\n")
            self._stream.flush()
        self._last = ""


def notified_build_id(data: bytes) -> int | None:
    """The build a completion notification (BuildsV2PubSub) is about; None for anything else."""
    try:
        return from_pubsub_data(data).build.id or None
    except json_format.ParseError:
        return None


class Notifications:
    """Counts the builds the completion notifications name, as they arrive (a streaming pull)."""

    label = "notified"

    def __init__(self, stack: LocalStack) -> None:
        self._ids: set[int] = set()
        self._lock = threading.Lock()
        self._future = stack.subscriber.subscribe(stack.builds_subscription, self._received)

    def _received(self, message) -> None:
        build_id = notified_build_id(message.data)
        message.ack()
        if build_id is not None:
            with self._lock:
                self._ids.add(build_id)

    def count(self) -> int:
        with self._lock:
            return len(self._ids)

    def close(self) -> None:
        self._future.cancel()
        with contextlib.suppress(Exception):
            self._future.result(timeout=10)


class HandedOff:
    """Counts the builds whose completion tasks reached the local Cloud Tasks server."""

    label = "handed off"

    def __init__(self, server: CloudTasksServer) -> None:
        self._server = server

    def count(self) -> int:
        created = list(self._server.servicer.created.values())
        return len({decoded(request).payload.build_id for request in created})

    def close(self) -> None:
        pass


def hand_commands(stack: LocalStack, pubsub_host: str, datastore_host: str, settings: pathlib.Path) -> str:
    """The commands that drive and watch this stack from another shell, exactly as they run."""
    gcloud_env = (
        f"CLOUDSDK_API_ENDPOINT_OVERRIDES_PUBSUB=http://{pubsub_host}/ "
        f"CLOUDSDK_AUTH_DISABLE_CREDENTIALS=true CLOUDSDK_CORE_PROJECT={PROJECT}"
    )
    compact = {"separators": (",", ":")}
    triggers = ("{}", json.dumps({"project": PROJECTS[0]}, **compact), json.dumps({"backend": BACKEND}, **compact))
    script = pathlib.Path(sys.executable).with_name("buildsync")
    buildsync = shlex.quote(str(script)) if script.exists() else f"{shlex.quote(sys.executable)} -m buildsync"
    status = (
        f"DATASTORE_EMULATOR_HOST={datastore_host} GOOGLE_CLOUD_PROJECT={PROJECT} "
        f"{buildsync} status --settings {shlex.quote(str(settings))}"
    )
    lines = ["The stack runs until Ctrl-C, and nothing triggers it but you. Trigger a sync from another shell:"]
    lines += [
        f"  {gcloud_env} gcloud pubsub topics publish {stack.topics.trigger} --message={shlex.quote(t)}"
        for t in triggers
    ]
    lines += ["Watch what is due:", f"  {status}"]
    return "\n".join(lines)


def print_table(table: dict[str, collections.Counter], notified: int, label: str = "notified") -> None:
    columns = ("SCHEDULED", "STARTED", *ENDED)
    print(f"\n{'project':<12}" + "".join(f"{c:>15}" for c in columns) + f"{'total':>8}")
    for project in sorted(table):
        counts = table[project]
        print(f"{project:<12}" + "".join(f"{counts[c]:>15}" for c in columns) + f"{sum(counts.values()):>8}")
    print(f"builds {label}: {notified}")


def run(stack: LocalStack, client: datastore.Client, build_ids: list[int], hanging: int, args, cloud_tasks=None) -> int:
    """Shows progress (and, without --keep, triggers) until the builds settle, --timeout, or Ctrl-C."""
    started = time.monotonic()
    progress = ProgressLine()
    notified = HandedOff(cloud_tasks) if cloud_tasks is not None else Notifications(stack)
    next_trigger = started
    snapshot = Snapshot(client, build_ids, time.time())
    try:
        while args.keep or time.monotonic() - started < args.timeout:
            if not args.keep and time.monotonic() >= next_trigger:
                stack.publish(stack.topics.trigger, b"{}")
                next_trigger = time.monotonic() + TRIGGER_EVERY_SECONDS
            snapshot = Snapshot(client, build_ids, time.time())
            progress.show(snapshot.line(time.monotonic() - started, notified.count(), time.time(), notified.label))
            if not args.keep and snapshot.running <= hanging:
                break
            time.sleep(PROGRESS_EVERY_SECONDS)
    except KeyboardInterrupt:
        if not args.keep:
            raise
    finally:
        notified.close()
    progress.done()
    print_table(snapshot.table, notified.count(), notified.label)
    if args.keep:
        return 0  # Ctrl-C is how a kept stack ends
    ok = snapshot.running <= hanging
    print("settled: every build whose task ended has ended." if ok else "did not settle before --timeout.")
    return 0 if ok else 1


def handoff_env(cloud_tasks: CloudTasksServer, redis_server: RedisServer) -> dict[str, str]:
    """The functions' variables of buildbucket completion mode, on the local servers."""
    return {
        "BUILDSYNC_COMPLETION": "buildbucket",
        "BUILDSYNC_BUILDBUCKET_QUEUES": cloud_tasks.parent,
        "BUILDSYNC_CLOUD_TASKS_ENDPOINT": cloud_tasks.endpoint,
        "BUILDSYNC_DSCACHE_REDIS": redis_server.address,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--builds", type=int, default=60, help="demo builds to seed (default 60)")
    parser.add_argument("--timeout", type=float, default=180, help="seconds to wait for the builds to settle")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the demo")
    parser.add_argument("--keep", action="store_true", help="trigger nothing; run until Ctrl-C; keep the logs")
    parser.add_argument(
        "--emulator",
        choices=DATASTORE_KINDS,
        default="firestore",
        help="Datastore to run on: the Firestore emulator in Datastore mode (default; it locks like production) "
        "or the legacy Datastore emulator",
    )
    parser.add_argument(
        "--completion",
        choices=("standalone", "buildbucket"),
        default="standalone",
        help="who does an ended build's follow-up work: buildsync (default), or Buildbucket's task queues, "
        "here a local Cloud Tasks server, with a local Redis as Buildbucket's cache",
    )
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="buildsync-local-"))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))  # run the finally below on kill
    started: list = []
    try:
        print(f"starting the {args.emulator} and Pub/Sub emulators (logs in {workdir})…", flush=True)
        datastore_emulator = Emulator(args.emulator, PROJECT, log_path=str(workdir / f"{args.emulator}-emulator.log"))
        started.append(datastore_emulator)
        pubsub_emulator = Emulator("pubsub", PROJECT, log_path=str(workdir / "pubsub-emulator.log"))
        started.append(pubsub_emulator)
        datastore_emulator.start()
        pubsub_emulator.start()
        demo_backend = DemoTaskBackend(args.seed)
        server = TaskBackendServer(demo_backend).start()
        started.append(server)
        settings = write_settings(workdir, server.hostname)
        extra_env, cloud_tasks = dict(datastore_emulator.env), None  # BUILDSYNC_TRANSACTION_BEGIN=explicit on Firestore
        if args.completion == "buildbucket":
            cloud_tasks, redis_server = CloudTasksServer().start(), RedisServer()
            started += [cloud_tasks, redis_server]
            redis_server.start()
            extra_env.update(handoff_env(cloud_tasks, redis_server))
            print(f"Cloud Tasks on {cloud_tasks.endpoint}, Redis on {redis_server.address}", flush=True)
        print(f"demo TaskBackend on {server.hostname}; starting the planner, shard and sync functions…", flush=True)
        stack = LocalStack(
            PROJECT,
            datastore_emulator.host,
            pubsub_emulator.host,
            settings,
            topics=README_TOPICS,
            log_dir=workdir,
            extra_env=extra_env,
        )
        started.append(stack)
        stack.start()
        client = datastore_client(datastore_emulator.host, PROJECT)
        build_ids = seed_builds(client, args.builds, rng)
        hanging = sum(1 for i in build_ids if demo_backend.plan(task_id_of(i))[1] is None)
        print(
            f"seeded {len(build_ids)} builds over {len(PROJECTS)} projects and {SHARDS} shards "
            f"({hanging} of their tasks will hang)",
            flush=True,
        )
        if args.keep:
            print(hand_commands(stack, pubsub_emulator.host, datastore_emulator.host, settings), flush=True)
        return run(stack, client, build_ids, hanging, args, cloud_tasks)
    except EmulatorUnavailable as error:
        print(f"cannot start an emulator: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup short
        print("stopping everything this run started…", flush=True)
        for thing in reversed(started):
            thing.stop()
        if args.keep:
            print(f"logs kept in {workdir}", flush=True)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
