"""A build read back after its transaction, whole, the way Buildbucket's API returns it.

The completion effects need more than Build.proto: Buildbucket keeps the
build's infra, input and output properties and steps in child entities
(docs/storage.md "Children of a Build"), and its API answer joins them and
hides some tags. `read_builds` does the reads for a batch in few lookups;
`api_build` (pure) joins what was read.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from google.cloud import datastore
from google.protobuf import struct_pb2

from buildsync import wire
from buildsync.ending import compression
from buildsync.errors import as_sync_error
from buildsync.proto import buildbucket_pb2 as pb
from buildsync.proto import notification_pb2 as npb
from buildsync.rules.steps import StepsFormatError
from buildsync.store import model

INPUT_PROPERTIES_KIND = "BuildInputProperties"
OUTPUT_PROPERTIES_KIND = "BuildOutputProperties"
PROPERTY_CHUNK_KIND = "PropertyChunk"

# Buildbucket cuts chunked output properties into chunks of this many zstd bytes
# (model/details.go maxPropertySize). zstd never inflates data to less than
# about its own size, so a count past this one would inflate past what is ever
# inflated (wire.MAX_INFLATED_BYTES): such a count fails the build's read
# without reading a chunk, where reading it would take a lookup per 1000.
PROPERTY_CHUNK_BYTES = 1_000_000
MAX_PROPERTY_CHUNKS = wire.MAX_INFLATED_BYTES // PROPERTY_CHUNK_BYTES + 1

# Tags Buildbucket keeps on the entity for its own queries but leaves out of API answers.
HIDDEN_TAG_KEYS = frozenset({"build_address", "builder", "gitiles_ref"})

# Buildbucket cuts a merged summary to this many bytes (protoutil).
SUMMARY_MARKDOWN_MAX_LENGTH = 4000


@dataclasses.dataclass(frozen=True)
class StoredBuild:
    """A Build entity and its children, as read; None where an entity is absent."""

    entity: datastore.Entity
    infra: datastore.Entity | None = None
    input_properties: datastore.Entity | None = None
    output_properties: datastore.Entity | None = None
    output_chunks: tuple[bytes, ...] = ()
    steps: datastore.Entity | None = None

    @property
    def build_id(self) -> int:
        return model.build_id_of(self.entity.key)

    @property
    def project(self) -> str:
        return self._text(model.PROJECT)

    @property
    def has_callback(self) -> bool:
        """Whether the build asked for a callback: decided in its ending transaction, whatever the value's type."""
        return bool(self.entity.get(model.CALLBACK_TOPIC))

    @property
    def callback_topic(self) -> str:
        return self._text(model.CALLBACK_TOPIC)

    @property
    def callback_user_data(self) -> bytes:
        return self._stored(model.CALLBACK_USER_DATA, bytes, b"")

    @property
    def stage_attempt_token(self) -> str:
        """Set when TurboCI runs the build as a stage attempt, which must be ended too."""
        return self._text("stage_attempt_token")

    @property
    def has_stage_attempt(self) -> bool:
        return bool(self.entity.get("stage_attempt_token"))

    @property
    def resultdb_update_token(self) -> str:
        return self._text("resultdb_update_token")

    def _text(self, name: str) -> str:
        return self._stored(name, str, "")

    def _stored(self, name: str, expected: type, empty: object) -> Any:
        """Property `name` as luci/gae loads it into its Go field: absent or null is `empty`, another type does not
        load; raises model.EntityDecodeError, so that only what needs the property is given up."""
        value = self.entity.get(name)
        if value is None:
            return empty
        if not isinstance(value, expected):
            raise model.EntityDecodeError(
                f"build {self.build_id}: Build property {name!r} is a {type(value).__name__}, not {expected.__name__}"
            )
        return value

    def build_proto(self) -> pb.Build:
        """Build.proto alone, as stored; raises model.EntityDecodeError."""
        return _decode(pb.Build, self.entity.get("proto") or b"", self.build_id, "Build.proto")

    def build_infra(self) -> pb.BuildInfra:
        """BuildInfra's proto (empty when the entity is absent); raises model.EntityDecodeError."""
        if self.infra is None:
            return pb.BuildInfra()
        return _decode(pb.BuildInfra, self.infra.get("infra") or b"", self.build_id, "BuildInfra")


def _lookup(client: datastore.Client, keys: list[datastore.Key]) -> dict[tuple, datastore.Entity]:
    try:
        return model.lookup(client, keys)
    except Exception as error:  # sorted by the one table in errors.py
        raise as_sync_error(error, f"reading {len(keys)} build entities after commit") from error


def read_builds(client: datastore.Client, build_ids: list[int]) -> dict[int, StoredBuild]:
    """The builds of `build_ids` with their child entities; a missing Build is left out.

    Raises TransientError or PermanentError (errors.py) when Datastore fails.
    """
    kinds = (model.BUILD_INFRA_KIND, INPUT_PROPERTIES_KIND, OUTPUT_PROPERTIES_KIND, model.BUILD_STEPS_KIND)
    keys = []
    for build_id in build_ids:
        keys.append(model.build_key(client, build_id))
        keys += [model.child_key(client, build_id, kind) for kind in kinds]
    found = _lookup(client, keys)
    chunk_keys = []
    for build_id in build_ids:
        output = found.get(model.child_key(client, build_id, OUTPUT_PROPERTIES_KIND).flat_path)
        for index in range(1, _chunk_count(output) + 1):
            chunk_keys.append(client.key(PROPERTY_CHUNK_KIND, index, parent=output.key))
    chunks = _lookup(client, chunk_keys) if chunk_keys else {}
    builds = {}
    for build_id in build_ids:
        entity = found.get(model.build_key(client, build_id).flat_path)
        if entity is None:
            continue
        children = {kind: found.get(model.child_key(client, build_id, kind).flat_path) for kind in kinds}
        output = children[OUTPUT_PROPERTIES_KIND]
        output_chunks = tuple(
            (chunks.get(client.key(PROPERTY_CHUNK_KIND, i, parent=output.key).flat_path) or {}).get("chunk") or b""
            for i in range(1, _chunk_count(output) + 1)
        )
        builds[build_id] = StoredBuild(
            entity=entity,
            infra=children[model.BUILD_INFRA_KIND],
            input_properties=children[INPUT_PROPERTIES_KIND],
            output_properties=output,
            output_chunks=output_chunks,
            steps=children[model.BUILD_STEPS_KIND],
        )
    return builds


def _chunk_count(output: datastore.Entity | None) -> int:
    """The chunks to read: none for a count that is not a number of chunks (_output_properties then says so)."""
    return (_stored_chunk_count(output) or 0) if output is not None else 0


def _stored_chunk_count(output: datastore.Entity) -> int | None:
    """`chunk_count` as Go reads it (absent or below 1: no chunks), or None when it is no count up to the cap."""
    count = output.get("chunk_count") or 0
    if not isinstance(count, int) or isinstance(count, bool) or count > MAX_PROPERTY_CHUNKS:
        return None
    return max(count, 0)


def api_build(stored: StoredBuild) -> pb.Build:
    """The build as Buildbucket's GetBuild answers it with every field asked for.

    Raises model.EntityDecodeError naming the entity that does not decode.
    """
    build_id = stored.build_id
    build = stored.build_proto()
    del build.tags[:]
    for tag in model.listed(stored.entity, "tags"):
        if not isinstance(tag, str):
            raise model.EntityDecodeError(f"build {build_id}: a tag is a {type(tag).__name__}, not a string")
        key, _, value = tag.partition(":")
        if key not in HIDDEN_TAG_KEYS:
            build.tags.add(key=key, value=value)
    build.ClearField("infra")
    if stored.infra is not None:
        build.infra.CopyFrom(stored.build_infra())
    build.input.SetInParent()
    build.input.ClearField("properties")
    if stored.input_properties is not None:
        properties = stored.input_properties.get("properties") or b""
        build.input.properties.CopyFrom(_decode(struct_pb2.Struct, properties, build_id, INPUT_PROPERTIES_KIND))
    build.output.SetInParent()
    build.output.ClearField("properties")
    output = _output_properties(stored)
    if output is not None:
        build.output.properties.CopyFrom(output)
    del build.steps[:]
    build.steps.extend(_steps(stored))
    build.summary_markdown = merged_summary(build)
    return build


def _output_properties(stored: StoredBuild) -> struct_pb2.Struct | None:
    entity = stored.output_properties
    if entity is None:
        return None
    if _stored_chunk_count(entity) is None:
        raise model.EntityDecodeError(
            f"build {stored.build_id}: {OUTPUT_PROPERTIES_KIND} chunk_count {entity.get('chunk_count')!r} is not "
            f"a number of chunks up to {MAX_PROPERTY_CHUNKS}"
        )
    if not stored.output_chunks:
        return _decode(struct_pb2.Struct, entity.get("properties") or b"", stored.build_id, OUTPUT_PROPERTIES_KIND)
    if not all(isinstance(chunk, bytes) and chunk for chunk in stored.output_chunks):
        raise model.EntityDecodeError(
            f"build {stored.build_id}: a {PROPERTY_CHUNK_KIND} of its output properties is missing or not bytes"
        )
    try:
        data = compression.decompress(b"".join(stored.output_chunks), npb.ZSTD)
    except ValueError as error:
        raise model.EntityDecodeError(f"build {stored.build_id}: chunked output properties: {error}") from error
    return _decode(struct_pb2.Struct, data, stored.build_id, f"chunked {OUTPUT_PROPERTIES_KIND}")


def _steps(stored: StoredBuild) -> list[pb.Step]:
    if stored.steps is None:
        return []
    try:
        return list(model.read_steps(stored.steps).steps)
    except StepsFormatError as error:
        raise model.EntityDecodeError(f"build {stored.build_id}: {model.BUILD_STEPS_KIND}: {error}") from error


def merged_summary(build: pb.Build) -> str:
    """The build's summary with the output's, the task's and the cancellation's appended (protoutil)."""
    parts = [build.summary_markdown] if build.summary_markdown.strip() else []
    others = (
        build.output.summary_markdown,
        build.infra.backend.task.summary_markdown,
        build.cancellation_markdown,
    )
    for text in others:
        if text.strip() and text.strip() not in build.summary_markdown:
            parts.append(text)
    summary = "\n".join(parts).encode()
    if len(summary) > SUMMARY_MARKDOWN_MAX_LENGTH:
        # Cut in bytes, as upstream does, without leaving half a character.
        return summary[: SUMMARY_MARKDOWN_MAX_LENGTH - 3].decode(errors="ignore") + "..."
    return summary.decode()


def _decode(message_type, data: bytes, build_id: int, what: str):
    return model.decode_proto(message_type, data, f"build {build_id}: {what} does not decode")
