"""The task details whose Go text form tests/data/go_text_golden.json records.

`python -m tools.go_text.cases` prints the cases as {name: base64 of the
serialized Struct}, the input of the Go measurement; `--golden GO_JSON TAG` turns the
Go measurement's answer into the golden file. tests/test_go_text.py builds the same
cases and compares buildsync's text with Go's.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import pathlib
import sys

from google.protobuf import json_format, struct_pb2

# Texts up to this many characters are kept whole in the golden file; longer ones by length and hash.
_KEPT_TEXT = 4_000


def _struct(value: dict) -> bytes:
    # Deterministic: maps in key order, so that the bytes (and their hash) are the same in every process.
    return json_format.ParseDict(value, struct_pb2.Struct()).SerializeToString(deterministic=True)


def _tag(number: int, wire_type: int) -> bytes:
    return _varint(number << 3 | wire_type)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _entry(key: str, value: bytes) -> bytes:
    """One Struct.fields entry whose Value is the raw bytes `value`."""
    body = _tag(1, 2) + _varint(len(key.encode())) + key.encode() + _tag(2, 2) + _varint(len(value)) + value
    return _tag(1, 2) + _varint(len(body)) + body


def _unknown_fields() -> bytes:
    """A Value with a string and every kind of unknown field (Go writes them as number:value)."""
    group = _tag(1, 0) + _varint(7) + _tag(2, 2) + _varint(2) + b"\xc3\xa9"
    value = _tag(3, 2) + _varint(2) + b"ok"
    value += _tag(10, 0) + _varint(2**64 - 1)
    value += _tag(11, 5) + (0xDEADBEEF).to_bytes(4, "little")
    value += _tag(12, 1) + (0x10).to_bytes(8, "little")
    value += _tag(13, 2) + _varint(6) + b"a\x80\xe2\x82b\xff"
    value += _tag(14, 3) + group + _tag(14, 4)
    return _entry("unknown", value) + _tag(99, 0) + _varint(1)


def _dimensions(count: int) -> dict:
    return {"dimensions": [{"key": f"dimension-{i:03d}", "value": f"value-{i:03d}"} for i in range(count)]}


CASES: dict[str, bytes] = {
    "empty": b"",
    "issue: one value of 51,000 characters": _struct({"log": "x" * 51_000}),
    "issue: 400 list dimensions": _struct(_dimensions(400)),
    "kinds": _struct(
        {"n": None, "t": True, "f": False, "s": "", "l": [], "o": {}, "nested": {"a": [1, [2, {"b": None}]]}}
    ),
    "value without kind": _entry("unset", b""),
    "null value not declared": _entry("odd", _tag(1, 0) + _varint(5)),
    "numbers": _struct(
        {
            str(i): number
            for i, number in enumerate(
                [0.0, -0.0, 1, -1, 0.5, 0.1, 1 / 3, 123456, 999999, 1e6, 1234567, 1e21, 1e22, 12345678901234567890]
                + [1e-4, 1.5e-4, 1e-5, 2.5e-7, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, -3.25e100]
            )
        }
    ),
    "special numbers": b"".join(
        _entry(name, _tag(2, 1) + bits.to_bytes(8, "little"))
        for name, bits in (("nan", 0x7FF8000000000001), ("inf", 0x7FF0000000000000), ("-inf", 0xFFF0000000000000))
    ),
    "strings": _struct(
        {
            "controls": "".join(chr(c) for c in range(0x20)) + "\x7f",
            "quotes": "\"double\" 'single' back\\slash",
            "c1": "".join(chr(c) for c in range(0x80, 0xA0)),
            "latin": "café ÿ Ā",
            "bmp": "日本語 \u2028 \ufeff \ufffd",
            "astral": "\U0001f600 \U00010000 \U0010ffff",
            'key "quoted"\n': "keys are escaped too",
            "": "empty key",
        }
    ),
    "unknown fields": _unknown_fields(),
}


def _golden(go_answer: dict, tag: str) -> dict:
    cases = {}
    for name, data in CASES.items():
        text = go_answer[name]["text"]
        cases[name] = {
            "input_sha256": hashlib.sha256(data).hexdigest(),
            "length": len(text.encode()),
            "double_spaced_length": go_answer[name]["double_spaced_length"],
            "text_sha256": hashlib.sha256(text.encode()).hexdigest(),
            "text": text if len(text) <= _KEPT_TEXT else None,
        }
    return {"protobuf_go": tag, "made_by": "protobuf-go String(), measured once", "cases": cases}


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--golden", nargs=2, metavar=("GO_JSON", "TAG"))
    args = parser.parse_args(argv)
    if args.golden:
        answer = json.loads(pathlib.Path(args.golden[0]).read_text())
        json.dump(_golden(answer, args.golden[1]), sys.stdout, indent=1, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        json.dump({name: base64.b64encode(data).decode() for name, data in CASES.items()}, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1:])
