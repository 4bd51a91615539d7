"""A notification's proto3 JSON, byte for byte as json_format writes it, at any depth Go decodes.

`json_format.MessageToJson(message, indent=None)` recurses five Python frames
and a C call a level of a Struct, and `json.dumps` under it recurses in C:
past some 300 levels it raises RecursionError, and no recursion limit and
thread stack raised for it would be bounded to one thread (docs/rules.md
"What can never block a batch"). This writer walks the message from a stack
on the heap (`nesting.py`) and writes the same text: fields in `ListFields`
order under their JSON names, `", "` and `": "` between items, strings
escaped to ASCII as `json.dumps` escapes them, 64-bit integers quoted, bytes
in base64, enums by name (an undeclared number as a number), map keys as
strings, and the well-known types a Build holds: Struct, Value (its numbers
as Python's `repr`), ListValue, Timestamp and Duration.

It writes the message types a notification holds; `tests/test_proto_json.py`
checks that they reach no other well-known type, no float or double field
outside Value, no extension and no closed enum: the cases where json_format
does more.
"""

from __future__ import annotations

import base64
import json
import math

from google.protobuf import descriptor
from google.protobuf.message import Message

from buildsync import nesting

_Field = descriptor.FieldDescriptor

# Written as their `ToJsonString()`, a quoted string (json_format's "generic" well-known types).
_AS_STRING = frozenset({"google.protobuf.Timestamp", "google.protobuf.Duration"})
_QUOTED = frozenset({_Field.CPPTYPE_INT64, _Field.CPPTYPE_UINT64})
_NULL_VALUE = "google.protobuf.NullValue"


class JsonWriteError(ValueError):
    """A value proto3 JSON has no form for (NaN or infinity in a Value, a Timestamp out of range).

    json_format refuses the same message, and so does Go's protojson.
    """


def to_json(message: Message) -> str:
    """What `json_format.MessageToJson(message, indent=None)` returns; raises JsonWriteError."""
    out: list[str] = []
    nesting.run(_message(message, out))
    return "".join(out)


def _message(message: Message, out: list[str]) -> nesting.Steps:
    name = message.DESCRIPTOR.full_name
    if name == "google.protobuf.Struct":
        yield from _struct(message, out)
    elif name == "google.protobuf.Value":
        yield from _value(message, out)
    elif name == "google.protobuf.ListValue":
        yield from _list(message, out)
    elif name in _AS_STRING:
        try:
            out.append(_string(message.ToJsonString()))
        except ValueError as error:
            raise JsonWriteError(f"{name}: {error}") from error
    else:
        yield from _fields(message, out)


def _fields(message: Message, out: list[str]) -> nesting.Steps:
    out.append("{")
    for index, (field, value) in enumerate(message.ListFields()):
        out.append(_key(field.json_name, index))
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            yield from _map(field.message_type.fields_by_name["value"], value, out)
        elif field.is_repeated:
            out.append("[")
            for position, item in enumerate(value):
                if position:
                    out.append(", ")
                yield from _field_value(field, item, out)
            out.append("]")
        else:
            yield from _field_value(field, value, out)
    out.append("}")


def _map(value_field: _Field, mapping, out: list[str]) -> nesting.Steps:
    out.append("{")
    for index, key in enumerate(mapping):
        out.append(_key(("true" if key else "false") if isinstance(key, bool) else str(key), index))
        yield from _field_value(value_field, mapping[key], out)
    out.append("}")


def _field_value(field: _Field, value, out: list[str]) -> nesting.Steps:
    """One value of `field`: a nested message is yielded to be written in place, anything else written."""
    if field.cpp_type == _Field.CPPTYPE_MESSAGE:
        yield _message(value, out)
    else:
        out.append(_scalar(field, value))


def _scalar(field: _Field, value) -> str:
    kind = field.cpp_type
    if kind == _Field.CPPTYPE_ENUM:
        if field.enum_type.full_name == _NULL_VALUE:
            return "null"
        known = field.enum_type.values_by_number.get(value)
        return _string(known.name) if known is not None else str(value)  # proto3 enums are open
    if kind == _Field.CPPTYPE_STRING:
        return _string(base64.b64encode(value).decode() if field.type == _Field.TYPE_BYTES else value)
    if kind == _Field.CPPTYPE_BOOL:
        return "true" if value else "false"
    if kind in _QUOTED:
        return _string(str(value))
    return str(value)  # int32 and uint32: a notification has no float or double field but a Value's number


def _struct(message: Message, out: list[str]) -> nesting.Steps:
    fields = message.fields
    out.append("{")
    for index, key in enumerate(fields):
        out.append(_key(key, index))
        yield _value(fields[key], out)
    out.append("}")


def _list(message: Message, out: list[str]) -> nesting.Steps:
    out.append("[")
    for index, item in enumerate(message.values):
        if index:
            out.append(", ")
        yield _value(item, out)
    out.append("]")


def _value(message: Message, out: list[str]) -> nesting.Steps:
    kind = message.WhichOneof("kind")
    if kind == "struct_value":
        yield _struct(message.struct_value, out)
    elif kind == "list_value":
        yield _list(message.list_value, out)
    elif kind == "number_value":
        number = message.number_value
        if not math.isfinite(number):
            raise JsonWriteError(f"google.protobuf.Value cannot hold {number} in JSON")
        out.append(float.__repr__(number))
    elif kind == "string_value":
        out.append(_string(message.string_value))
    elif kind == "bool_value":
        out.append("true" if message.bool_value else "false")
    else:  # null_value, or no kind at all
        out.append("null")


def _key(name: str, index: int) -> str:
    return (", " if index else "") + _string(name) + ": "


def _string(text: str) -> str:
    return json.dumps(text)  # ensure_ascii, as json_format's own call
