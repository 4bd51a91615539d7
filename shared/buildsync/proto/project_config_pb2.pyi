from buildsync.proto import notification_pb2 as _notification_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

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

class BuilderConfig(_message.Message):
    __slots__ = ("max_concurrent_builds",)
    class CacheEntry(_message.Message):
        __slots__ = ("name", "path", "wait_for_warm_cache_secs", "env_var")
        NAME_FIELD_NUMBER: _ClassVar[int]
        PATH_FIELD_NUMBER: _ClassVar[int]
        WAIT_FOR_WARM_CACHE_SECS_FIELD_NUMBER: _ClassVar[int]
        ENV_VAR_FIELD_NUMBER: _ClassVar[int]
        name: str
        path: str
        wait_for_warm_cache_secs: int
        env_var: str
        def __init__(self, name: _Optional[str] = ..., path: _Optional[str] = ..., wait_for_warm_cache_secs: _Optional[int] = ..., env_var: _Optional[str] = ...) -> None: ...
    MAX_CONCURRENT_BUILDS_FIELD_NUMBER: _ClassVar[int]
    max_concurrent_builds: int
    def __init__(self, max_concurrent_builds: _Optional[int] = ...) -> None: ...

class BuildbucketCfg(_message.Message):
    __slots__ = ("common_config",)
    class Topic(_message.Message):
        __slots__ = ("name", "compression")
        NAME_FIELD_NUMBER: _ClassVar[int]
        COMPRESSION_FIELD_NUMBER: _ClassVar[int]
        name: str
        compression: _notification_pb2.Compression
        def __init__(self, name: _Optional[str] = ..., compression: _Optional[_Union[_notification_pb2.Compression, str]] = ...) -> None: ...
    class CommonConfig(_message.Message):
        __slots__ = ("builds_notification_topics",)
        BUILDS_NOTIFICATION_TOPICS_FIELD_NUMBER: _ClassVar[int]
        builds_notification_topics: _containers.RepeatedCompositeFieldContainer[BuildbucketCfg.Topic]
        def __init__(self, builds_notification_topics: _Optional[_Iterable[_Union[BuildbucketCfg.Topic, _Mapping]]] = ...) -> None: ...
    COMMON_CONFIG_FIELD_NUMBER: _ClassVar[int]
    common_config: BuildbucketCfg.CommonConfig
    def __init__(self, common_config: _Optional[_Union[BuildbucketCfg.CommonConfig, _Mapping]] = ...) -> None: ...
