"""rules/go_text.py: task details written as protobuf-go's String() writes them, checked against Go's own output.

tests/data/go_text_golden.json holds what protobuf-go wrote for the cases of
tools/go_text/cases.py, single-spaced and double-spaced, measured once with
protobuf-go v1.33.0's own String() on a real Go toolchain (the measuring
program is not kept here: it was built inside protobuf-go's source).
"""

from __future__ import annotations

import hashlib
import json
import pathlib

import pytest
from buildsync import wire
from buildsync.rules import go_text
from google.protobuf import struct_pb2

from tools.go_text.cases import CASES
from tools.task_backend import nested_bytes, nested_groups

GOLDEN = json.loads((pathlib.Path(__file__).parent / "data" / "go_text_golden.json").read_text())["cases"]


def test_every_case_has_go_s_answer():
    assert set(GOLDEN) == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_text_is_go_s_text_single_and_double_spaced(name):
    golden = GOLDEN[name]
    assert hashlib.sha256(CASES[name]).hexdigest() == golden["input_sha256"], "cases changed: measure again"
    written = go_text.format_message(struct_pb2.Struct.FromString(CASES[name]))
    if golden["text"] is not None:
        assert written.text == golden["text"]
    assert hashlib.sha256(written.text.encode()).hexdigest() == golden["text_sha256"]
    assert (written.length, written.double_spaced_length) == (golden["length"], golden["double_spaced_length"])


@pytest.mark.parametrize("json_levels", [1, 3333], ids=["one level", "Go's 10,000 message levels"])
def test_a_struct_nested_as_deep_as_go_decodes_is_written_whole(json_levels):
    written = go_text.format_message(wire.decode(struct_pb2.Struct, nested_bytes(json_levels)))
    assert written.text == 'fields:{key:"a" value:{struct_value:{' * json_levels + "}}}" * json_levels
    assert written.separators == json_levels  # the one before each `value:`


def test_unknown_groups_nested_as_deep_as_go_decodes_are_written_whole():
    written = go_text.format_message(wire.decode(struct_pb2.Struct, nested_groups(9_999)))
    assert written.text == "2:{" * 9_999 + "}" * 9_999
    assert written.separators == 0


def test_writing_a_deep_message_stops_just_past_the_length_asked_for():
    written = go_text.format_message(wire.decode(struct_pb2.Struct, nested_bytes(3333)), stop_after=1000)
    assert not written.complete
    assert 1000 < written.length <= 1000 + len("struct_value:")
    assert written.text == ('fields:{key:"a" value:{struct_value:{' * 30)[: written.length]


@pytest.mark.parametrize(
    "value, expected",
    [
        (0.0, "0"),
        (-0.0, "-0"),
        (100000.0, "100000"),
        (1e6, "1e+06"),
        (1234567.0, "1.234567e+06"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (1e100, "1e+100"),
        (5e-324, "5e-324"),
        (float("nan"), "nan"),
        (float("-inf"), "-inf"),
    ],
)
def test_doubles_are_written_as_go_formats_them_shortest(value, expected):
    assert go_text.format_float(value) == expected


@pytest.mark.parametrize(
    "value, expected", [(0.1, "0.1"), (16777216.0, "1.6777216e+07"), (3.4028234663852886e38, "3.4028235e+38")]
)
def test_floats_are_the_shortest_that_read_back_as_the_same_float32(value, expected):
    assert go_text.format_float(value, bits=32) == expected


def test_invalid_utf8_bytes_are_escaped_one_by_one_and_valid_characters_kept():
    raw = b"a\x80\xe2\x82\xe2\x82\xac\xed\xa0\x80"
    assert go_text.quote(raw.decode("utf-8", "surrogateescape")) == '"a\\x80\\xe2\\x82€\\xed\\xa0\\x80"'
