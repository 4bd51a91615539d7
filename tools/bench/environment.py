"""What a benchmark run starts: the emulators, a TaskBackend that answers at once, and the three functions."""

from __future__ import annotations

import contextlib
import datetime
import pathlib
import tempfile
import time

from buildsync.edge import environment
from buildsync.proto import buildbucket_pb2 as pb
from buildsync.rules.settings import Settings, parse_settings
from buildsync.store.transactions import TransactionBegin
from google.cloud import datastore

from tools.bench.datastore_calls import DatastoreCallCounter, counting_client
from tools.bench.processes import Supervisor
from tools.bench.seeding import BACKEND, PROJECT, Layout, build_ids, seed
from tools.emulators import SETTINGS_FOR, Emulator, datastore_client
from tools.stack import LocalStack
from tools.task_backend import TaskBackendServer


class BenchEnvironment:
    """Everything started for one benchmark run; each thing is registered for stopping before it starts."""

    def __init__(
        self,
        layout: Layout,
        exit_stack: contextlib.ExitStack,
        supervisor: Supervisor,
        task_count: int,
        datastore_kind: str = "datastore",
    ) -> None:
        self.layout = layout
        self.datastore_kind = datastore_kind
        self.exit = exit_stack
        self.log = supervisor.log
        self.task_count = task_count
        self.workdir = pathlib.Path(tempfile.mkdtemp(prefix="buildsync-bench-"))
        self.datastore_emulator: Emulator | None = None
        self.pubsub_emulator: Emulator | None = None
        self.server: TaskBackendServer | None = None
        self.stack: LocalStack | None = None
        self.settings: Settings | None = None
        # How this emulator's transactions must begin (tools/emulators.py SETTINGS_FOR: explicit on Firestore).
        self.transaction_begin: TransactionBegin = environment.transaction_begin(SETTINGS_FOR.get(datastore_kind, {}))

    def start(self, full: bool, pubsub: bool) -> None:
        """Starts the emulators, the TaskBackend and (`full`) the functions; `pubsub` also without functions."""
        self.datastore_emulator = Emulator(self.datastore_kind, PROJECT)
        self.exit.callback(self.datastore_emulator.stop)
        emulators = [self.datastore_emulator]
        if full or pubsub:
            self.pubsub_emulator = Emulator("pubsub", PROJECT)
            self.exit.callback(self.pubsub_emulator.stop)
            emulators.append(self.pubsub_emulator)
        self.log("starting the emulators: " + ", ".join(e.kind for e in emulators))
        for emulator in emulators:  # in the main thread, so that Ctrl-C finds every process registered
            emulator.start()
        self.server = TaskBackendServer()
        self.exit.callback(self.server.stop)
        self.server.start()
        for build_id in build_ids(self.task_count):
            self.server.backend.set_task(f"task-{build_id}", pb.STARTED, update_id=2, target=BACKEND)
        self.settings_path = self.workdir / "settings.cfg"
        self.settings_path.write_text(
            f'backends {{\n  target: "{BACKEND}"\n  hostname: "{self.server.hostname}"\n'
            f"  full_mode {{ build_sync_setting {{ shards: {self.layout.shards} }} }}\n}}\n"
        )
        self.settings = parse_settings(self.settings_path.read_text(), "text")
        if full:
            self.log("starting the planner, shard and sync functions")
            self.stack = LocalStack(
                PROJECT,
                self.datastore_emulator.host,
                self.pubsub_emulator.host,
                self.settings_path,
                log_dir=self.workdir,
            )
            self.exit.callback(self.stack.stop)
            self.stack.start()

    def process_groups(self) -> dict[str, int]:
        """Process groups of what this run started and is still running (each was started in a new session)."""
        groups = {}
        for name, emulator in (
            ("datastore emulator", self.datastore_emulator),
            ("pubsub emulator", self.pubsub_emulator),
        ):
            if emulator is not None and emulator._process is not None:
                groups[name] = emulator._process.pid
        if self.stack is not None:
            groups.update(
                {f"function {n}": f._process.pid for n, f in self.stack.functions.items() if f._process is not None}
            )
        return groups

    def child_env(self) -> dict[str, str]:
        """What a child process (the memory probe) needs to reach the emulators and begin transactions on them.

        This process's own clients are given the hosts instead (client, counting_client).
        """
        env = {**self.datastore_emulator.env, "GOOGLE_CLOUD_PROJECT": PROJECT}
        if self.pubsub_emulator is not None:
            env["PUBSUB_EMULATOR_HOST"] = self.pubsub_emulator.host
        return env

    def client(self) -> datastore.Client:
        return datastore_client(self.datastore_emulator.host, PROJECT)

    def counting_client(self, host: str | None = None) -> tuple[datastore.Client, DatastoreCallCounter]:
        """A client whose RPCs are counted, to the emulator or to `host` (a delay proxy in front of it)."""
        return counting_client(PROJECT, host or self.datastore_emulator.host)

    def seed_more(self, ids: range, project: str) -> None:
        """Adds due builds with `ids` to `project`'s shard 0, and their tasks, without emptying Datastore."""
        due_at = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)
        started = time.perf_counter()
        seed(self.client(), self.layout, len(ids), due_at, first=ids.start, project=project)
        for build_id in ids:
            self.server.backend.set_task(f"task-{build_id}", pb.STARTED, update_id=2, target=BACKEND)
        self.log(f"  seeded {len(ids)} builds in {project} in {time.perf_counter() - started:.1f}s (not timed)")

    def fresh_builds(self, n: int, project: str | None = None) -> datetime.datetime:
        """Empties Datastore and seeds N due builds (untimed); returns when they became due."""
        self.datastore_emulator.reset()
        due_at = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)
        started = time.perf_counter()
        seed(self.client(), self.layout, n, due_at, project=project)
        self.log(f"  seeded {n} builds ({3 * n} entities) in {time.perf_counter() - started:.1f}s (not timed)")
        self.server.backend.calls.clear()
        return due_at
