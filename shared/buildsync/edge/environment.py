"""What the environment configures, built from env.py's variables for the functions and the CLI alike.

env.py names every variable and reads it with the one policy; this module turns
those values into the objects their owners define (a deadline, the completion
targets, each backend's transport, how transactions begin). It sits at the edge
because it imports those owners; nothing below the edge reads the environment.
"""

from __future__ import annotations

import datetime
import os
import re

from buildsync import logs
from buildsync.ending.completion import Targets
from buildsync.ending.handoff import Handoff, Push
from buildsync.env import (
    BACKEND_OPTIONS,
    BUILDBUCKET_PUSH,
    BUILDBUCKET_PUSH_AS,
    BUILDBUCKET_QUEUES,
    BUILDS_TOPIC,
    BUILDS_TOPIC_COMPRESSION,
    CLOUD_TASKS_ENDPOINT,
    COMPLETION,
    DEFAULT_SHARD_TOPIC,
    DEFAULT_SYNC_TOPIC,
    DSCACHE_REDIS,
    FETCH_DEADLINE,
    PROJECT,
    SETTINGS,
    SHARD_TOPIC,
    SWEEP_MIN_AGE_SECONDS,
    SYNC_TOPIC,
    TRANSACTION_BEGIN,
    Environ,
    seconds,
    text,
)
from buildsync.errors import SettingsError
from buildsync.proto import notification_pb2 as npb
from buildsync.remote.backend import DEFAULT_DEADLINE_SECONDS
from buildsync.remote.backend_options import DeploymentOptions, parse_backend_options
from buildsync.remote.prpc import is_loopback_address
from buildsync.remote.publishing import topic_path
from buildsync.store.dscache import Cache
from buildsync.store.outbox import SWEEP_MIN_AGE
from buildsync.store.transactions import TransactionBegin, parse_transaction_begin


def settings_file(explicit: str | None = None, environ: Environ = os.environ) -> str:
    """The settings file: `explicit` (the CLI's --settings), else BUILDSYNC_SETTINGS; neither is a SettingsError."""
    path = explicit or text(SETTINGS, environ)
    if not path:
        raise SettingsError(f"no settings file: pass --settings or set {SETTINGS}")
    return path


def fetch_deadline_seconds(environ: Environ = os.environ) -> float:
    """The deadline of each FetchTasks call, for the functions and the CLI alike."""
    return seconds(FETCH_DEADLINE, DEFAULT_DEADLINE_SECONDS, environ, allow_zero=False)


def sweep_min_age(environ: Environ = os.environ) -> datetime.timedelta:
    """How long an outbox entry waits before the planner's sweep redoes it (outbox.py owns the default)."""
    return datetime.timedelta(seconds=seconds(SWEEP_MIN_AGE_SECONDS, SWEEP_MIN_AGE.total_seconds(), environ))


STANDALONE = "standalone"
BUILDBUCKET = "buildbucket"

_QUEUES = re.compile(r"^projects/[^/]+/locations/[^/]+$")
_PUSH_HOST = re.compile(r"^https://([A-Za-z0-9.-]+(:[0-9]+)?)$")


def stage_topics(project: str, environ: Environ = os.environ) -> tuple[str, str]:
    """The full paths of the shard and sync topics (BUILDSYNC_SHARD_TOPIC, BUILDSYNC_SYNC_TOPIC or their defaults)."""
    return (
        topic_path(project, text(SHARD_TOPIC, environ) or DEFAULT_SHARD_TOPIC),
        topic_path(project, text(SYNC_TOPIC, environ) or DEFAULT_SYNC_TOPIC),
    )


def completion_targets(environ: Environ = os.environ, project: str | None = None) -> Targets:
    """Who does an ended build's follow-up work, and where (BUILDSYNC_COMPLETION and the variables of its mode).

    `standalone` (the default): buildsync publishes to BUILDSYNC_BUILDS_TOPIC
    (unset: nowhere) with its compression, to the callback and the project's
    topics, and finalizes ResultDB. `buildbucket`: it hands all that to
    Buildbucket's task queues (`handoff`). The functions and the CLI both
    read them here, so both end builds alike.
    """
    mode = text(COMPLETION, environ) or STANDALONE
    if mode not in (STANDALONE, BUILDBUCKET):
        raise SettingsError(f"{COMPLETION}={mode!r}: expected {STANDALONE!r} or {BUILDBUCKET!r}")
    builds_topic = text(BUILDS_TOPIC, environ)
    if builds_topic and not project and not builds_topic.startswith("projects/"):
        raise SettingsError(f"{BUILDS_TOPIC}={builds_topic!r} needs {PROJECT} or a full path")
    name = (text(BUILDS_TOPIC_COMPRESSION, environ) or "ZLIB").upper()
    if name not in npb.Compression.keys():
        raise SettingsError(f"{BUILDS_TOPIC_COMPRESSION}={name!r}: expected one of {', '.join(npb.Compression.keys())}")
    if mode == BUILDBUCKET:
        if builds_topic:
            logs.event("INFO", f"{BUILDS_TOPIC} is unused in {BUILDBUCKET} completion mode: Buildbucket publishes")
        return Targets(handoff=handoff(environ))
    builds_path = topic_path(project or "", builds_topic) if builds_topic else None
    own = {builds_path, *(stage_topics(project, environ) if project else ())} - {None}
    return Targets(
        builds_topic=builds_path,
        builds_compression=npb.Compression.Value(name),
        own_topics=frozenset(own),
    )


def handoff(environ: Environ = os.environ) -> Handoff:
    """Where Buildbucket's queues are and how their tasks reach it (the variables of buildbucket mode)."""
    queues = text(BUILDBUCKET_QUEUES, environ)
    if queues is None or not _QUEUES.match(queues):
        raise SettingsError(
            f"{BUILDBUCKET_QUEUES}={queues!r}: expected projects/<project>/locations/<location>, "
            f"the parent of Buildbucket's queues ({COMPLETION}={BUILDBUCKET})"
        )
    push_text = text(BUILDBUCKET_PUSH, environ) or "appengine"
    push = Push()
    if push_text != "appengine":
        host = _PUSH_HOST.match(push_text)
        if host is None:
            raise SettingsError(f"{BUILDBUCKET_PUSH}={push_text!r}: expected 'appengine' or https://<host>")
        account = text(BUILDBUCKET_PUSH_AS, environ)
        if account is None or "@" not in account:
            raise SettingsError(
                f"{BUILDBUCKET_PUSH_AS}={account!r}: {BUILDBUCKET_PUSH}={push_text} needs the service account "
                "whose OIDC token the tasks carry"
            )
        push = Push(host=host.group(1), service_account=account)
    endpoint = text(CLOUD_TASKS_ENDPOINT, environ)
    if endpoint is not None and not is_loopback_address(endpoint):
        raise SettingsError(
            f"{CLOUD_TASKS_ENDPOINT}={endpoint!r}: expected a loopback host:port (plaintext, no credentials)"
        )
    return Handoff(queues=queues, push=push, endpoint=endpoint)


def dscache(environ: Environ = os.environ) -> Cache | None:
    """BUILDSYNC_DSCACHE_REDIS: host:port of Buildbucket's Redis, whose dscache keys our writes keep true."""
    address = text(DSCACHE_REDIS, environ)
    if address is None:
        return None
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SettingsError(f"{DSCACHE_REDIS}={address!r}: expected host:port of Buildbucket's Redis")
    return Cache.at(address)


def backend_options(environ: Environ = os.environ) -> DeploymentOptions:
    """BUILDSYNC_BACKEND_OPTIONS: each backend's transport and identity (backend_options.py owns the format)."""
    return parse_backend_options(text(BACKEND_OPTIONS, environ), BACKEND_OPTIONS)


def transaction_begin(environ: Environ = os.environ) -> TransactionBegin:
    """BUILDSYNC_TRANSACTION_BEGIN: how transactions begin (transactions.py owns the choices)."""
    return parse_transaction_begin(text(TRANSACTION_BEGIN, environ), TRANSACTION_BEGIN)
