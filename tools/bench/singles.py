"""The once-per-run figures: the sync stage's memory for one batch, and each function's cold start."""

from __future__ import annotations

import json
import sys
import time

from tools.bench.environment import BenchEnvironment
from tools.bench.processes import Supervisor
from tools.bench.runs import utc_now
from tools.bench.seeding import BACKEND, FIRST_BUILD_ID
from tools.stack import FUNCTIONS

MEMORY_PROJECT = "bench-memory"


def memory(env: BenchEnvironment, supervisor: Supervisor, n: int) -> dict[str, float]:
    """sync_batch of one batch in a fresh process (tools/bench/memory_probe.py): RSS growth, then the
    tracemalloc peak, each on fresh builds."""
    results = {}
    for mode in ("rss", "tracemalloc"):
        env.fresh_builds(n, project=MEMORY_PROJECT)
        command = [
            sys.executable,
            "-m",
            "tools.bench.memory_probe",
            f"--backend-host={env.server.hostname}",
            f"--backend={BACKEND}",
            f"--project={MEMORY_PROJECT}",
            f"--first-id={FIRST_BUILD_ID}",
            f"--count={n}",
            f"--planned-at={utc_now().isoformat()}",
        ]
        if mode == "tracemalloc":
            command.append("--tracemalloc")
        stdout, stderr, returncode = supervisor.run_child(command, timeout=600, env=env.child_env())
        if returncode != 0:
            raise RuntimeError(f"tools.bench.memory_probe failed:\n{stderr[-3000:]}")
        result = json.loads(stdout.strip().splitlines()[-1])
        if result["counts"]["updated"] != n:
            supervisor.log(f"  warning: the memory run updated {result['counts']['updated']} of {n} builds")
        if mode == "rss":
            results.update(
                rss_after_imports_mib=result["after_imports_mib"],
                rss_baseline_mib=result["baseline_mib"],
                rss_peak_mib=result["peak_mib"],
                rss_growth_mib=result["peak_mib"] - result["baseline_mib"],
                hwm_growth_mib=result["hwm_during_mib"] - result["rss_before_mib"],
                rss_before_mib=result["rss_before_mib"],
                hwm_during_mib=result["hwm_during_mib"],
                seconds=result["seconds"],
            )
        else:
            results["tracemalloc_peak_mib"] = result["tracemalloc_peak_mib"]
    return results


def cold_starts(supervisor: Supervisor, runs: int) -> dict[str, list[float]]:
    """Seconds to import each function's main.py in a fresh interpreter (one untimed run first, for .pyc files)."""
    times: dict[str, list[float]] = {}
    for name in FUNCTIONS:
        code = f"import sys; sys.path.insert(0, 'functions/{name}'); import main"
        command = [sys.executable, "-c", code]
        times[name] = []
        for attempt in range(runs + 1):
            started = time.perf_counter()
            _, stderr, returncode = supervisor.run_child(command, timeout=120)
            if returncode != 0:
                raise RuntimeError(f"importing functions/{name}/main.py failed:\n{stderr[-3000:]}")
            if attempt:
                times[name].append(time.perf_counter() - started)
    return times
