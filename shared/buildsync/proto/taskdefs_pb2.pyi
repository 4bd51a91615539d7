import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from buildsync.proto import buildbucket_pb2 as _buildbucket_pb2
from buildsync.proto import project_config_pb2 as _project_config_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CancelSwarmingTaskGo(_message.Message):
    __slots__ = ("hostname", "task_id", "realm")
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    REALM_FIELD_NUMBER: _ClassVar[int]
    hostname: str
    task_id: str
    realm: str
    def __init__(self, hostname: _Optional[str] = ..., task_id: _Optional[str] = ..., realm: _Optional[str] = ...) -> None: ...

class CreateSwarmingBuildTask(_message.Message):
    __slots__ = ("build_id",)
    BUILD_ID_FIELD_NUMBER: _ClassVar[int]
    build_id: int
    def __init__(self, build_id: _Optional[int] = ...) -> None: ...

class CreateBackendBuildTask(_message.Message):
    __slots__ = ("build_id", "request_id", "DequeueTime")
    BUILD_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    DEQUEUETIME_FIELD_NUMBER: _ClassVar[int]
    build_id: int
    request_id: str
    DequeueTime: _timestamp_pb2.Timestamp
    def __init__(self, build_id: _Optional[int] = ..., request_id: _Optional[str] = ..., DequeueTime: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SyncSwarmingBuildTask(_message.Message):
    __slots__ = ("build_id", "generation")
    BUILD_ID_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    build_id: int
    generation: int
    def __init__(self, build_id: _Optional[int] = ..., generation: _Optional[int] = ...) -> None: ...

class ExportBigQueryGo(_message.Message):
    __slots__ = ("build_id",)
    BUILD_ID_FIELD_NUMBER: _ClassVar[int]
    build_id: int
    def __init__(self, build_id: _Optional[int] = ...) -> None: ...

class FinalizeResultDBGo(_message.Message):
    __slots__ = ("build_id",)
    BUILD_ID_FIELD_NUMBER: _ClassVar[int]
    build_id: int
    def __init__(self, build_id: _Optional[int] = ...) -> None: ...

class NotifyPubSubGo(_message.Message):
    __slots__ = ("build_id", "topic", "callback")
    BUILD_ID_FIELD_NUMBER: _ClassVar[int]
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    CALLBACK_FIELD_NUMBER: _ClassVar[int]
    build_id: int
    topic: _project_config_pb2.BuildbucketCfg.Topic
    callback: bool
    def __init__(self, build_id: _Optional[int] = ..., topic: _Optional[_Union[_project_config_pb2.BuildbucketCfg.Topic, _Mapping]] = ..., callback: _Optional[bool] = ...) -> None: ...

class CancelBuildTask(_message.Message):
    __slots__ = ("build_id",)
    BUILD_ID_FIELD_NUMBER: _ClassVar[int]
    build_id: int
    def __init__(self, build_id: _Optional[int] = ...) -> None: ...

class NotifyPubSubGoProxy(_message.Message):
    __slots__ = ("build_id", "project")
    BUILD_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    build_id: int
    project: str
    def __init__(self, build_id: _Optional[int] = ..., project: _Optional[str] = ...) -> None: ...

class SyncBuildsWithBackendTasks(_message.Message):
    __slots__ = ("backend", "project")
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    backend: str
    project: str
    def __init__(self, backend: _Optional[str] = ..., project: _Optional[str] = ...) -> None: ...

class CancelBackendTask(_message.Message):
    __slots__ = ("project", "target", "task_id")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    project: str
    target: str
    task_id: str
    def __init__(self, project: _Optional[str] = ..., target: _Optional[str] = ..., task_id: _Optional[str] = ...) -> None: ...

class CheckBuildLiveness(_message.Message):
    __slots__ = ("build_id", "heartbeat_timeout")
    BUILD_ID_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    build_id: int
    heartbeat_timeout: int
    def __init__(self, build_id: _Optional[int] = ..., heartbeat_timeout: _Optional[int] = ...) -> None: ...

class PushPendingBuildTask(_message.Message):
    __slots__ = ("build_id", "builder_id")
    BUILD_ID_FIELD_NUMBER: _ClassVar[int]
    BUILDER_ID_FIELD_NUMBER: _ClassVar[int]
    build_id: int
    builder_id: _buildbucket_pb2.BuilderID
    def __init__(self, build_id: _Optional[int] = ..., builder_id: _Optional[_Union[_buildbucket_pb2.BuilderID, _Mapping]] = ...) -> None: ...

class PopPendingBuildTask(_message.Message):
    __slots__ = ("build_id", "builder_id")
    BUILD_ID_FIELD_NUMBER: _ClassVar[int]
    BUILDER_ID_FIELD_NUMBER: _ClassVar[int]
    build_id: int
    builder_id: _buildbucket_pb2.BuilderID
    def __init__(self, build_id: _Optional[int] = ..., builder_id: _Optional[_Union[_buildbucket_pb2.BuilderID, _Mapping]] = ...) -> None: ...

class BatchCreateBackendBuildTasks(_message.Message):
    __slots__ = ("requests", "retries", "dequeue_time", "deduplication_key_prefix")
    class Request(_message.Message):
        __slots__ = ("build_id", "request_id")
        BUILD_ID_FIELD_NUMBER: _ClassVar[int]
        REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
        build_id: int
        request_id: str
        def __init__(self, build_id: _Optional[int] = ..., request_id: _Optional[str] = ...) -> None: ...
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    RETRIES_FIELD_NUMBER: _ClassVar[int]
    DEQUEUE_TIME_FIELD_NUMBER: _ClassVar[int]
    DEDUPLICATION_KEY_PREFIX_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[BatchCreateBackendBuildTasks.Request]
    retries: int
    dequeue_time: _timestamp_pb2.Timestamp
    deduplication_key_prefix: str
    def __init__(self, requests: _Optional[_Iterable[_Union[BatchCreateBackendBuildTasks.Request, _Mapping]]] = ..., retries: _Optional[int] = ..., dequeue_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., deduplication_key_prefix: _Optional[str] = ...) -> None: ...

class EndTurboCIStageAttempt(_message.Message):
    __slots__ = ("build_id",)
    BUILD_ID_FIELD_NUMBER: _ClassVar[int]
    build_id: int
    def __init__(self, build_id: _Optional[int] = ...) -> None: ...
