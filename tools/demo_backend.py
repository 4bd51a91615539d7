"""A demo TaskBackend whose tasks run for a while, report progress, then end (or hang).

A task's fate follows from its id and the seed alone, and its clock starts
when it is first fetched, so the backend needs no list of tasks: the local
stack starts one in-process, and `python -m tools.demo_backend` serves one on
its own (pRPC and gRPC, on the loopback ports it prints) for builds written by anything else.
"""

from __future__ import annotations

import argparse
import random
import signal
import sys
import threading
import time
from typing import Callable

from buildsync.proto import buildbucket_pb2 as pb

from tools.task_backend import FakeTaskBackend, TaskBackendServer

# What the demo tasks do: (share of tasks, final status; None = hangs forever).
SCENARIOS = ((0.6, pb.SUCCESS), (0.25, pb.FAILURE), (0.15, None))
# A task that ends does so this many seconds after it is first fetched.
RUN_SECONDS = (3.0, 30.0)
# A running task reports progress this often: a newer update_id each time.
PROGRESS_EVERY_SECONDS = 2.0
FINAL_UPDATE_ID = 1_000_000


class DemoTaskBackend(FakeTaskBackend):
    """Tasks that run for a while, report progress, then end (or never do)."""

    def __init__(self, seed: int = 1, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._seed = seed
        self._clock = clock
        self._first_seen: dict[str, float] = {}

    def plan(self, task_id: str) -> tuple[float, int | None]:
        """(seconds the task runs, its final status or None when it hangs), the same on every call."""
        rng = random.Random(f"{self._seed}:{task_id}")
        roll, final = rng.random(), None
        for share, status in SCENARIOS:
            if roll < share:
                final = status
                break
            roll -= share
        return rng.uniform(*RUN_SECONDS), final

    def answer(self, request: pb.FetchTasksRequest, headers: dict[str, str]) -> pb.FetchTasksResponse:
        now = self._clock()
        for task_id in request.task_ids:
            running = now - self._first_seen.setdefault(task_id.id, now)
            finish_after, final = self.plan(task_id.id)
            if final is not None and running >= finish_after:
                self.set_task(task_id.id, final, update_id=FINAL_UPDATE_ID, target=task_id.target)
            else:
                progress = 2 + int(min(running, finish_after) // PROGRESS_EVERY_SECONDS)
                self.set_task(task_id.id, pb.STARTED, update_id=progress, target=task_id.target)
        return super().answer(request, headers)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1, help="seed of the tasks' fates (default 1)")
    args = parser.parse_args(argv)
    server = TaskBackendServer(DemoTaskBackend(args.seed)).start()
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    print(
        f"demo TaskBackend serving FetchTasks over pRPC on {server.hostname} and gRPC on {server.grpc_hostname}; "
        "Ctrl-C stops it",
        flush=True,
    )
    try:
        stop.wait()
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
