"""A message's Go text form, as Buildbucket's `String()` writes it: the measure of a task's details.

Buildbucket refuses a task whose `len(details.String())/1024 > 50`
(docs/rules.md "Validating a fetched task"), so the limit is on the length of
protobuf-go's compact text format (prototext with Multiline false, as its
generated `String()` methods call it), not on the binary size. This module
writes that text the way protobuf-go v1.36 does (`encoding/prototext`,
`internal/encoding/text`):

- fields in declaration order, `name:value`, messages as `name:{...}`, map
  entries as `name:{key:K value:V}` with both halves always written, repeated
  fields as one `name:value` per element, enums by name (by number when the
  value is not declared), then the unknown fields as `number:value`;
- one space between a value and the next name, and none anywhere else;
- strings quoted with Go's escapes (`\\n \\r \\t \\" \\\\`, `\\xNN` for other
  control bytes, DEL and invalid UTF-8 bytes, `\\u00NN` for U+0080..U+009F,
  other characters as UTF-8);
- doubles as Go's `strconv.FormatFloat(v, 'g', -1, 64)`, `nan`, `inf`, `-inf`.

What Go's text does not fix, protobuf-go randomises per binary: every one of
those separating spaces is doubled in a binary whose `internal/detrand` seed
is odd. So the text here is the single-spaced one, and `separators` says how
much longer a double-spaced Buildbucket build measures the same message.
`google.protobuf.Any` is written as a plain message (Go expands it when it
knows the type); task details, a Struct, contain none.
"""

from __future__ import annotations

import dataclasses
import decimal
import math
import re
import struct

from google.protobuf import descriptor, message, unknown_fields

from buildsync import nesting

_Field = descriptor.FieldDescriptor

_INT_TYPES = frozenset(
    {
        _Field.TYPE_INT32,
        _Field.TYPE_INT64,
        _Field.TYPE_SINT32,
        _Field.TYPE_SINT64,
        _Field.TYPE_SFIXED32,
        _Field.TYPE_SFIXED64,
        _Field.TYPE_UINT32,
        _Field.TYPE_UINT64,
        _Field.TYPE_FIXED32,
        _Field.TYPE_FIXED64,
    }
)

# Characters Go's text encoder escapes. U+DC80..U+DCFF stand for bytes that
# are not UTF-8 (bytes are decoded with "surrogateescape"); Go writes each
# such byte as \xNN, as it does control bytes and DEL.
_NEEDS_ESCAPE = re.compile('[\x00-\x1f"\\\\\x7f-\x9f\udc80-\udcff]')
_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", '"': '\\"', "\\": "\\\\"}

# Unknown-field wire types (protowire).
_VARINT, _FIXED64, _BYTES, _GROUP, _FIXED32 = 0, 1, 2, 3, 5


@dataclasses.dataclass(frozen=True)
class GoText:
    """A message in Go's compact text format with single spaces, and how many separating spaces it has.

    `complete` is False when writing stopped early, past the length asked
    for: the text is then a prefix, already longer than that.
    """

    text: str
    separators: int
    complete: bool = True

    @property
    def length(self) -> int:
        """`len()` of Go's string: UTF-8 bytes, in a binary that writes single spaces."""
        return len(self.text.encode())

    @property
    def double_spaced_length(self) -> int:
        """The same in a binary whose detrand seed doubles every separating space."""
        return self.length + self.separators


def format_message(msg: message.Message, stop_after: int | None = None) -> GoText:
    """`msg` as protobuf-go's `String()` writes it (the top level without braces).

    With `stop_after`, writing stops once the text is longer than that many
    characters, so that measuring a huge message against a limit costs no
    more than writing the limit. Any depth the decoder took is written
    (nesting.py: no recursion).
    """
    writer = _Writer(stop_after)
    try:
        nesting.run(writer.fields(msg))
    except _LongerThanAsked:
        return GoText("".join(writer.out), writer.separators, complete=False)
    return GoText("".join(writer.out), writer.separators)


class _LongerThanAsked(Exception):
    """The text has passed the length the caller stops at."""


class _Writer:
    """Go's text Encoder: tokens in, and a space only between a value and the next name."""

    def __init__(self, stop_after: int | None) -> None:
        self.out: list[str] = []
        self.separators = 0
        self._after_value = False
        self._chars = 0
        self._stop_after = stop_after

    def name(self, name: str) -> None:
        if self._after_value:
            self._append(" ")
            self.separators += 1
        self._append(name + ":")
        self._after_value = False

    def value(self, text: str) -> None:
        self._append(text)
        self._after_value = True

    def _append(self, text: str) -> None:
        self.out.append(text)
        self._chars += len(text)  # characters, no more than the UTF-8 bytes Go counts
        if self._stop_after is not None and self._chars > self._stop_after:
            raise _LongerThanAsked

    def open(self) -> None:
        self._append("{")
        self._after_value = False

    def close(self) -> None:
        self._append("}")
        self._after_value = True

    def fields(self, msg: message.Message) -> nesting.Steps:
        """Writes `msg`'s fields, yielding the writing of each message field for `_run` to do in place."""
        for field, value in sorted(msg.ListFields(), key=_field_order):
            name = f"[{field.full_name}]" if field.is_extension else field.name
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                yield from self._map(name, field.message_type, value)
            elif field.is_repeated:
                for item in value:
                    self.name(name)
                    yield from self._singular(field, item)
            else:
                self.name(name)
                yield from self._singular(field, value)
        yield from self._unknown(unknown_fields.UnknownFieldSet(msg))

    def _map(self, name: str, entry: descriptor.Descriptor, mapping) -> nesting.Steps:
        key_field, value_field = entry.fields_by_name["key"], entry.fields_by_name["value"]
        for key in sorted(mapping):  # Go's order: by key
            self.name(name)
            self.open()
            self.name("key")
            yield from self._singular(key_field, key)
            self.name("value")
            yield from self._singular(value_field, mapping[key])
            self.close()

    def _singular(self, field: _Field, value) -> nesting.Steps:
        kind = field.type
        if kind in (_Field.TYPE_MESSAGE, _Field.TYPE_GROUP):
            self.open()
            yield self.fields(value)
            self.close()
        elif kind == _Field.TYPE_BOOL:
            self.value("true" if value else "false")
        elif kind == _Field.TYPE_STRING:
            self.value(quote(value))
        elif kind == _Field.TYPE_BYTES:
            self.value(quote(value.decode("utf-8", "surrogateescape")))
        elif kind == _Field.TYPE_ENUM:
            known = field.enum_type.values_by_number.get(value)
            self.value(known.name if known is not None else str(value))
        elif kind == _Field.TYPE_DOUBLE:
            self.value(format_float(value))
        elif kind == _Field.TYPE_FLOAT:
            self.value(format_float(value, bits=32))
        elif kind in _INT_TYPES:
            self.value(str(value))
        else:  # pragma: no cover - every protobuf field type is listed above
            raise TypeError(f"{field.full_name} has an unknown type {kind}")

    def _unknown(self, found: unknown_fields.UnknownFieldSet) -> nesting.Steps:
        for item in found:
            self.name(str(item.field_number))
            if item.wire_type == _VARINT:
                self.value(str(item.data))
            elif item.wire_type in (_FIXED32, _FIXED64):
                self.value(f"0x{item.data:x}")
            elif item.wire_type == _BYTES:
                self.value(quote(item.data.decode("utf-8", "surrogateescape")))
            elif item.wire_type == _GROUP:
                self.open()
                yield self._unknown(item.data)
                self.close()


def _field_order(pair: tuple[_Field, object]) -> tuple[int, int, str]:
    """Go's order: fields by declaration, then extensions by full name."""
    field = pair[0]
    return (1, 0, field.full_name) if field.is_extension else (0, field.index, "")


def quote(text: str) -> str:
    """A string as Go's text encoder quotes it (surrogate escapes standing for raw bytes)."""
    return '"' + _NEEDS_ESCAPE.sub(_escape, text) + '"'


def _escape(found: re.Match[str]) -> str:
    char = found[0]
    short = _SHORT_ESCAPES.get(char)
    if short is not None:
        return short
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:
        return f"\\x{code - 0xDC00:02x}"
    if 0x80 <= code <= 0x9F:
        return f"\\u{code:04x}"
    return f"\\x{code:02x}"


def format_float(value: float, bits: int = 64) -> str:
    """Go's `strconv.FormatFloat(value, 'g', -1, bits)`, with Go text's nan/inf spellings.

    The shortest digits that read back as the same value; exponent form when
    the decimal exponent is below -4 or at least 6 (Go's rule for the
    shortest precision: 1e+06, not 1000000).
    """
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    sign = "-" if math.copysign(1.0, value) < 0 else ""
    digits, point = _shortest_digits(abs(value), bits)
    exponent = point - 1
    if digits and (exponent < -4 or exponent >= 6):
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mantissa}e{'-' if exponent < 0 else '+'}{abs(exponent):02d}"
    if point <= 0:
        return f"{sign}0" + ("." + "0" * -point + digits if digits else "")
    whole = (digits[:point]).ljust(point, "0")
    fraction = digits[point:]
    return f"{sign}{whole}" + ("." + fraction if fraction else "")


def _shortest_digits(value: float, bits: int) -> tuple[str, int]:
    """The shortest digit string d1d2… and point p with value = 0.d1d2… × 10^p ("", 0 for zero)."""
    if value == 0:
        return "", 0
    text = repr(value)
    if bits == 32:
        for precision in range(1, 10):
            text = f"{value:.{precision}g}"
            if _float32(float(text)) == value:
                break
    _, digits, exponent = decimal.Decimal(text).normalize().as_tuple()
    return "".join(map(str, digits)), len(digits) + int(exponent)


def _float32(value: float) -> float:
    """`value` rounded to a float32 (infinity past its range)."""
    try:
        return struct.unpack("<f", struct.pack("<f", value))[0]
    except OverflowError:
        return math.copysign(math.inf, value)
