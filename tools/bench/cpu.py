"""CPU accounting from /proc: who used the two cores during a run.

The emulators share the machine with everything else; these figures tell a
Python-bound run from an emulator-bound one, and show the noise.
"""

from __future__ import annotations

import os
import resource
from typing import Iterator

CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_stats() -> Iterator[tuple[int, list[str]]]:
    """(pid, the fields of /proc/PID/stat after the command name) of every live process."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                yield int(entry), stat.read().rpartition(")")[2].split()
        except OSError:
            continue


def live_members(pgid: int) -> list[int]:
    """The pids of the live (not zombie) processes of a process group."""
    return [pid for pid, fields in proc_stats() if int(fields[2]) == pgid and fields[0] != "Z"]


def group_cpu_seconds(pgids: dict[str, int]) -> dict[str, float]:
    """CPU seconds (user+system) used so far by the live processes of each process group."""
    by_pgid = {pgid: 0 for pgid in pgids.values()}
    for _, fields in proc_stats():
        pgrp = int(fields[2])
        if pgrp in by_pgid:
            by_pgid[pgrp] += int(fields[11]) + int(fields[12])
    return {name: by_pgid[pgid] / CLK_TCK for name, pgid in pgids.items()}


def self_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def machine_busy_seconds() -> float:
    """CPU seconds every process on the machine has used (the first line of /proc/stat)."""
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


class CpuMeter:
    """CPU used by this process, by named process groups, and by everything else, between enter and exit."""

    def __init__(self, pgids: dict[str, int]) -> None:
        self.pgids = pgids
        self.used: dict[str, float] = {}

    def __enter__(self) -> CpuMeter:
        self._self = self_cpu_seconds()
        self._groups = group_cpu_seconds(self.pgids)
        self._machine = machine_busy_seconds()
        return self

    def __exit__(self, *exc) -> None:
        groups = group_cpu_seconds(self.pgids)
        machine = machine_busy_seconds() - self._machine
        self.used = {name: groups[name] - self._groups[name] for name in groups}
        self.used["benchmark process"] = self_cpu_seconds() - self._self
        # Other work on the machine competes for the same cores and skews the figures.
        self.used["other processes"] = max(0.0, machine - sum(self.used.values()))


def own_cpu(used: dict[str, float]) -> float:
    """CPU of everything a run itself used, not of other work on the machine."""
    return sum(seconds for name, seconds in used.items() if name != "other processes")
