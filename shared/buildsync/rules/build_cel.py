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

The CEL library (cel-expr-python, README "Custom builder metrics: the CEL
library") is imported on the first evaluation only: most builds have no custom
metrics, and a Cloud Function's cold start should not pay for it.
"""

from __future__ import annotations

import threading
from typing import Any, Sequence

from buildsync.proto import buildbucket_pb2 as pb

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
        result = _compile_bool(expression).eval(data={"build": build})
    except RuntimeError as error:
        raise PredicateError(f"evaluating {expression!r}: {error}") from error
    if not result.type() == _cel().Type.BOOL:
        raise PredicateError(f"evaluating {expression!r}: {result.value()}")
    return bool(result.value())


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
