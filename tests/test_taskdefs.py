"""Our declarations of Buildbucket's task payloads and project config match upstream's, field by field.

Upstream's .proto files are read from BUILDSYNC_UPSTREAM_PROTO_DIR, or from
the shared/upstream-protos folder beside the repository (CI has it); they are
compiled with grpc_tools' protoc into descriptors and compared with ours.
The JSON envelope of a Cloud Task names the payload's type by its full name,
so the package and message names must match too.
"""

from __future__ import annotations

import os
import pathlib

import grpc_tools
import pytest
from buildsync.proto import project_config_pb2, taskdefs_pb2
from google.protobuf import descriptor_pb2
from grpc_tools import protoc

REPO = pathlib.Path(__file__).resolve().parent.parent
TASKS_PROTO = "go.chromium.org/luci/buildbucket/appengine/tasks/defs/tasks.proto"


def upstream_dir() -> pathlib.Path:
    configured = os.environ.get("BUILDSYNC_UPSTREAM_PROTO_DIR")
    folder = pathlib.Path(configured) if configured else REPO.parent / "shared" / "upstream-protos"
    if not (folder / TASKS_PROTO).is_file():
        pytest.skip(f"LOUD SKIP: upstream's protos are not at {folder}; set BUILDSYNC_UPSTREAM_PROTO_DIR")
    return folder


@pytest.fixture(scope="module")
def upstream(tmp_path_factory) -> dict[str, descriptor_pb2.DescriptorProto]:
    """Every message upstream's tasks.proto reaches, by full name."""
    out = tmp_path_factory.mktemp("upstream") / "set.pb"
    includes = [upstream_dir(), pathlib.Path(grpc_tools.__file__).parent / "_proto"]
    args = ["protoc", *(f"-I{path}" for path in includes), "--include_imports", f"--descriptor_set_out={out}"]
    assert protoc.main([*args, TASKS_PROTO]) == 0
    files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    return {name: message for file in files.file for name, message in _messages(file.package, file.message_type)}


def _messages(prefix: str, messages) -> list[tuple[str, descriptor_pb2.DescriptorProto]]:
    found = []
    for message in messages:
        name = f"{prefix}.{message.name}"
        found.append((name, message))
        found += _messages(name, message.nested_type)
    return found


def ours(module) -> dict[str, descriptor_pb2.DescriptorProto]:
    """Our messages as descriptors, with the JSON names the runtime uses (CopyToProto leaves them out)."""
    file = descriptor_pb2.FileDescriptorProto()
    module.DESCRIPTOR.CopyToProto(file)
    messages = dict(_messages(file.package, file.message_type))
    pool = module.DESCRIPTOR.pool
    for name, message in messages.items():
        runtime = pool.FindMessageTypeByName(name)
        for field in message.field:
            field.json_name = runtime.fields_by_number[field.number].json_name
    return messages


def field_mismatches(name: str, mine: descriptor_pb2.DescriptorProto, theirs: descriptor_pb2.DescriptorProto):
    """Every field of `mine` that upstream declares differently or not at all."""
    upstream_fields = {field.number: field for field in theirs.field}
    problems = []
    for field in mine.field:
        other = upstream_fields.get(field.number)
        if other is None:
            problems.append(f"{name}.{field.name} = {field.number}: upstream has no field {field.number}")
            continue
        for attribute in ("name", "type", "label", "type_name", "json_name", "proto3_optional"):
            if getattr(field, attribute) != getattr(other, attribute):
                mine_value, theirs_value = getattr(field, attribute), getattr(other, attribute)
                problems.append(f"{name}.{field.name}: {attribute} {mine_value!r}, upstream {theirs_value!r}")
    mine_reserved = sorted((r.start, r.end) for r in mine.reserved_range)
    if mine_reserved and mine_reserved != sorted((r.start, r.end) for r in theirs.reserved_range):
        problems.append(f"{name}: reserved ranges {mine_reserved} differ from upstream's")
    return problems


def test_every_task_payload_is_declared_exactly_as_upstream(upstream):
    mine = ours(taskdefs_pb2)
    theirs = {name: message for name, message in upstream.items() if name.startswith("taskdefs.")}
    assert sorted(mine) == sorted(theirs)
    problems = []
    for name, message in mine.items():
        problems += field_mismatches(name, message, theirs[name])
        mine_numbers = sorted(field.number for field in message.field)
        if mine_numbers != sorted(field.number for field in theirs[name].field):
            problems.append(f"{name}: fields {mine_numbers}, upstream's differ")
    print("\n".join(problems) or "taskdefs: no mismatch")
    assert problems == []


def test_the_project_config_fields_we_read_are_upstreams(upstream):
    problems = []
    for name, message in ours(project_config_pb2).items():
        assert name in upstream, f"upstream has no message {name}"
        problems += field_mismatches(name, message, upstream[name])
    print("\n".join(problems) or "project_config: no mismatch")
    assert problems == []


def test_a_payload_names_its_type_as_upstream_does():
    assert taskdefs_pb2.NotifyPubSubGo.DESCRIPTOR.full_name == "taskdefs.NotifyPubSubGo"
    topic = taskdefs_pb2.NotifyPubSubGo.DESCRIPTOR.fields_by_name["topic"].message_type
    assert topic.full_name == "buildbucket.BuildbucketCfg.Topic"
