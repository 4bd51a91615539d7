"""Batches run on a fixed number of workers, at most a share of them for one backend while more may arrive.

In `buildsync sync` every batch worker could otherwise be waiting on one hung
backend while the other backends' batches queue behind it (docs/isolation.md).
A queued batch of the backend with the fewest batches running goes first; a
backend at its share waits, the others do not. Once no more batches can
arrive (`close`), idle workers take whatever is left. A backend `narrow`ed
(one of its batches failed) runs one batch at a time until `widen`ed: its
calls in flight all end, and record their failures in its breaker, before
another starts, so that a hung backend costs one deadline, not two.
"""

from __future__ import annotations

import collections
import concurrent.futures
import threading
from typing import Any, Callable


class FairShare:
    """Runs submitted calls on `executor`, `workers` at once, at most `per_key` of one key while open."""

    def __init__(self, executor: concurrent.futures.Executor, workers: int, per_key: int) -> None:
        self._executor = executor
        self._workers = max(1, workers)
        self._per_key = max(1, per_key)
        self._queues: dict[str, collections.deque] = collections.defaultdict(collections.deque)
        self._running: collections.Counter[str] = collections.Counter()
        self._narrowed: set[str] = set()
        self._open = True
        self._lock = threading.Lock()

    def submit(self, key: str, call: Callable[..., Any], *args: Any) -> concurrent.futures.Future:
        future: concurrent.futures.Future = concurrent.futures.Future()
        with self._lock:
            self._queues[key].append((future, call, args))
            self._dispatch()
        return future

    def narrow(self, key: str) -> None:
        """From now on `key` runs one call at a time, and none while more than one is running."""
        with self._lock:
            self._narrowed.add(key)

    def widen(self, key: str) -> None:
        """`key` gets its share again."""
        with self._lock:
            self._narrowed.discard(key)
            self._dispatch()

    def close(self) -> None:
        """No more calls will be submitted: the share no longer holds queued calls back."""
        with self._lock:
            self._open = False
            self._dispatch()

    def _dispatch(self) -> None:
        """Starts queued calls while workers are free (the lock held)."""
        share = self._per_key if self._open else self._workers
        while sum(self._running.values()) < self._workers:
            ready = [
                key
                for key, queue in self._queues.items()
                if queue and self._running[key] < (1 if key in self._narrowed else share)
            ]
            if not ready:
                return
            key = min(ready, key=lambda k: self._running[k])
            future, call, args = self._queues[key].popleft()
            self._running[key] += 1
            self._executor.submit(self._run, key, future, call, args)

    def _run(self, key: str, future: concurrent.futures.Future, call: Callable[..., Any], args: tuple) -> None:
        try:
            result, error = call(*args), None
        except BaseException as raised:  # handed to whoever awaits the future
            result, error = None, raised
        with self._lock:
            self._running[key] -= 1
            self._dispatch()
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
