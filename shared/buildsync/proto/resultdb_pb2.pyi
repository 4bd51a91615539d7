from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FinalizeInvocationRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class Invocation(_message.Message):
    __slots__ = ("name", "state")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[Invocation.State]
        ACTIVE: _ClassVar[Invocation.State]
        FINALIZING: _ClassVar[Invocation.State]
        FINALIZED: _ClassVar[Invocation.State]
    STATE_UNSPECIFIED: Invocation.State
    ACTIVE: Invocation.State
    FINALIZING: Invocation.State
    FINALIZED: Invocation.State
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    name: str
    state: Invocation.State
    def __init__(self, name: _Optional[str] = ..., state: _Optional[_Union[Invocation.State, str]] = ...) -> None: ...
