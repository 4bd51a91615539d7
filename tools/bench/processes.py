"""Process bookkeeping: the child processes of a run, stopping them on Ctrl-C, and proving none is left.

Everything the benchmark starts is started in a new session (its own process
group), so a group id names an emulator or a function with all its children.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from typing import Callable, TypeVar

from tools.bench.cpu import live_members
from tools.stack import REPO

T = TypeVar("T")


def python_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment with `extra` added, and the repository and the core package importable."""
    env = {**os.environ, **(extra or {})}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "shared"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


class Supervisor:
    """The short-lived child processes running now, killed when the benchmark is interrupted.

    Once stopping, no new child starts (the worker thread may still be
    running), and the worker thread's log lines are dropped: its last words
    would only confuse.
    """

    def __init__(self) -> None:
        self._children: set[subprocess.Popen] = set()
        self._lock = threading.Lock()
        self.stopping = threading.Event()

    def log(self, message: str) -> None:
        if self.stopping.is_set() and threading.current_thread() is not threading.main_thread():
            return
        print(message, file=sys.stderr, flush=True)

    def run_child(
        self, command: list[str], timeout: float, env: Mapping[str, str] | None = None
    ) -> tuple[str, str, int]:
        """Runs a Python child in the repository, `env` added to its environment; returns stdout, stderr, exit code."""
        with self._lock:
            if self.stopping.is_set():
                raise RuntimeError("the benchmark is stopping")
            process = subprocess.Popen(
                command, cwd=REPO, env=python_env(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            self._children.add(process)
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            with self._lock:
                self._children.discard(process)
        return stdout, stderr, process.returncode

    def kill_children(self) -> None:
        with self._lock:
            self.stopping.set()
            for process in list(self._children):
                if process.poll() is None:
                    process.kill()

    def check_stopped(self, groups: dict[str, int], timeout: float = 10) -> bool:
        """Says (and logs) whether every process of the groups this run started has gone."""
        deadline = time.monotonic() + timeout
        while True:
            left = {name: pgid for name, pgid in groups.items() if live_members(pgid)}
            if not left or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        if left:
            self.log(
                "WARNING: still running after the stop: "
                + ", ".join(f"{n} (process group {p}: pids {live_members(p)})" for n, p in left.items())
            )
            return False
        self.log(f"checked: none of the {len(groups)} process groups this run started is still running")
        return True


def run_in_thread(work: Callable[[], T]) -> T:
    """Runs `work` in a worker thread while the main thread waits, so that Ctrl-C
    and SIGTERM reach the main thread at once instead of waiting for thread pools."""
    outcome: dict = {}

    def target() -> None:
        try:
            outcome["value"] = work()
        except BaseException as error:  # re-raised in the main thread
            outcome["error"] = error

    thread = threading.Thread(target=target, name="benchmark", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(0.5)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
