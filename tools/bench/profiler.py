"""cProfile of every thread: the pipeline's work is all in pool threads."""

from __future__ import annotations

import cProfile
import io
import pathlib
import pstats
import sys
import threading


class ThreadsProfiler:
    """Profiles the thread that enters it and every thread started while it is active.

    Times are per thread and add up over threads, so with 16 threads mostly
    waiting on RPCs the cumulative times exceed the wall time; tottime of the
    non-waiting functions is the Python CPU cost.
    """

    def __init__(self) -> None:
        self._profiles: list[cProfile.Profile] = []
        self._lock = threading.Lock()

    def _start_in_thread(self, frame, event, arg) -> None:
        sys.setprofile(None)
        profile = cProfile.Profile()
        with self._lock:
            self._profiles.append(profile)
        profile.enable()

    def __enter__(self) -> ThreadsProfiler:
        threading.setprofile(self._start_in_thread)
        self._main = cProfile.Profile()
        self._main.enable()
        return self

    def __exit__(self, *exc) -> None:
        self._main.disable()
        threading.setprofile(None)

    def stats(self) -> pstats.Stats:
        stats = pstats.Stats(self._main)
        for profile in self._profiles:
            profile.create_stats()
            if profile.stats:
                stats.add(profile)
        return stats

    def report(self, dump_to: pathlib.Path, lines: int = 30) -> str:
        """Dumps the stats to `dump_to` and returns the top `lines` by tottime and by cumulative time."""
        stats = self.stats()
        stats.dump_stats(dump_to)
        parts = []
        for order in ("tottime", "cumulative"):
            text = io.StringIO()
            stats.stream = text
            stats.sort_stats(order).print_stats(lines)
            parts.append(f"  cProfile, every Python thread, by {order} ({dump_to}):\n{text.getvalue()}")
        return "\n".join(parts)
