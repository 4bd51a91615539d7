"""Child entities and Build properties written as Buildbucket's Go model writes them.

For the completion tests: input and output properties (plain, or zstd chunks
of at most 1,000,000 bytes), BuildSteps (plain or zlib), tags, the
`pubsub_callback.*` struct flattened with dots, the ResultDB update token and
the invocation in BuildInfra; and the custom metrics a build was created with
(`custome_metrics.*`, luci/gae's proto format). Independent of build_reader.py on purpose: the
tests prove the reader against this writer.
"""

from __future__ import annotations

import zlib

import zstandard
from buildsync.proto import buildbucket_pb2 as pb
from buildsync.proto import project_config_pb2 as cpb
from buildsync.store import model
from google.cloud import datastore
from google.protobuf import struct_pb2

# Buildbucket's PropertyChunk limit.
CHUNK_BYTES = 1_000_000

# The byte luci/gae writes before a stored proto: as is, or zstd-compressed.
GAE_PROTO_PLAIN, GAE_PROTO_ZSTD = 0x0C, 0x14


def struct(values: dict) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(values)
    return message


def _child(client: datastore.Client, build_id: int, kind: str, **properties) -> datastore.Entity:
    entity = datastore.Entity(client.key("Build", build_id, kind, 1), exclude_from_indexes=tuple(properties))
    entity.update(properties)
    return entity


def put_input_properties(client: datastore.Client, build_id: int, values: dict) -> None:
    client.put(_child(client, build_id, "BuildInputProperties", properties=struct(values).SerializeToString()))


def put_output_properties(client: datastore.Client, build_id: int, values: dict, chunked: bool = False) -> int:
    """Writes the output properties; returns how many PropertyChunk entities (0 when plain)."""
    data = struct(values).SerializeToString()
    if not chunked:  # BuildOutputProperties.Put: chunk_count is saved as 0, not left out
        client.put(_child(client, build_id, "BuildOutputProperties", properties=data, chunk_count=0))
        return 0
    packed = zstandard.ZstdCompressor(write_content_size=False).compress(data)
    pieces = [packed[i : i + CHUNK_BYTES] for i in range(0, len(packed), CHUNK_BYTES)]
    parent = _child(client, build_id, "BuildOutputProperties", chunk_count=len(pieces))
    chunks = []
    for index, piece in enumerate(pieces, start=1):
        chunk = datastore.Entity(client.key("PropertyChunk", index, parent=parent.key), exclude_from_indexes=("chunk",))
        chunk["chunk"] = piece
        chunks.append(chunk)
    client.put_multi([parent, *chunks])
    return len(pieces)


def put_steps(client: datastore.Client, build_id: int, steps: list[pb.Step], zipped: bool = False) -> None:
    data = pb.Build(steps=steps).SerializeToString()
    if zipped:
        data = zlib.compress(data)
    client.put(_child(client, build_id, "BuildSteps", steps=data, step_container_bytes_zipped=zipped))


def set_build_properties(
    client: datastore.Client,
    build_id: int,
    *,
    tags: list[str] = (),
    callback_topic: str = "",
    user_data: bytes = b"",
    update_token: str = "",
    summary: str = "",
) -> None:
    """Adds what Buildbucket's ScheduleBuild stores on the Build entity itself."""
    entity = client.get(model.build_key(client, build_id))
    entity["resultdb_update_token"] = update_token
    if tags:  # luci/gae stores no property for an empty slice
        entity["tags"] = list(tags)
    entity.exclude_from_indexes.update({"resultdb_update_token", "pubsub_callback.user_data"})
    if callback_topic:
        entity.update(
            {
                "pubsub_callback.topic": callback_topic,
                "pubsub_callback.user_data": user_data,
                "pubsub_callback.auth_token": "",
            }
        )
        entity.exclude_from_indexes.update({"pubsub_callback.topic", "pubsub_callback.auth_token"})
    build = model.read_build(entity)
    build.summary_markdown = summary
    build.tags.add(key="stale", value="tag in the proto, replaced by the entity's")
    entity["proto"] = build.SerializeToString()
    client.put(entity)


def set_invocation(client: datastore.Client, build_id: int, host: str, invocation: str) -> None:
    entity = client.get(model.infra_key(client, build_id))
    infra = model.read_infra(entity)
    infra.resultdb.hostname, infra.resultdb.invocation = host, invocation
    model.write_infra(entity, infra)
    client.put(entity)


def gae_proto(message, compressed: bool = False) -> bytes:
    """A proto property as luci/gae stores it (it compresses above 16 KiB)."""
    data = message.SerializeToString()
    if compressed:
        return bytes([GAE_PROTO_ZSTD]) + zstandard.ZstdCompressor(write_content_size=False).compress(data)
    return bytes([GAE_PROTO_PLAIN]) + data


def set_custom_metrics(
    client: datastore.Client,
    build_id: int,
    metrics: list[tuple[int, cpb.CustomMetricDefinition]],
    compressed: bool = False,
) -> None:
    """Adds the custom metrics ScheduleBuild copies from the builder: a slice of structs, flattened."""
    entity = client.get(model.build_key(client, build_id))
    entity["custome_metrics.base"] = [base for base, _ in metrics]
    entity["custome_metrics.metric"] = [gae_proto(definition, compressed) for _, definition in metrics]
    entity.exclude_from_indexes.update({"custome_metrics.base", "custome_metrics.metric"})
    client.put(entity)


def set_stage_attempt_token(client: datastore.Client, build_id: int, token: str) -> None:
    """What Buildbucket stores on a build TurboCI runs as a stage attempt."""
    entity = client.get(model.build_key(client, build_id))
    entity["stage_attempt_token"] = token
    entity.exclude_from_indexes.add("stage_attempt_token")
    client.put(entity)


def put_builder(client: datastore.Client, builder: pb.BuilderID, max_concurrent_builds: int) -> None:
    """A Bucket.Builder entity, its config stored as gae's `legacy` proto: the bare serialized message."""
    key = client.key("Project", builder.project, "BucketV2", builder.bucket, "Bucket.Builder", builder.builder)
    entity = datastore.Entity(key, exclude_from_indexes=("config",))
    config = cpb.BuilderConfig(max_concurrent_builds=max_concurrent_builds).SerializeToString()
    entity.update({"config": config, "config_hash": "hash"})
    client.put(entity)


def put_project(client: datastore.Client, project: str, topics: list[tuple[str, int]], *, zstd: bool = False) -> None:
    """A Project entity whose common_config names `topics` (name, compression), in gae's modern proto format."""
    config = cpb.BuildbucketCfg.CommonConfig()
    for name, compression in topics:
        config.builds_notification_topics.add(name=name, compression=compression)
    entity = datastore.Entity(client.key("Project", project), exclude_from_indexes=("common_config",))
    entity["common_config"] = gae_proto(config, compressed=zstd)
    client.put(entity)
