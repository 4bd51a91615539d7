"""`buildsync sync` and `buildsync status`, on the Datastore the environment names.

Builds a sync ends get the same completion effects as in the functions
(completion.py), sent where the same environment variables say
(BUILDSYNC_BUILDS_TOPIC, BUILDSYNC_BUILDS_TOPIC_COMPRESSION); a dry run lists
them instead.

Exit codes: 0 success (a lite-mode backend included), 1 a failure worth
retrying (Datastore or a backend unavailable, a batch failed), 2 bad input or
configuration. Every failure ends with one line on stderr naming its cause,
never a traceback.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import sys
from typing import TYPE_CHECKING

from buildsync import env, logs
from buildsync.errors import DatastoreUnavailable, PermanentError, SettingsError, SyncError, TransientError
from buildsync.stages.messages import SyncTrigger

if TYPE_CHECKING:  # imported lazily so that --help answers without loading the clients
    from google.cloud import datastore

    from buildsync.rules.settings import Settings
    from buildsync.stages.report import SyncReport

EXIT_OK, EXIT_RETRY, EXIT_BAD_INPUT = 0, 1, 2
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# How long the first Datastore request may retry before the CLI calls Datastore unavailable.
PROBE_SECONDS = 10.0


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line naming it, and exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _workers(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of 1 or more")
    return value


def _moment(text: str) -> datetime.datetime:
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time with a timezone")
    return moment


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--settings", help="SettingsCfg file (.json, .textproto, .cfg); default $BUILDSYNC_SETTINGS")
    common.add_argument("--log-level", choices=LOG_LEVELS, default="INFO", help="JSON log lines on stderr from")
    common.add_argument("--quiet", action="store_true", help="no log lines: only the result and a failure's cause")
    parser = _Parser(prog="buildsync", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sync = commands.add_parser("sync", parents=[common], help="sync the due builds now, as a trigger would")
    sync.add_argument("--backend", help="backend target, e.g. swarming://chromium-swarm (default: every full-mode one)")
    sync.add_argument("--project", help="LUCI project (default: every project with incomplete builds)")
    sync.add_argument(
        "--dry-run", action="store_true", help="report what would change and the effects it would have; do nothing"
    )
    sync.add_argument(
        "--workers", type=_workers, help="batches synced at once (default: the pipeline's, pipeline.DEFAULT_WORKERS)"
    )
    status = commands.add_parser("status", parents=[common], help="incomplete and due builds, and the sync's lag")
    status.add_argument("--backend", help="only this backend target")
    status.add_argument("--project", help="only this LUCI project")
    status.add_argument("--json", action="store_true", help='one JSON object: {"rows": [...], ...}')
    status.add_argument("--at", type=_moment, help="as of this ISO 8601 time (default: now)")
    return parser


def format_summary(report: SyncReport, dry_run: bool) -> str:
    counts = report.counts()
    width = max(map(len, counts))
    lines = [f"{'would ' if dry_run else ''}sync summary:"]
    lines += [f"  {name:<{width}}  {value}" for name, value in counts.items()]
    lines += [f"  error: {error}" for error in report.errors]
    if dry_run and report.planned_effects:
        lines.append("would complete:")
        for build_id, effects in sorted(report.planned_effects.items()):
            lines.append(f"  build {build_id}:")
            lines += [f"    {effect}" for effect in effects]
    return "\n".join(lines)


def open_datastore() -> datastore.Client:
    """A client for the Datastore of $GOOGLE_CLOUD_PROJECT; a missing project or credentials is a SettingsError."""
    import google.auth.exceptions
    from google.cloud import datastore

    project = env.text(env.PROJECT)
    if not project:
        raise SettingsError(
            "GOOGLE_CLOUD_PROJECT is not set: export it as the Google Cloud project whose Datastore holds "
            "the builds (and DATASTORE_EMULATOR_HOST=HOST:PORT to use the emulator)"
        )
    try:
        return datastore.Client(project=project)
    except google.auth.exceptions.DefaultCredentialsError:
        raise SettingsError(
            "no Google Cloud credentials: run `gcloud auth application-default login`, or set "
            "GOOGLE_APPLICATION_CREDENTIALS to a service account key file"
        ) from None


def datastore_host(client: datastore.Client) -> str:
    return client.base_url.split("://", 1)[-1]


def check_datastore(client: datastore.Client) -> None:
    """One small read, so that an outage or bad credentials is named as such before any work starts."""
    import google.auth.exceptions
    from google.api_core import exceptions as api_exceptions
    from google.api_core import retry as api_retry

    from buildsync.errors import is_transient

    host = datastore_host(client)
    probe = api_retry.Retry(initial=0.25, maximum=2.0, timeout=PROBE_SECONDS)
    try:
        client.get(client.key("Build", 1), retry=probe, timeout=PROBE_SECONDS)
    except (google.auth.exceptions.GoogleAuthError, api_exceptions.Unauthenticated) as error:
        raise SettingsError(f"the Google Cloud credentials do not work for Datastore at {host}: {error}") from None
    except api_exceptions.PermissionDenied as error:
        raise SettingsError(f"Datastore at {host} refuses these credentials: {error}") from None
    except Exception as error:
        if is_transient(error) or isinstance(error, OSError):
            raise DatastoreUnavailable(f"Datastore at {host} is unavailable: {_first_line(error)}") from None
        raise


def named_outage(client: datastore.Client) -> DatastoreUnavailable | None:
    """After a transient failure: the Datastore outage behind it, if that is what it was."""
    try:
        check_datastore(client)
    except DatastoreUnavailable as outage:
        return outage
    return None


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def run_sync(args: argparse.Namespace, settings: Settings, client: datastore.Client) -> int:
    from buildsync.edge import environment
    from buildsync.ending import resultdb
    from buildsync.ending.completion import Completer
    from buildsync.remote.backend import BackendPool
    from buildsync.stages.pipeline import DEFAULT_WORKERS, run_pipeline
    from buildsync.stages.status import pairs_with_incomplete_builds, projects_hint
    from buildsync.stages.sync import Syncer, SyncOptions

    if args.backend is not None and not settings.full_mode_backends(args.backend):
        print(f"backend {args.backend} is in lite mode: nothing to sync")
        return EXIT_OK
    targets = environment.completion_targets(project=env.required(env.PROJECT))
    completer = Completer(
        client, targets, resultdb.prpc_finalizer(settings.resultdb_hostname), make_publisher=_publisher
    )
    options = SyncOptions(
        dry_run=args.dry_run, transaction_begin=environment.transaction_begin(), dscache=environment.dscache()
    )
    backends = BackendPool(deadline_seconds=environment.fetch_deadline_seconds(), options=environment.backend_options())
    try:
        report = run_pipeline(
            Syncer(client, settings, backends, completer, options),
            SyncTrigger(args.backend, args.project),
            workers=args.workers or DEFAULT_WORKERS,
        )
    finally:
        backends.close()
    print(format_summary(report, args.dry_run))
    if args.project is not None and report.due == 0:
        hint = projects_hint(pairs_with_incomplete_builds(client), args.backend, args.project)
        if hint:
            print(hint)
    outage = named_outage(client) if report.errors and report.retry else None
    if outage is not None:
        raise outage
    if report.failed or report.errors:
        first = report.errors[0] if report.errors else "see the log lines above"
        print(f"buildsync: {report.failed} of {report.due} due builds failed: {first}", file=sys.stderr)
        return EXIT_RETRY
    return EXIT_OK


def run_status(args: argparse.Namespace, settings: Settings, client: datastore.Client) -> int:
    from buildsync.stages.status import collect_status, format_table, pairs_with_incomplete_builds, projects_hint

    if args.backend is not None:
        settings.backend(args.backend)  # an unknown backend is named with the known ones
    now = args.at or datetime.datetime.now(datetime.timezone.utc)
    status = collect_status(client, settings, now, backend=args.backend, project=args.project)
    print(json.dumps(status.to_json(), indent=2) if args.json else format_table(status))
    if not status.rows:
        hint = projects_hint(pairs_with_incomplete_builds(client), args.backend, args.project) if args.project else None
        where = f" on {args.backend}" if args.backend else ""
        print(hint or f"no incomplete builds{where}", file=sys.stderr if args.json else sys.stdout)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logs.configure(sys.stderr, level=logging.CRITICAL + 1 if args.quiet else logging.getLevelName(args.log_level))
    from buildsync.edge import environment
    from buildsync.rules.settings import load_settings

    client = None
    try:
        settings = load_settings(environment.settings_file(args.settings))
        client = open_datastore()
        check_datastore(client)
        return (run_sync if args.command == "sync" else run_status)(args, settings, client)
    except PermanentError as error:
        print(f"buildsync: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except SyncError as error:
        if isinstance(error, TransientError) and not isinstance(error, DatastoreUnavailable) and client is not None:
            error = named_outage(client) or error
        print(f"buildsync: {error}", file=sys.stderr)
        return EXIT_RETRY
    except KeyboardInterrupt:
        print("buildsync: interrupted", file=sys.stderr)
        return 130


def _publisher():
    """The Pub/Sub publisher, made only when a build has a notification to send."""
    from google.cloud import pubsub_v1

    return pubsub_v1.PublisherClient()


if __name__ == "__main__":
    sys.exit(main())
