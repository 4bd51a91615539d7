from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class CustomMetricDefinition(_message.Message):
    __slots__ = ("name", "predicates", "extra_fields")
    class ExtraFieldsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    PREDICATES_FIELD_NUMBER: _ClassVar[int]
    EXTRA_FIELDS_FIELD_NUMBER: _ClassVar[int]
    name: str
    predicates: _containers.RepeatedScalarFieldContainer[str]
    extra_fields: _containers.ScalarMap[str, str]
    def __init__(self, name: _Optional[str] = ..., predicates: _Optional[_Iterable[str]] = ..., extra_fields: _Optional[_Mapping[str, str]] = ...) -> None: ...
