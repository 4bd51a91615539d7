"""stages/fair_share.py: one key cannot hold every worker while others wait."""

from __future__ import annotations

import concurrent.futures
import contextlib
import threading
from collections.abc import Iterator

from buildsync.stages.fair_share import FairShare

from tools.emulators import wait_until


class Blocked:
    """Calls that run until released one by one, recording the keys in the order they started."""

    def __init__(self) -> None:
        self._gate = threading.Semaphore(0)
        self.started: list[str] = []
        self._lock = threading.Lock()

    def call(self, key: str) -> str:
        with self._lock:
            self.started.append(key)
        self._gate.acquire()
        return key

    def release(self, calls: int = 1000) -> None:
        self._gate.release(calls)


@contextlib.contextmanager
def fair_share(workers: int, per_key: int) -> Iterator[tuple[FairShare, Blocked]]:
    """A FairShare on its own threads, whose blocked calls are all released at the end, whatever happened."""
    blocked = Blocked()
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as executor:
        try:
            yield FairShare(executor, workers, per_key), blocked
        finally:
            blocked.release()


def test_a_key_at_its_share_waits_while_another_key_runs():
    with fair_share(workers=4, per_key=2) as (fair, blocked):
        hung = [fair.submit("hung", blocked.call, "hung") for _ in range(5)]
        wait_until(lambda: len(blocked.started) == 2, 10, "two hung calls to start")
        healthy = [fair.submit("healthy", lambda: "done") for _ in range(10)]

        assert [future.result(timeout=10) for future in healthy] == ["done"] * 10
        assert blocked.started == ["hung", "hung"] and not any(future.done() for future in hung)
        blocked.release()
        assert [future.result(timeout=10) for future in hung] == ["hung"] * 5


def test_once_closed_idle_workers_take_a_key_past_its_share():
    with fair_share(workers=4, per_key=1) as (fair, blocked):
        futures = [fair.submit("only", blocked.call, "only") for _ in range(6)]
        wait_until(lambda: len(blocked.started) == 1, 10, "the first call to start")

        fair.close()

        wait_until(lambda: len(blocked.started) == 4, 10, "every worker to take a call")
        blocked.release()
        assert [future.result(timeout=10) for future in futures] == ["only"] * 6


def test_a_free_worker_takes_the_key_with_the_fewest_running():
    with fair_share(workers=2, per_key=2) as (fair, blocked):
        first = [fair.submit("a", blocked.call, "a") for _ in range(2)]
        wait_until(lambda: len(blocked.started) == 2, 10, "two calls of a to start")
        fair.submit("a", blocked.call, "a")
        fair.submit("b", blocked.call, "b")  # queued after a's third

        blocked.release(1)

        wait_until(lambda: len(blocked.started) == 3, 10, "the freed worker to take a call")
        assert blocked.started == ["a", "a", "b"]
        blocked.release()
        assert [future.result(timeout=10) for future in first] == ["a", "a"]


def test_an_exception_reaches_the_future_and_frees_the_worker():
    def fail() -> None:
        raise ValueError("bug")

    with fair_share(workers=1, per_key=1) as (fair, _):
        failed, after = fair.submit("k", fail), fair.submit("k", lambda: 7)

        assert isinstance(failed.exception(timeout=10), ValueError) and after.result(timeout=10) == 7


def test_a_narrowed_key_starts_nothing_until_its_running_calls_end_then_one_at_a_time():
    with fair_share(workers=4, per_key=4) as (fair, blocked):
        first = [fair.submit("k", blocked.call, "k") for _ in range(3)]
        wait_until(lambda: len(blocked.started) == 3, 10, "three calls to start")
        fair.narrow("k")
        later = [fair.submit("k", blocked.call, "k") for _ in range(2)]

        blocked.release(2)
        wait_until(lambda: sum(future.done() for future in first) == 2, 10, "two of the three calls to end")
        assert len(blocked.started) == 3  # one still running: nothing new starts

        blocked.release(1)
        wait_until(lambda: len(blocked.started) == 4, 10, "one more call to start")
        fair.widen("k")
        wait_until(lambda: len(blocked.started) == 5, 10, "the widened key to take another worker")
        blocked.release()
        assert [future.result(timeout=10) for future in later] == ["k", "k"]
