from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ErrorDetails(_message.Message):
    __slots__ = ("response_too_big",)
    RESPONSE_TOO_BIG_FIELD_NUMBER: _ClassVar[int]
    response_too_big: ResponseTooBig
    def __init__(self, response_too_big: _Optional[_Union[ResponseTooBig, _Mapping]] = ...) -> None: ...

class ResponseTooBig(_message.Message):
    __slots__ = ("response_size", "response_limit")
    RESPONSE_SIZE_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_LIMIT_FIELD_NUMBER: _ClassVar[int]
    response_size: int
    response_limit: int
    def __init__(self, response_size: _Optional[int] = ..., response_limit: _Optional[int] = ...) -> None: ...
