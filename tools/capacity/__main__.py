"""python -m tools.capacity --builds N --projects P --backends B [--shards S] [--interval 300]

Prints each limit's utilisation for that load, the first limit a growing load
meets, and the settings that keep every utilisation under 0.5.
`--table 10000,100000,1000000,10000000` prints the README's Sizing table instead.
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import sys

from tools.bench import cost
from tools.capacity import inputs, report
from tools.capacity.model import Load


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--builds", type=int, help="running builds (incomplete, with a backend task)")
    parser.add_argument("--projects", type=int, required=True, help="projects with running builds")
    parser.add_argument("--backends", type=int, required=True, help="full-mode backends")
    parser.add_argument("--shards", type=int, default=1, help="build_sync_setting.shards of each backend (default 1)")
    parser.add_argument("--interval", type=float, default=300, help="sync_interval_seconds (default 300)")
    parser.add_argument(
        "--busiest-share", type=float, default=0.5, help="share of all builds in the busiest (backend, project) pair"
    )
    parser.add_argument("--build-minutes", type=float, default=30, help="mean build duration (default 30)")
    parser.add_argument("--fetch-seconds", type=float, default=0, help="the backend's own FetchTasks time a batch")
    parser.add_argument("--bench-csv", type=pathlib.Path, default=inputs.BENCH_CSV)
    parser.add_argument("--probe-csv", type=pathlib.Path, default=inputs.PROBE_CSV)
    parser.add_argument("--table", help="comma-separated build counts: print the Sizing table for them")
    args = parser.parse_args(argv)
    if args.table:
        args.table = [int(n) for n in args.table.split(",") if n.strip()]
    elif args.builds is None:
        parser.error("--builds is required (or --table)")
    if min(args.projects, args.backends, args.shards) < 1 or args.interval < 60 or not 0 < args.busiest_share <= 1:
        parser.error(
            "projects, backends and shards must be at least 1, the interval at least 60 s, the share in (0, 1]"
        )
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load = Load(
        builds=args.builds or 0,
        projects=args.projects,
        backends=args.backends,
        shards=args.shards,
        interval_seconds=args.interval,
        busiest_pair_share=args.busiest_share,
        build_minutes=args.build_minutes,
    )
    measured = inputs.unit_costs(args.bench_csv, args.probe_csv, args.fetch_seconds)
    pricing = report.Pricing(cost.Measured.from_csv(args.bench_csv), cost.function_memory_mib(), cost.sync_vcpu())
    deployment = inputs.deployment()
    if args.table:
        loads = [dataclasses.replace(load, builds=n) for n in args.table]
        print(report.sizing_table(loads, deployment, measured.costs, pricing))
    else:
        print(report.full_report(load, deployment, measured.costs, pricing))
    print("\nMeasured:\n" + "\n".join(f"- {line}" for line in measured.sources))
    print("Assumptions:\n" + "\n".join(f"- {line}" for line in inputs.ASSUMPTIONS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
