from buildsync.proto import buildbucket_pb2 as _buildbucket_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Compression(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ZLIB: _ClassVar[Compression]
    ZSTD: _ClassVar[Compression]
ZLIB: Compression
ZSTD: Compression

class BuildsV2PubSub(_message.Message):
    __slots__ = ("build", "build_large_fields", "compression", "build_large_fields_dropped")
    BUILD_FIELD_NUMBER: _ClassVar[int]
    BUILD_LARGE_FIELDS_FIELD_NUMBER: _ClassVar[int]
    COMPRESSION_FIELD_NUMBER: _ClassVar[int]
    BUILD_LARGE_FIELDS_DROPPED_FIELD_NUMBER: _ClassVar[int]
    build: _buildbucket_pb2.Build
    build_large_fields: bytes
    compression: Compression
    build_large_fields_dropped: bool
    def __init__(self, build: _Optional[_Union[_buildbucket_pb2.Build, _Mapping]] = ..., build_large_fields: _Optional[bytes] = ..., compression: _Optional[_Union[Compression, str]] = ..., build_large_fields_dropped: _Optional[bool] = ...) -> None: ...

class PubSubCallBack(_message.Message):
    __slots__ = ("build_pubsub", "user_data")
    BUILD_PUBSUB_FIELD_NUMBER: _ClassVar[int]
    USER_DATA_FIELD_NUMBER: _ClassVar[int]
    build_pubsub: BuildsV2PubSub
    user_data: bytes
    def __init__(self, build_pubsub: _Optional[_Union[BuildsV2PubSub, _Mapping]] = ..., user_data: _Optional[bytes] = ...) -> None: ...
