"""Publishing Buildbucket's notifications of ended builds: the builds topic and callbacks.

Three effects of the outbox (outbox.py): `BuildsV2PubSub` to the deployment's
builds topic, compressed as that topic is configured, the same to each of the
project's builds_notification_topics, and `PubSubCallBack` to
the build's own `pubsub_callback.topic`, always ZLIB (as upstream). Each
message succeeds or fails alone, so one bad callback topic never holds back
the others.
"""

from __future__ import annotations

import collections
import dataclasses
import re
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from typing import TYPE_CHECKING

from buildsync.ending import notification_format
from buildsync.errors import as_sync_error
from buildsync.proto import buildbucket_pb2 as pb
from buildsync.proto import notification_pb2 as npb
from buildsync.proto import project_config_pb2 as cpb
from buildsync.remote.publishing import PUBLISH_TIMEOUT_SECONDS
from buildsync.store.model import EntityDecodeError
from buildsync.store.outbox import Effect

if TYPE_CHECKING:  # the client is the caller's
    from google.cloud import pubsub_v1

    from buildsync.ending.build_reader import StoredBuild

# Messages published whose acceptance is not yet awaited hold at most this many
# bytes: a sweep of 1000 builds, two messages of up to 10 MB each, never holds
# them all (a few of Pub/Sub's largest messages at once).
MAX_PENDING_BYTES = 32 * 1000 * 1000

# A full topic name as Pub/Sub accepts one: a project id (domain-scoped ones
# have a colon), then a topic id of 3 to 255 characters that starts with a
# letter. Matched whole (fullmatch), so no trailing newline slips through.
_TOPIC_NAME = re.compile(r"projects/[a-z0-9.:-]{1,100}/topics/[A-Za-z][A-Za-z0-9._~+%-]{2,254}", re.ASCII)


@dataclasses.dataclass(frozen=True)
class Outgoing:
    """One notification to publish, and the effect it fulfils."""

    build_id: int
    effect: Effect
    topic: str
    data: bytes
    attributes: dict[str, str]


def messages_for(
    stored: StoredBuild,
    build: pb.Build,
    effects: frozenset[Effect],
    builds_topic: str | None,
    builds_compression: int = npb.ZLIB,
    project_topics: tuple[cpb.BuildbucketCfg.Topic, ...] = (),
) -> list[Outgoing]:
    """The notifications `build` (read whole after the commit) still needs.

    `project_topics` are the build's project's builds_notification_topics,
    each with its own compression, as Buildbucket's handler publishes them.
    The caller has left out the topics `topic_problem` refuses.
    """
    outgoing = []
    attributes = notification_format.attributes(build)
    if Effect.BUILDS_TOPIC in effects and builds_topic:
        message = notification_format.builds_v2_pubsub(build, builds_compression)
        data = notification_format.to_pubsub_data(message)
        outgoing.append(Outgoing(stored.build_id, Effect.BUILDS_TOPIC, builds_topic, data, attributes))
    for topic in project_topics if Effect.PROJECT_TOPICS in effects else ():
        message = notification_format.builds_v2_pubsub(build, topic.compression)
        data = notification_format.to_pubsub_data(message)
        outgoing.append(Outgoing(stored.build_id, Effect.PROJECT_TOPICS, topic.name, data, attributes))
    if Effect.CALLBACK in effects and stored.callback_topic:
        notification = notification_format.builds_v2_pubsub(build, npb.ZLIB)
        message = notification_format.callback_message(notification, stored.callback_user_data)
        data = notification_format.to_pubsub_data(message)
        outgoing.append(Outgoing(stored.build_id, Effect.CALLBACK, stored.callback_topic, data, attributes))
    return outgoing


def topic_problem(topic: str, own_topics: frozenset[str]) -> str | None:
    """Why a topic a stored build or project names is never published to, or None.

    It must be a full topic name, and not one of `own_topics`, buildsync's
    own: a build naming the builds topic would put a PubSubCallBack where
    subscribers expect BuildsV2PubSub, and one naming the shard topic would
    have the planner's account publish into its own pipeline.
    """
    if not _TOPIC_NAME.fullmatch(topic):
        return f"topic {topic!r} is not of the form projects/<project>/topics/<topic>"
    if topic in own_topics:
        return f"topic {topic!r} is one of buildsync's own topics, never a build's or a project's"
    return None


def callback_topic_problem(stored: StoredBuild, own_topics: frozenset[str]) -> str | None:
    """Why the build's callback is never published, or None: its topic, or its topic or user data stored as
    another type than luci/gae loads."""
    try:
        topic, _ = stored.callback_topic, stored.callback_user_data
    except EntityDecodeError as error:
        return str(error)
    problem = topic_problem(topic, own_topics) if topic else None
    return f"build {stored.build_id}: pubsub_callback.{problem}" if problem else None


def publish_each(
    publisher: pubsub_v1.PublisherClient, outgoing: Iterable[Outgoing]
) -> Iterator[tuple[Outgoing, Exception | None]]:
    """Publishes every message as `outgoing` makes it; yields each with None when accepted, else its error.

    Results come in order. While more than MAX_PENDING_BYTES (read at each
    call) await their acceptance, the oldest is awaited before the next
    message is taken, so memory holds a bounded window, not every message. The errors are
    TransientError or PermanentError as errors.py sorts them, or an error in
    neither table (a bug) as it is.
    """
    limit = MAX_PENDING_BYTES
    pending: collections.deque[tuple[Outgoing, Future | Exception]] = collections.deque()
    pending_bytes = 0
    for message in outgoing:
        try:
            pending.append((message, publisher.publish(message.topic, message.data, **message.attributes)))
        except Exception as error:  # refused before sending (an attribute Pub/Sub cannot carry)
            pending.append((message, error))
        pending_bytes += len(message.data)
        while pending_bytes > limit:
            oldest, future = pending.popleft()
            pending_bytes -= len(oldest.data)
            yield oldest, _accepted(oldest, future)
    while pending:
        oldest, future = pending.popleft()
        yield oldest, _accepted(oldest, future)


def _accepted(message: Outgoing, future: Future | Exception) -> Exception | None:
    """None once Pub/Sub accepted `message`, else its error sorted by the one table in errors.py."""
    error = future if isinstance(future, Exception) else None
    if error is None:
        try:
            future.result(timeout=PUBLISH_TIMEOUT_SECONDS)
            return None
        except Exception as failed:  # sorted below
            error = failed
    return as_sync_error(error, f"publishing build {message.build_id} to {message.topic}")
