"""Buildbucket's CEL environment for a Build: predicates over `build`, and the functions it adds.

A custom metric names its builds with CEL predicates over one variable,
`build` (a `buildbucket.v2.Build`), type-checked as Buildbucket does
(docs/rules.md "Custom builder metrics"). Buildbucket's environment adds three
member functions, reproduced here with the same overloads:

- `build.tags.get_value("key")`: the value of the first tag with that key, or "";
- `build.input.experiments.to_string()`: the strings sorted and joined with "|",
  or "None" for an empty list;
- `build.status.to_string()`: the name of a Status value, or "" for a number
  that names none.

cel-cpp parses the build with C++ protobuf's nesting limit, which Go does not
have; a build nested past it is evaluated on `cel_readable(build)`
(docs/rules.md "Custom builder metrics", item 5).

The CEL library (cel-expr-python, README "Custom builder metrics: the CEL
library") is imported on the first evaluation only: most builds have no custom
metrics, and a Cloud Function's cold start should not pay for it.
"""

from __future__ import annotations

import threading
from typing import Any, Sequence

from google.protobuf import descriptor

from buildsync import wire
from buildsync.proto import buildbucket_pb2 as pb

# The deepest build cel-cpp parses, the Build itself level 1: C++ protobuf's default recursion limit of 100
# nested messages below it. Buildbucket's cel-go has none.
CEL_MAX_NESTING = 101

_MESSAGE = descriptor.FieldDescriptor.CPPTYPE_MESSAGE
_VALUE = "google.protobuf.Value"

# The name of a Status value by number, as Go's generated Status_name map holds them.
_STATUS_NAMES = {value.number: value.name for value in pb.Status.DESCRIPTOR.values}

_env_lock = threading.Lock()
_env: Any = None


class PredicateError(ValueError):
    """Predicates that do not compile to a bool, or whose evaluation failed."""


def matches(build: pb.Build, predicates: Sequence[str]) -> bool:
    """Whether `build` meets every predicate; raises PredicateError.

    As Buildbucket does: at least one predicate; each must compile, on its own,
    to exactly a bool (every problem is reported); then all are joined with &&
    and evaluated as one expression, so CEL's rules for && decide what an
    error in one predicate does to the rest (`false && error` is false).
    """
    if not predicates:
        raise PredicateError("predicates are required")
    problems = []
    for predicate in predicates:
        try:
            _compile_bool(predicate)
        except PredicateError as error:
            problems.append(str(error))
    if problems:
        raise PredicateError("; ".join(problems))
    expression = "(" + ") && (".join(predicates) + ")"
    try:
        result = _evaluate(_compile_bool(expression), build)
    except RuntimeError as error:
        raise PredicateError(f"evaluating {expression!r}: {error}") from error
    if not result.type() == _cel().Type.BOOL:
        raise PredicateError(f"evaluating {expression!r}: {result.value()}")
    return bool(result.value())


def _evaluate(compiled, build: pb.Build):
    """`compiled` evaluated on `build`; on a build nested deeper than cel-cpp parses, on `cel_readable(build)`.

    Only an evaluation that failed pays for measuring the depth.
    """
    result = compiled.eval(data={"build": build})
    if result.type() == _cel().Type.ERROR:
        depth = wire.nesting_depth(pb.Build.DESCRIPTOR, build.SerializeToString(), CEL_MAX_NESTING)
        if depth > CEL_MAX_NESTING:
            return compiled.eval(data={"build": cel_readable(build)})
    return result


def cel_readable(build: pb.Build) -> pb.Build:
    """A copy of `build` as deep as cel-cpp parses: no unknown fields, and objects and lists nested past its
    limit replaced by null (a Value with no kind, as CEL reads it).

    Buildbucket's CEL (Go) reads any depth; cel-cpp parses the build it is
    handed with C++ protobuf's limit. A predicate reads the same values as in
    Buildbucket down to some 30 JSON levels inside a property; only what lies
    deeper reads as null. Walked with a stack, not recursion.
    """
    copy = pb.Build()
    copy.CopyFrom(build)
    copy.DiscardUnknownFields()  # CEL cannot read them, and their groups nest too
    pending = [(copy, 1)]
    while pending:
        message, depth = pending.pop()
        if message.DESCRIPTOR.full_name == _VALUE and _nests_past_cel(message, depth):
            message.Clear()
            continue
        for field, value in message.ListFields():
            if field.cpp_type != _MESSAGE:
                continue
            if field.message_type.GetOptions().map_entry:  # its values sit under the entry's own level
                if field.message_type.fields_by_name["value"].cpp_type == _MESSAGE:
                    pending += [(item, depth + 2) for item in value.values()]
            else:
                pending += [(item, depth + 1) for item in (value if field.is_repeated else [value])]
    return copy


def _nests_past_cel(value, depth: int) -> bool:
    """Whether the Value at `depth` holds an object or list whose messages lie past CEL_MAX_NESTING."""
    kind = value.WhichOneof("kind")
    if kind == "struct_value":
        return depth + (3 if value.struct_value.fields else 1) > CEL_MAX_NESTING  # Struct, its entry, a Value
    if kind == "list_value":
        return depth + (2 if value.list_value.values else 1) > CEL_MAX_NESTING  # ListValue, a Value
    return False


def _compile_bool(expression: str):
    """`expression` compiled in the environment, checked to yield exactly a bool; raises PredicateError."""
    try:
        compiled = _environment().compile(expression)
    except RuntimeError as error:  # how cel-expr-python reports parse and type errors
        raise PredicateError(f"compiling {expression!r}: {error}") from error
    if not compiled.return_type() == _cel().Type.BOOL:
        raise PredicateError(f"compiling {expression!r}: expected bool, got {compiled.return_type().name()}")
    return compiled


def tag_value(tags: Sequence[pb.StringPair], key: str) -> str:
    """`tags.get_value(key)`: the first matching tag's value, or ""."""
    for tag in tags:
        if tag.key == key:
            return tag.value
    return ""


def experiments_string(experiments: Sequence[str]) -> str:
    """`experiments.to_string()`: sorted and joined with "|", or "None" when there are none."""
    # Python sorts strings by code point, which is the byte order Go sorts UTF-8 in.
    return "|".join(sorted(experiments)) if experiments else "None"


def status_string(status: int) -> str:
    """`status.to_string()`: the Status name of the number, taken as an int32 as Go does."""
    as_int32 = (status + 2**31) % 2**32 - 2**31
    return _STATUS_NAMES.get(as_int32, "")


def _cel():
    from cel_expr_python import cel  # lazily: see the module docstring

    return cel


def _environment():
    """The one environment, made on first use (thread-safe: the sync runs groups in threads)."""
    global _env
    with _env_lock:
        if _env is None:
            _env = _new_environment(_cel())
        return _env


def _new_environment(cel):
    pair = cel.Type(pb.StringPair.DESCRIPTOR.full_name)

    def member(overload_id: str, target, impl) -> Any:
        return cel.Overload(overload_id, return_type=cel.Type.STRING, parameters=target, is_member=True, impl=impl)

    return cel.NewEnv(
        variables={"build": cel.Type(pb.Build.DESCRIPTOR.full_name)},
        functions=[
            cel.FunctionDecl(
                "get_value", [member("string_pairs_get_value", [cel.Type.List(pair), cel.Type.STRING], tag_value)]
            ),
            cel.FunctionDecl(
                "to_string",
                [
                    member("to_experiment_string", [cel.Type.List(cel.Type.STRING)], experiments_string),
                    member("string_status", [cel.Type.INT], status_string),
                ],
            ),
        ],
    )
