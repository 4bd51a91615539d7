"""rules/build_cel.py: Buildbucket's CEL predicates over a Build, and the three functions it adds.

The cases follow upstream's buildcel tests (buildbucket/appengine/common/buildcel/
build_cel_test.go), restated as data; the rest pin CEL's own rules that the
predicates lean on (presence, Struct keys, && over an error).
"""

from __future__ import annotations

import pytest
from buildsync import wire
from buildsync.proto import buildbucket_pb2 as pb
from buildsync.rules import build_cel
from buildsync.rules.build_cel import PredicateError
from google.protobuf import struct_pb2

from tools.task_backend import nested_bytes, nested_groups


def build(**fields) -> pb.Build:
    """A Build from keyword fields; input/output properties given as plain dicts."""
    inputs = fields.pop("input_properties", None)
    outputs = fields.pop("output_properties", None)
    experiments = fields.pop("experiments", None)
    tags = fields.pop("tags", None)
    message = pb.Build(**fields)
    if inputs is not None:
        message.input.properties.CopyFrom(_struct(inputs))
    if outputs is not None:
        message.output.properties.CopyFrom(_struct(outputs))
    if experiments is not None:
        message.input.experiments.extend(experiments)
    if tags is not None:
        message.tags.extend(pb.StringPair(key=k, value=v) for k, v in tags)
    return message


def _struct(values: dict) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(values)
    return message


# Upstream's "work" predicates: a build must meet all four.
FOUR_PREDICATES = (
    "(has(build.tags)||(has(build.input)))",
    "has(build.input.properties.pro_key)",
    'build.input.experiments.exists(e, e=="luci.buildbucket.exp")',
    'string(build.output.properties.out_key) == "out_val"',
)
TAG_PREDICATES = ('build.tags.exists(t, t.key=="os")', 'build.tags.get_value("os")!=""')

MATCHES = [
    ("an empty build meets not all four", FOUR_PREDICATES, build(), False),
    (
        "a build meeting only the first fails the rest",
        FOUR_PREDICATES,
        build(input_properties={"key": "value"}, tags=[("os", "mac")]),
        False,
    ),
    (
        "a build meeting all four passes",
        FOUR_PREDICATES,
        build(
            input_properties={"pro_key": "value"},
            experiments=["luci.buildbucket.exp"],
            output_properties={"out_key": "out_val"},
        ),
        True,
    ),
    ("a build without the tag does not match", TAG_PREDICATES, build(tags=[("key", "value")]), False),
    ("a build with the tag matches", TAG_PREDICATES, build(tags=[("os", "Mac")]), True),
    ("a status named by to_string matches", ('build.status.to_string()=="SUCCESS"',), build(status=pb.SUCCESS), True),
    (
        "another status name does not match",
        ('build.status.to_string()=="INFRA_FAILURE"',),
        build(status=pb.SUCCESS),
        False,
    ),
    ("get_value of a missing tag is empty", ('build.tags.get_value("os")==""',), build(tags=[("key", "v")]), True),
    (
        "get_value takes the first of repeated keys",
        ('build.tags.get_value("os")=="a"',),
        build(tags=[("os", "a"), ("os", "b")]),
        True,
    ),
    ("no experiments read as None", ('build.input.experiments.to_string()=="None"',), build(), True),
    (
        "experiments are sorted and joined with a bar",
        ('build.input.experiments.to_string()=="luci.buildbucket.exp1|luci.buildbucket.exp2"',),
        build(experiments=["luci.buildbucket.exp2", "luci.buildbucket.exp1"]),
        True,
    ),
    ("an unset message field is absent", ("has(build.input)",), build(), False),
    ("a proto3 scalar at its default is absent", ("has(build.summary_markdown)",), build(), False),
    ("a status compares as its number", ("build.status == 20",), build(status=pb.FAILURE), True),
    (
        "false before a failing predicate decides the whole",
        ("false", 'string(build.input.properties.k)=="v"'),
        build(),
        False,
    ),
    (
        "false after a failing predicate decides the whole",
        ('string(build.input.properties.k)=="v"', "false"),
        build(),
        False,
    ),
]


@pytest.mark.parametrize(
    "predicates, message, expected", [case[1:] for case in MATCHES], ids=[case[0] for case in MATCHES]
)
def test_a_build_matches_when_it_meets_every_predicate(predicates, message, expected):
    assert build_cel.matches(message, predicates) is expected


REFUSED = [
    ("no predicates", (), "predicates are required"),
    ("a field Build does not have", ("has(build.tags)", "has(build.random)"), "undefined field 'random'"),
    ("a predicate that is not a bool", ("build.status",), "expected bool, got INT"),
    ("a Struct value is dyn, not bool", ("build.input.properties.flag",), "expected bool, got DYN"),
    ("a predicate that does not parse", ("build.status ==",), "compiling 'build.status =='"),
    ("a missing Struct key read for its value", ('string(build.output.properties.out_key) == "out_val"',), "out_key"),
]


@pytest.mark.parametrize("predicates, message", [case[1:] for case in REFUSED], ids=[case[0] for case in REFUSED])
def test_predicates_that_cannot_be_decided_raise_predicate_error(predicates, message):
    with pytest.raises(PredicateError, match=message):
        build_cel.matches(build(), predicates)


def test_every_bad_predicate_is_reported_at_once():
    with pytest.raises(PredicateError) as raised:
        build_cel.matches(build(), ("has(build.random)", "build.status", "true"))
    assert "random" in str(raised.value) and "expected bool, got INT" in str(raised.value)


@pytest.mark.parametrize(
    "status, name",
    [
        (pb.SUCCESS, "SUCCESS"),
        (pb.ENDED_MASK, "ENDED_MASK"),
        (0, "STATUS_UNSPECIFIED"),
        (5, ""),  # no Status has that number
        (2**32 + 12, "SUCCESS"),  # taken as an int32, as Go converts it
        (-1, ""),
    ],
)
def test_status_to_string_names_the_status_number(status, name):
    assert build_cel.status_string(status) == name


@pytest.mark.parametrize(
    "experiments, text",
    [([], "None"), (["b", "a"], "a|b"), (["é", "z"], "z|é")],  # code point order, as Go's byte order of UTF-8
)
def test_experiments_to_string_sorts_and_joins(experiments, text):
    assert build_cel.experiments_string(experiments) == text


def test_tag_value_is_empty_for_a_missing_key():
    assert build_cel.tag_value([pb.StringPair(key="a", value="1")], "b") == ""


# --- builds nested deeper than cel-cpp parses ----------------------------------------------------


def deep_build() -> pb.Build:
    """Properties nested 3,000 JSON objects deep (9,000 levels) beside shallow ones, and details of 9,000 groups."""
    message = build(status=pb.FAILURE, input_properties={"recipe": "chromium"}, tags=[("os", "linux")])
    message.input.properties.fields["deep"].struct_value.MergeFromString(nested_bytes(3000))
    message.infra.backend.task.details.MergeFromString(nested_groups(9000))
    return message


@pytest.mark.parametrize(
    ("predicate", "expected"),
    [
        ('build.status.to_string() == "FAILURE"', True),
        ('build.tags.get_value("os") == "linux"', True),
        ('build.input.properties.recipe == "chromium"', True),
        ("has(build.input.properties.deep.a.a.a)", True),
        ("size(build.input.properties.deep.a) == 1", True),
        # The deepest select cel-cpp's parser takes (32 levels of expression): 28 keys into a property.
        ("has(build.input.properties.deep" + ".a" * 27 + ")", True),
        ("size(build.input.properties.deep" + ".a" * 26 + ") == 1", True),
    ],
)
def test_a_build_nested_as_deep_as_go_decodes_is_evaluated_as_buildbucket_would_above_the_cut(predicate, expected):
    assert build_cel.matches(deep_build(), [predicate]) is expected


def test_what_cel_reads_of_a_deep_build_is_cut_where_cel_cpp_stops_and_nothing_above():
    deep = deep_build()
    readable = build_cel.cel_readable(deep)
    assert wire.nesting_depth(pb.Build.DESCRIPTOR, readable.SerializeToString(), 20_000) <= build_cel.CEL_MAX_NESTING
    assert readable.input.properties["recipe"] == "chromium" and readable.tags == deep.tags
    value, levels = readable.input.properties.fields["deep"], 0
    while value.HasField("struct_value"):
        value, levels = value.struct_value.fields["a"], levels + 1
    assert levels == 32 and value.WhichOneof("kind") is None  # Build, input, properties and 3 a level: 99 levels
    assert (
        readable.infra.backend.task.details == struct_pb2.Struct()
    )  # groups are unknown fields, which CEL never reads


def test_a_build_cel_cpp_parses_is_evaluated_as_it_is():
    shallow = build(status=pb.FAILURE, input_properties={"recipe": "chromium"})
    shallow.input.properties.fields["deep"].struct_value.MergeFromString(nested_bytes(31))  # 99 levels
    assert build_cel.cel_readable(shallow) == shallow
    assert build_cel.matches(shallow, ["has(build.input.properties.deep" + ".a" * 27 + ")"])
