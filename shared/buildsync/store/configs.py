"""Buildbucket's config entities that ending a build reads: a builder's and a project's.

Buildbucket copies each project's config into Datastore: the `Project` entity
holds the settings shared by the project (`common_config`, with the topics
every build of the project is announced on), and each `Bucket.Builder` entity
a builder's config (`config`, which says whether the builder limits its
running builds). docs/storage.md "Entities buildsync reads for the hand-off"
gives their keys and encodings. Both are only read.
"""

from __future__ import annotations

import concurrent.futures

from google.cloud import datastore
from google.protobuf.message import DecodeError

from buildsync import logs, wire
from buildsync.proto import buildbucket_pb2 as pb
from buildsync.proto import project_config_pb2 as cpb
from buildsync.store import model

PROJECT_KIND = "Project"
BUCKET_KIND = "BucketV2"
BUILDER_KIND = "Bucket.Builder"

# The first byte of a proto stored in gae's modern format says how the rest is
# encoded: (1 << 3) | 4 plain, (2 << 3) | 4 zstd-compressed.
_PLAIN_PROTO = 0x0C
_ZSTD_PROTO = 0x14


def project_key(client: datastore.Client, project: str) -> model.Key:
    return model.key(client, PROJECT_KIND, project)


def builder_key(client: datastore.Client, builder: pb.BuilderID) -> model.Key:
    return model.key(client, PROJECT_KIND, builder.project, BUCKET_KIND, builder.bucket, BUILDER_KIND, builder.builder)


def read_outside_transaction(client: datastore.Client, keys: list[datastore.Key]) -> dict[tuple, datastore.Entity]:
    """model.lookup of `keys`, outside any transaction the calling thread is in.

    The client keeps its current transaction per thread, so a lookup made on
    another thread reads committed data and takes no lock: a busy builder's
    entity is not locked by every transaction that ends one of its builds.
    """
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as reader:
        return reader.submit(model.lookup, client, keys).result()


def max_concurrent_builds(entity: datastore.Entity | None) -> int:
    """The builder's max_concurrent_builds (0: no limit), from its entity; a missing builder has none.

    A config that does not decode is logged and read as no limit: the ended
    build then frees no slot at once, and Buildbucket's own scan of pending
    builds starts the next one later.
    """
    if entity is None:
        return 0
    try:
        return wire.decode(cpb.BuilderConfig, _blob(entity, "config")).max_concurrent_builds
    except DecodeError as error:
        logs.event("ERROR", "builder config does not decode", key=str(entity.key.flat_path), error=str(error))
        return 0


def notification_topics(entity: datastore.Entity | None) -> list[cpb.BuildbucketCfg.Topic]:
    """The named topics of the project's builds_notification_topics; a missing project has none.

    Raises model.EntityDecodeError when common_config does not decode.
    """
    if entity is None or not entity.get("common_config"):
        return []
    try:
        blob = _blob(entity, "common_config")
        if blob[0] == _PLAIN_PROTO:
            blob = blob[1:]
        elif blob[0] == _ZSTD_PROTO:
            blob = wire.inflate_zstd(blob[1:])
        else:
            raise DecodeError(f"unknown format byte {blob[0]:#x}")
        config = wire.decode(cpb.BuildbucketCfg.CommonConfig, blob)
    except DecodeError as error:
        raise model.EntityDecodeError(f"project {entity.key.name}: common_config does not decode: {error}") from error
    return [topic for topic in config.builds_notification_topics if topic.name]


def _blob(entity: datastore.Entity, name: str) -> bytes:
    """A stored proto's bytes; held as another type, it does not decode (DecodeError) rather than fail its reader."""
    value = entity.get(name) or b""
    if not isinstance(value, bytes):
        raise DecodeError(f"{name} is stored as a {type(value).__name__}, not bytes")
    return value
