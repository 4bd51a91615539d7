"""Upstream's own .proto files, compiled at test time, and a field-by-field comparison with ours.

Upstream's files are never part of the project: they are read from
BUILDSYNC_UPSTREAM_PROTO_DIR, or from ../shared/upstream-protos beside the
repository (where CI has them). Two layouts are understood: a folder laid out
by import path (`go.chromium.org/luci/...`, `google/api/...`), and a luci-go
checkout (`buildbucket/proto/...`, with `common/proto/googleapis`). grpcio-tools'
protoc compiles them into a descriptor set, loaded into a pool of its own so
that upstream's messages never meet ours in the default pool.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import os
import pathlib
import subprocess
import sys
import tempfile

import grpc_tools
from google.protobuf import descriptor, descriptor_pb2, descriptor_pool, message_factory

REPO = pathlib.Path(__file__).resolve().parent.parent
OUR_PROTO_DIR = REPO / "shared" / "buildsync" / "proto"
ENV_VAR = "BUILDSYNC_UPSTREAM_PROTO_DIR"
BESIDE_REPO = REPO.parent / "shared" / "upstream-protos"
LUCI = "go.chromium.org/luci"

# Upstream files that may hold a counterpart of one of ours (each compiled
# with everything it imports); those absent from a folder are left out.
UPSTREAM_FILES = tuple(
    f"{LUCI}/{path}"
    for path in (
        "buildbucket/proto/build.proto",
        "buildbucket/proto/notification.proto",
        "buildbucket/proto/backend.proto",
        "buildbucket/proto/launcher.proto",
        "buildbucket/proto/project_config.proto",
        "buildbucket/proto/service_config.proto",
        "buildbucket/appengine/tasks/defs/tasks.proto",
        "resultdb/proto/v1/recorder.proto",
        "grpc/prpc/prpcpb/details.proto",
    )
)

# Ours on purpose declare less than upstream: full name -> why that is safe.
PARTIAL = {
    "luci.resultdb.v1.Invocation": "FinalizeInvocation's answer: only its state is read; never stored or sent on",
    "buildbucket.BuilderConfig": "read from a Bucket.Builder entity for max_concurrent_builds alone; never written",
    "buildbucket.BuildbucketCfg": "its CommonConfig is read from a Project entity for the topics alone; never written",
}


@dataclasses.dataclass(frozen=True)
class UpstreamFolder:
    """Where upstream's files are, and how protoc finds them by import path."""

    path: pathlib.Path
    include_args: tuple[str, ...]

    def exists(self, import_path: str) -> bool:
        return any(_mapped(arg, import_path).is_file() for arg in self.include_args)


def _mapped(include_arg: str, import_path: str) -> pathlib.Path:
    virtual, _, disk = include_arg[2:].rpartition("=")
    if virtual:
        prefix = virtual + "/"
        return pathlib.Path(disk, import_path[len(prefix) :]) if import_path.startswith(prefix) else pathlib.Path("/-")
    return pathlib.Path(disk, import_path)


def upstream_folder() -> tuple[UpstreamFolder | None, str]:
    """The upstream folder to compare with, or None and why there is none."""
    given = os.environ.get(ENV_VAR)
    path = pathlib.Path(given) if given else BESIDE_REPO
    where = f"{ENV_VAR}={given}" if given else f"{BESIDE_REPO} ({ENV_VAR} is not set)"
    if (path / LUCI).is_dir():
        return UpstreamFolder(path, (f"-I{path}",)), where
    if (path / "buildbucket" / "proto" / "build.proto").is_file():
        return UpstreamFolder(path, (f"-I{LUCI}={path}", f"-I{path / 'common' / 'proto' / 'googleapis'}")), where
    return None, f"no upstream .proto files at {where}: neither a luci-go checkout nor a folder laid out by import path"


@functools.cache
def compile_upstream(folder: UpstreamFolder) -> descriptor_pool.DescriptorPool:
    """Upstream's files that exist in `folder`, compiled into a pool of their own."""
    return compile_protos(folder.include_args, [name for name in UPSTREAM_FILES if folder.exists(name)])


def compile_protos(include_args: tuple[str, ...], files: list[str]) -> descriptor_pool.DescriptorPool:
    """`files` and everything they import, compiled by grpcio-tools' protoc into a new pool."""
    well_known = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    with tempfile.TemporaryDirectory() as scratch:
        out = pathlib.Path(scratch, "compiled.pb")
        command = [sys.executable, "-m", "grpc_tools.protoc", *include_args, f"-I{well_known}"]
        command += ["--include_imports", f"--descriptor_set_out={out}", *files]
        subprocess.run(command, check=True, capture_output=True, text=True)
        descriptors = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for file in descriptors.file:
        pool.Add(file)
    return pool


def upstream_class(pool: descriptor_pool.DescriptorPool, full_name: str):
    """The message class of upstream's `full_name`, for decoding with upstream's schema."""
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(full_name))


def our_files() -> list[descriptor.FileDescriptor]:
    """Every .proto file of ours, as its generated module loaded it."""
    return [
        importlib.import_module(f"buildsync.proto.{proto.stem}_pb2").DESCRIPTOR
        for proto in sorted(OUR_PROTO_DIR.glob("*.proto"))
    ]


@dataclasses.dataclass
class Comparison:
    """What comparing declarations found: mismatches fail, the rest is for the record."""

    mismatches: list[str] = dataclasses.field(default_factory=list)
    compared: dict[str, int] = dataclasses.field(default_factory=lambda: {"messages": 0, "enums": 0, "fields": 0})
    without_counterpart: list[str] = dataclasses.field(default_factory=list)
    partial: list[str] = dataclasses.field(default_factory=list)

    def report(self) -> str:
        lines = [
            f"compared {self.compared['messages']} messages, {self.compared['enums']} enums, "
            f"{self.compared['fields']} fields; {len(self.mismatches)} mismatches"
        ]
        lines += [f"  MISMATCH {line}" for line in self.mismatches]
        lines += [f"  partial on purpose: {line}" for line in self.partial]
        lines += [f"  no upstream counterpart in this folder: {line}" for line in self.without_counterpart]
        return "\n".join(lines)


def compare_files(ours: list[descriptor.FileDescriptor], upstream: descriptor_pool.DescriptorPool) -> Comparison:
    """Compares every top-level message, enum and service of `ours` with upstream's of the same full name."""
    result = Comparison()
    for file in ours:
        declared = [*file.message_types_by_name.values(), *file.enum_types_by_name.values()]
        pairs = [(ours_type, _find(upstream, ours_type)) for ours_type in declared]
        if not any(theirs for _, theirs in pairs):
            # No type of this file is upstream's: its counterpart is not in this folder.
            result.without_counterpart.append(file.name)
            continue
        for ours_type, theirs in pairs:
            if theirs is None:
                result.mismatches.append(f"{ours_type.full_name} ({file.name}): not declared upstream")
            else:
                _compare_type(ours_type, theirs, result)
        for service in file.services_by_name.values():
            _compare_service(service, upstream, result)
    return result


def _find(pool: descriptor_pool.DescriptorPool, ours):
    finder = pool.FindMessageTypeByName if isinstance(ours, descriptor.Descriptor) else pool.FindEnumTypeByName
    try:
        return finder(ours.full_name)
    except KeyError:
        return None


def _compare_type(ours, theirs, result: Comparison) -> None:
    if isinstance(ours, descriptor.EnumDescriptor):
        _compare_enum(ours, theirs, result)
    else:
        _compare_message(ours, theirs, result)


def _compare_enum(ours: descriptor.EnumDescriptor, theirs: descriptor.EnumDescriptor, result: Comparison) -> None:
    result.compared["enums"] += 1
    our_values = {v.name: v.number for v in ours.values}
    their_values = {v.name: v.number for v in theirs.values}
    if our_values != their_values:
        result.mismatches.append(f"enum {ours.full_name}: values {our_values} != upstream {their_values}")
    if _reserved(ours) != _reserved(theirs):
        result.mismatches.append(f"enum {ours.full_name}: reserved {_reserved(ours)} != upstream {_reserved(theirs)}")


def _compare_message(ours: descriptor.Descriptor, theirs: descriptor.Descriptor, result: Comparison) -> None:
    result.compared["messages"] += 1
    name = ours.full_name
    partial = name in PARTIAL
    if partial:
        result.partial.append(f"{name}: {PARTIAL[name]}")
    their_fields = {f.number: f for f in theirs.fields}
    for field in ours.fields:
        result.compared["fields"] += 1
        if field.number not in their_fields:
            result.mismatches.append(f"{name}.{field.name} = {field.number}: no such field number upstream")
            continue
        for difference in field_differences(field, their_fields.pop(field.number)):
            result.mismatches.append(f"{name}.{field.name} = {field.number}: {difference}")
    if not partial:
        for field in their_fields.values():
            result.mismatches.append(f"{name}: upstream's {field.name} = {field.number} is not declared here")
    if _reserved(ours) != _reserved(theirs):
        result.mismatches.append(f"{name}: reserved {_reserved(ours)} != upstream {_reserved(theirs)}")
    _compare_nested(ours, theirs, result, partial)


def _compare_nested(ours: descriptor.Descriptor, theirs: descriptor.Descriptor, result: Comparison, partial: bool):
    for kind, ours_nested, theirs_nested in (
        ("message", ours.nested_types_by_name, theirs.nested_types_by_name),
        ("enum", ours.enum_types_by_name, theirs.enum_types_by_name),
    ):
        for nested_name, nested in ours_nested.items():
            if nested_name in theirs_nested:
                _compare_type(nested, theirs_nested[nested_name], result)
            else:
                result.mismatches.append(f"{kind} {nested.full_name}: not declared upstream")
        if not partial:
            for nested_name in sorted(set(theirs_nested) - set(ours_nested)):
                result.mismatches.append(f"{kind} {ours.full_name}.{nested_name}: upstream's is not declared here")


def field_differences(ours: descriptor.FieldDescriptor, theirs: descriptor.FieldDescriptor) -> list[str]:
    """How one field differs from upstream's of the same number, in everything the bytes or the JSON depend on."""
    differences = []
    for attribute, value in _field_facts(ours).items():
        expected = _field_facts(theirs)[attribute]
        if value != expected:
            differences.append(f"{attribute} {value!r} != upstream {expected!r}")
    return differences


def _field_facts(field: descriptor.FieldDescriptor) -> dict:
    oneof = field.containing_oneof
    options = field.GetOptions()
    return {
        "name": field.name,
        "json_name": field.json_name,
        "type": descriptor_pb2.FieldDescriptorProto.Type.Name(field.type).removeprefix("TYPE_").lower(),
        "label": "repeated" if field.is_repeated else ("required" if field.is_required else "singular"),
        "type_name": (field.message_type or field.enum_type).full_name if field.type in _NAMED else "",
        "oneof": oneof.name if oneof is not None else "",
        "presence": field.has_presence,
        "packed": options.packed if options.HasField("packed") else None,
        "deprecated": options.deprecated,
    }


_NAMED = (descriptor.FieldDescriptor.TYPE_MESSAGE, descriptor.FieldDescriptor.TYPE_ENUM)


def _reserved(declared) -> tuple[set[int], set[str]]:
    proto = descriptor_pb2.DescriptorProto() if isinstance(declared, descriptor.Descriptor) else None
    if proto is None:
        proto = descriptor_pb2.EnumDescriptorProto()
    declared.CopyToProto(proto)
    numbers = set()
    for span in proto.reserved_range:
        # A message's range excludes its end; an enum's includes it.
        end = span.end if isinstance(declared, descriptor.Descriptor) else span.end + 1
        numbers.update(range(span.start, end))
    return numbers, set(proto.reserved_name)


def _compare_service(service: descriptor.ServiceDescriptor, upstream, result: Comparison) -> None:
    """Each method we declare is upstream's; a client may declare only the methods it calls."""
    try:
        theirs = upstream.FindServiceByName(service.full_name)
    except KeyError:
        result.mismatches.append(f"service {service.full_name}: not declared upstream")
        return
    expected = {m.name: (m.input_type.full_name, m.output_type.full_name) for m in theirs.methods}
    for method in service.methods:
        signature = (method.input_type.full_name, method.output_type.full_name)
        if expected.get(method.name) != signature:
            result.mismatches.append(f"{method.full_name}{signature} != upstream {expected.get(method.name)}")
    left_out = len(expected.keys() - {m.name for m in service.methods})
    if left_out:
        result.partial.append(f"service {service.full_name}: {left_out} of upstream's methods not called, not declared")
