"""Publishing to Pub/Sub and waiting until every message is accepted."""

from __future__ import annotations

from typing import TYPE_CHECKING

from buildsync.errors import as_sync_error

if TYPE_CHECKING:  # the client is the caller's; the CLI never loads it
    from google.cloud import pubsub_v1

# Long enough for a publish of 1000 messages to the emulator or Pub/Sub.
PUBLISH_TIMEOUT_SECONDS = 60.0


def topic_path(project: str, topic: str) -> str:
    """`topic` as a full path; a full `projects/…/topics/…` path is kept as it is."""
    return topic if topic.startswith("projects/") else f"projects/{project}/topics/{topic}"


def publish_all(
    publisher: pubsub_v1.PublisherClient,
    topic: str,
    messages: list[tuple[bytes, dict[str, str]]],
) -> None:
    """Publishes (data, attributes) pairs; returns once all are accepted.

    Raises TransientError or PermanentError (errors.py decides) naming the topic
    when any publish fails; redelivery of the message that caused them is safe.
    """
    futures = [publisher.publish(topic, data, **attributes) for data, attributes in messages]
    try:
        for future in futures:
            future.result(timeout=PUBLISH_TIMEOUT_SECONDS)
    except Exception as error:  # sorted by the one table in errors.py
        raise as_sync_error(error, f"publishing {len(messages)} messages to {topic}") from error
