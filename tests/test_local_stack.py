"""The local stack: driven by hand with --keep, its progress line, and the demo backend on its own."""

from __future__ import annotations

import io
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading

import grpc
import pytest
from buildsync.proto import buildbucket_pb2 as pb
from buildsync.proto import buildbucket_pb2_grpc as pb_grpc
from buildsync.store import model

from tests.harness import SETTLE_SECONDS
from tools import local_stack
from tools.demo_backend import FINAL_UPDATE_ID, DemoTaskBackend
from tools.emulators import datastore_client, wait_until
from tools.stack import REPO

# --- pure parts ------------------------------------------------------------------------------


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_without_a_terminal_the_progress_is_a_plain_line_only_when_the_counts_change():
    out = io.StringIO()
    progress = local_stack.ProgressLine(out)

    progress.show("[0:01] 6 builds: 6 due, 0 synced, 0 ended, 0 notified; next due 12:00:00 UTC (in 9s)")
    progress.show("[0:02] 6 builds: 6 due, 0 synced, 0 ended, 0 notified; next due 12:00:00 UTC (in 8s)")
    progress.show("[0:03] 6 builds: 0 due, 6 synced, 0 ended, 0 notified; next due 12:00:00 UTC (in 7s)")
    progress.done()

    assert out.getvalue().splitlines() == [
        "[0:01] 6 builds: 6 due, 0 synced, 0 ended, 0 notified; next due 12:00:00 UTC (in 9s)",
        "[0:03] 6 builds: 0 due, 6 synced, 0 ended, 0 notified; next due 12:00:00 UTC (in 7s)",
    ]
    assert "\r" not in out.getvalue()


def test_on_a_terminal_the_progress_line_is_redrawn_in_place():
    out = FakeTty()
    progress = local_stack.ProgressLine(out)

    progress.show("[0:01] long line")
    progress.show("[0:02] short")
    progress.done()

    assert out.getvalue() == "\r[0:01] long line\r[0:02] short    \n"


@pytest.mark.parametrize(
    "data, build_id",
    [
        (b'{"build": {"id": "8", "status": "SUCCESS"}, "compression": "ZLIB"}', 8),
        (b'{"build": {"id": "9"}, "someFieldFromLater": 1}', 9),
        (b"not json", None),
        (b"{}", None),
    ],
)
def test_notifications_name_their_build(data, build_id):
    assert local_stack.notified_build_id(data) == build_id


def test_demo_tasks_run_report_progress_and_end_as_their_id_and_seed_decide():
    clock = [100.0]
    backend = DemoTaskBackend(seed=3, clock=lambda: clock[0])
    ending = next(f"t{i}" for i in range(100) if backend.plan(f"t{i}")[1] is not None)
    hanging = next(f"t{i}" for i in range(100) if backend.plan(f"t{i}")[1] is None)
    request = pb.FetchTasksRequest(task_ids=[pb.TaskID(target="swarming://x", id=ending), pb.TaskID(id=hanging)])

    first = backend.answer(request, {})
    clock[0] += 1000
    later = backend.answer(request, {})

    assert [r.task.status for r in first.responses] == [pb.STARTED, pb.STARTED]
    assert [r.task.update_id for r in first.responses] == [2, 2]
    assert later.responses[0].task.status == backend.plan(ending)[1]
    assert later.responses[0].task.update_id == FINAL_UPDATE_ID
    assert later.responses[1].task.status == pb.STARTED and later.responses[1].task.update_id > 2
    assert DemoTaskBackend(seed=3).plan(ending) == backend.plan(ending)


# --- real processes ----------------------------------------------------------------------------


def test_the_demo_backend_runs_alone_and_stops_on_ctrl_c():
    process = subprocess.Popen(
        [sys.executable, "-m", "tools.demo_backend"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        grpc_host = re.search(r"and gRPC on (\S+);", process.stdout.readline())[1]
        with grpc.insecure_channel(grpc_host) as channel:
            request = pb.FetchTasksRequest(task_ids=[pb.TaskID(target="swarming://x", id="any-task")])
            response = pb_grpc.TaskBackendStub(channel).FetchTasks(request, timeout=30)
        assert response.responses[0].task.status == pb.STARTED

        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


class KeptStack:
    """`tools/local_stack.py --keep` in its own process, its output read line by line."""

    def __init__(self, builds: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tools.local_stack", "--keep", "--builds", str(builds)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            # A shell that ran these tests in the background ignores SIGINT, and the stack would inherit
            # that: it must take Ctrl-C (SIGINT) as a person's terminal sends it.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def next_line(self, timeout: float = 240) -> str:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("the stack printed nothing more:\n" + "\n".join(self.output)) from None
        self.output.append(line)
        return line

    def lines_until(self, marker: str, count_after: int = 0) -> list[str]:
        seen = []
        while not seen or marker not in seen[-1]:
            seen.append(self.next_line())
        return seen + [self.next_line() for _ in range(count_after)]

    def rest(self) -> str:
        self.process.wait(timeout=120)
        while True:
            try:
                self.output.append(self.lines.get(timeout=5))
            except queue.Empty:
                return "\n".join(self.output)

    def kill(self) -> None:
        """Ends the stack if a test left it running: SIGTERM first, so that it stops its emulators and functions."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def function_log(folder: str, name: str) -> list[dict]:
    with open(os.path.join(folder, f"{name}.log"), encoding="utf-8", errors="replace") as log:
        return [json.loads(line) for line in log if line.startswith("{")]


def port_is_open(host: str) -> bool:
    address, port = host.rsplit(":", 1)
    with socket.socket() as sock:
        return sock.connect_ex((address, int(port))) == 0


@pytest.mark.skipif(shutil.which("gcloud") is None, reason="THE GOOGLE CLOUD CLI IS NOT INSTALLED: no emulators")
def test_triggers_published_by_hand_to_a_kept_stack_sync_what_they_name():
    stack = KeptStack(builds=12)
    try:
        printed = stack.lines_until("Watch what is due:", count_after=1)
        publish = {
            re.search(r"--message=(\S+)$", line)[1]: line.strip() for line in printed if "topics publish" in line
        }
        assert set(publish) == {"'{}'", """'{"project":"chromium"}'""", """'{"backend":"swarming://demo-swarm"}'"""}
        assert all("gcloud pubsub topics publish buildsync-trigger " in command for command in publish.values())
        status_command = printed[-1].strip()
        datastore_host = re.search(r"DATASTORE_EMULATOR_HOST=(\S+)", status_command)[1]
        client = datastore_client(datastore_host, local_stack.PROJECT)
        build_ids = list(range(1001, 1013))
        projects = {i: local_stack.PROJECTS[i % len(local_stack.PROJECTS)] for i in build_ids}

        def synced() -> set[int]:
            infras = client.get_multi([model.infra_key(client, i) for i in build_ids])
            return {model.build_id_of(e.key) for e in infras if model.read_infra(e).backend.task.update_id > 1}

        assert synced() == set()  # a kept stack triggers nothing by itself

        subprocess.run(publish["""'{"project":"chromium"}'"""], shell=True, check=True, timeout=120)
        chromium = {i for i in build_ids if projects[i] == "chromium"}
        wait_until(lambda: synced() >= chromium, SETTLE_SECONDS, "the chromium builds to sync", interval=0.5)
        assert synced() == chromium

        subprocess.run(publish["'{}'"], shell=True, check=True, timeout=120)
        wait_until(lambda: synced() == set(build_ids), SETTLE_SECONDS, "every build to sync", interval=0.5)

        status = subprocess.run(status_command + " --json", shell=True, capture_output=True, text=True, timeout=120)
        assert status.returncode == 0, status.stderr
        assert '"rows"' in status.stdout and f'"backend": "{local_stack.BACKEND}"' in status.stdout

        stack.process.send_signal(signal.SIGINT)
        output = stack.rest()
        assert stack.process.returncode == 0, output
        assert "stopping everything this run started" in output
        logs = re.search(r"logs kept in (\S+)", output)[1]
        planned = [e["message"] for e in function_log(logs, "planner") if e.get("message", "").startswith("planned")]
        assert planned == [
            "planned 3 shard jobs: swarming://demo-swarm: chromium (3 shard jobs)",
            "planned 9 shard jobs: swarming://demo-swarm: chromium (3 shard jobs), fuchsia (3 shard jobs), "
            "v8--beta (3 shard jobs)",
        ]
        assert not port_is_open(datastore_host)
        shutil.rmtree(logs, ignore_errors=True)
    finally:
        stack.kill()
