"""Messages with every field set, made by walking their descriptors.

A field added to a schema is filled without a new line here. Every value is
distinct within a fill (a counter), so a field copied into another's place
shows. Run r sets member r (modulo its size) of every oneof, so `runs_needed`
fills cover every member. Recursive types (Struct, Value, ListValue) are
filled to a bounded depth: past it a oneof takes a member that does not
recurse, and fields that would are left empty.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor
from google.protobuf.message import Message

FD = descriptor.FieldDescriptor

# How many times one message type may appear on the path from the root.
MAX_NESTING = 2


def _is_map(field: FD) -> bool:
    return field.type == FD.TYPE_MESSAGE and field.message_type.GetOptions().map_entry


def reachable(root: descriptor.Descriptor) -> list[descriptor.Descriptor]:
    """Every message type `root` reaches through its fields, map entries included, `root` first."""
    found: dict[str, descriptor.Descriptor] = {}
    pending = [root]
    while pending:
        message = pending.pop()
        if message.full_name in found:
            continue
        found[message.full_name] = message
        pending += [f.message_type for f in message.fields if f.type == FD.TYPE_MESSAGE]
    return list(found.values())


def runs_needed(*roots: descriptor.Descriptor) -> int:
    """How many fills it takes to set every member of every oneof the roots reach."""
    sizes = [len(o.fields) for root in roots for m in reachable(root) for o in m.oneofs]
    return max(sizes, default=1)


def every_field(*roots: descriptor.Descriptor) -> set[tuple[str, str]]:
    """(message type, field name) of every field the roots reach."""
    return {(m.full_name, f.name) for root in roots for m in reachable(root) for f in m.fields}


def fields_set(message: Message) -> set[tuple[str, str]]:
    """(message type, field name) of every field set in `message` or any message inside it."""
    found = set()
    for field, value in message.ListFields():
        found.add((message.DESCRIPTOR.full_name, field.name))
        if _is_map(field):
            entry = field.message_type
            found |= {(entry.full_name, "key"), (entry.full_name, "value")}
            if entry.fields_by_name["value"].type == FD.TYPE_MESSAGE:
                for item in value.values():
                    found |= fields_set(item)
        elif field.type == FD.TYPE_MESSAGE:
            for item in value if field.is_repeated else [value]:
                found |= fields_set(item)
    return found


def leaves(message: Message, prefix: str = "") -> dict[str, Any]:
    """Every value set in `message`, by path ("infra.backend.caches[0].name", "tags[1].key", "a[k]");
    an empty message that is present is a leaf with the value {}."""
    found: dict[str, Any] = {}
    for field, value in message.ListFields():
        path = f"{prefix}{field.name}"
        if _is_map(field):
            items = {f"{path}[{key}]": value[key] for key in value}
        elif field.is_repeated:
            items = {f"{path}[{index}]": item for index, item in enumerate(value)}
        else:
            items = {path: value}
        for item_path, item in items.items():
            if isinstance(item, Message):
                inner = leaves(item, item_path + ".")
                found.update(inner or {item_path: {}})
            else:
                found[item_path] = item
    return found


class Filler:
    """Fills messages; one Filler is one run (it picks the oneof members and counts the values)."""

    def __init__(self, run: int) -> None:
        self.run = run
        self.counter = 0

    def fill(self, message: Message, stack: tuple[str, ...] = ()) -> Message:
        message_type = message.DESCRIPTOR
        stack = (*stack, message_type.full_name)
        deep = stack.count(message_type.full_name) >= MAX_NESTING
        skipped = self._members_left_out(message_type, stack, deep)
        for field in message_type.fields:
            if field.name in skipped or (deep and self._recurses(field, stack)):
                continue
            self._set(message, field, stack)
        return message

    def _members_left_out(self, message_type: descriptor.Descriptor, stack, deep: bool) -> set[str]:
        left_out = set()
        for oneof in message_type.oneofs:
            members = [f for f in oneof.fields if not (deep and self._recurses(f, stack))] or list(oneof.fields)
            chosen = members[self.run % len(members)]
            left_out |= {f.name for f in oneof.fields if f is not chosen}
        return left_out

    @staticmethod
    def _recurses(field: FD, stack: tuple[str, ...]) -> bool:
        if field.type != FD.TYPE_MESSAGE:
            return False
        return any(m.full_name in stack for m in reachable(field.message_type))

    def _set(self, message: Message, field: FD, stack) -> None:
        target = getattr(message, field.name)
        if _is_map(field):
            entry = field.message_type.fields_by_name
            key, value_field = self._scalar(entry["key"]), entry["value"]
            if value_field.type == FD.TYPE_MESSAGE:
                self.fill(target[key], stack)
            else:
                target[key] = self._scalar(value_field)
        elif field.is_repeated and field.type == FD.TYPE_MESSAGE:
            self.fill(target.add(), stack)
        elif field.is_repeated:
            target.extend([self._scalar(field), self._scalar(field)])
        elif field.type == FD.TYPE_MESSAGE:
            target.SetInParent()  # an empty message (StatusDetails.Timeout) counts only when present
            self.fill(target, stack)
        else:
            setattr(message, field.name, self._scalar(field))

    def _scalar(self, field: FD) -> Any:
        self.counter += 1
        n = self.counter
        if field.type == FD.TYPE_ENUM:
            values = field.enum_type.values
            return values[1 + n % (len(values) - 1)].number if len(values) > 1 else values[0].number
        if field.type == FD.TYPE_BOOL:
            return True
        if field.type == FD.TYPE_STRING:
            # Delimited, so that no value is a substring of another (summaries are merged by containment).
            return f"<{field.name} {n}>"
        if field.type == FD.TYPE_BYTES:
            return f"<{field.name} {n}>".encode()
        if field.type in (FD.TYPE_DOUBLE, FD.TYPE_FLOAT):
            return n + 0.25
        return n  # every integer type; small, so valid as seconds and nanos too
