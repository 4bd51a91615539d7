"""`buildsync sync`: one full sync from the command line, on the Datastore the environment names.

Builds it ends get the same completion effects as in the functions
(completion.py), sent where the same environment variables say
(BUILDSYNC_BUILDS_TOPIC, BUILDSYNC_BUILDS_TOPIC_COMPRESSION); a dry run lists
them instead.

Exit codes: 0 success (a lite-mode backend included), 1 a failure worth
retrying, 2 bad input or configuration.
"""

from __future__ import annotations

import argparse
import os
import sys

from buildsync import logs
from buildsync.errors import PermanentError, SyncError
from buildsync.messages import SyncTrigger
from buildsync.report import COUNTERS, SyncReport

EXIT_OK, EXIT_RETRY, EXIT_BAD_INPUT = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="buildsync", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    sync = commands.add_parser("sync", help="sync the due builds of one backend and project")
    sync.add_argument("--backend", required=True, help="backend target, e.g. swarming://chromium-swarm")
    sync.add_argument("--project", required=True, help="LUCI project whose builds to sync")
    sync.add_argument("--settings", help="SettingsCfg file (.json, .textproto, .cfg); default $BUILDSYNC_SETTINGS")
    sync.add_argument(
        "--dry-run", action="store_true", help="report what would change and the effects it would have; do nothing"
    )
    sync.add_argument("--workers", type=int, default=4, help="batches synced at once (default 4)")
    return parser


def format_summary(report: SyncReport, dry_run: bool) -> str:
    width = max(map(len, COUNTERS))
    lines = [f"{'would ' if dry_run else ''}sync summary:"]
    lines += [f"  {name:<{width}}  {value}" for name, value in report.counts().items()]
    lines += [f"  error: {error}" for error in report.errors]
    if dry_run and report.planned_effects:
        lines.append("would complete:")
        for build_id, effects in sorted(report.planned_effects.items()):
            lines.append(f"  build {build_id}:")
            lines += [f"    {effect}" for effect in effects]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logs.configure(sys.stderr)
    # Imported after parsing so that --help answers without loading the clients.
    from google.cloud import datastore

    from buildsync import resultdb
    from buildsync.backend import BackendPool
    from buildsync.backend_options import BACKEND_OPTIONS_ENV, parse_backend_options
    from buildsync.completion import Completer
    from buildsync.pipeline import run_pipeline
    from buildsync.runtime import completion_targets
    from buildsync.settings import load_settings
    from buildsync.transactions import transaction_begin_from_env

    backends = None
    try:
        backends = BackendPool(options=parse_backend_options(os.environ.get(BACKEND_OPTIONS_ENV)))
        settings = load_settings(args.settings)
        backend = settings.backend(args.backend)
        if backend.lite_mode:
            print(f"backend {args.backend} is in lite mode: nothing to sync")
            return EXIT_OK
        project = os.environ.get("GOOGLE_CLOUD_PROJECT")
        client = datastore.Client(project=project)
        completer = Completer(
            client, completion_targets(os.environ, project), resultdb.prpc_finalizer(), make_publisher=_publisher
        )
        transaction_begin = transaction_begin_from_env(os.environ)
        report = run_pipeline(
            client,
            settings,
            backends,
            SyncTrigger(args.backend, args.project),
            dry_run=args.dry_run,
            workers=args.workers,
            completer=completer,
            transaction_begin=transaction_begin,
        )
    except PermanentError as error:
        print(f"buildsync: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except SyncError as error:
        print(f"buildsync: {error}", file=sys.stderr)
        return EXIT_RETRY
    finally:
        if backends is not None:
            backends.close()
    print(format_summary(report, args.dry_run))
    return EXIT_RETRY if report.failed or report.errors else EXIT_OK


def _publisher():
    """The Pub/Sub publisher, made only when a build has a notification to send."""
    from google.cloud import pubsub_v1

    return pubsub_v1.PublisherClient()


if __name__ == "__main__":
    sys.exit(main())
