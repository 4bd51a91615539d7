import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.rpc import status_pb2 as _status_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Status(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STATUS_UNSPECIFIED: _ClassVar[Status]
    SCHEDULED: _ClassVar[Status]
    STARTED: _ClassVar[Status]
    ENDED_MASK: _ClassVar[Status]
    SUCCESS: _ClassVar[Status]
    FAILURE: _ClassVar[Status]
    INFRA_FAILURE: _ClassVar[Status]
    CANCELED: _ClassVar[Status]
STATUS_UNSPECIFIED: Status
SCHEDULED: Status
STARTED: Status
ENDED_MASK: Status
SUCCESS: Status
FAILURE: Status
INFRA_FAILURE: Status
CANCELED: Status

class StatusDetails(_message.Message):
    __slots__ = ("resource_exhaustion", "timeout")
    class ResourceExhaustion(_message.Message):
        __slots__ = ()
        def __init__(self) -> None: ...
    class Timeout(_message.Message):
        __slots__ = ()
        def __init__(self) -> None: ...
    RESOURCE_EXHAUSTION_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    resource_exhaustion: StatusDetails.ResourceExhaustion
    timeout: StatusDetails.Timeout
    def __init__(self, resource_exhaustion: _Optional[_Union[StatusDetails.ResourceExhaustion, _Mapping]] = ..., timeout: _Optional[_Union[StatusDetails.Timeout, _Mapping]] = ...) -> None: ...

class TaskID(_message.Message):
    __slots__ = ("target", "id")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    target: str
    id: str
    def __init__(self, target: _Optional[str] = ..., id: _Optional[str] = ...) -> None: ...

class Task(_message.Message):
    __slots__ = ("id", "link", "status", "status_details", "summary_html", "details", "update_id", "summary_markdown")
    ID_FIELD_NUMBER: _ClassVar[int]
    LINK_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STATUS_DETAILS_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_HTML_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    UPDATE_ID_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_MARKDOWN_FIELD_NUMBER: _ClassVar[int]
    id: TaskID
    link: str
    status: Status
    status_details: StatusDetails
    summary_html: str
    details: _struct_pb2.Struct
    update_id: int
    summary_markdown: str
    def __init__(self, id: _Optional[_Union[TaskID, _Mapping]] = ..., link: _Optional[str] = ..., status: _Optional[_Union[Status, str]] = ..., status_details: _Optional[_Union[StatusDetails, _Mapping]] = ..., summary_html: _Optional[str] = ..., details: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., update_id: _Optional[int] = ..., summary_markdown: _Optional[str] = ...) -> None: ...

class BuilderID(_message.Message):
    __slots__ = ("project", "bucket", "builder")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    BUILDER_FIELD_NUMBER: _ClassVar[int]
    project: str
    bucket: str
    builder: str
    def __init__(self, project: _Optional[str] = ..., bucket: _Optional[str] = ..., builder: _Optional[str] = ...) -> None: ...

class StringPair(_message.Message):
    __slots__ = ("key", "value")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    key: str
    value: str
    def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class Log(_message.Message):
    __slots__ = ("name", "view_url", "url")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VIEW_URL_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    name: str
    view_url: str
    url: str
    def __init__(self, name: _Optional[str] = ..., view_url: _Optional[str] = ..., url: _Optional[str] = ...) -> None: ...

class Step(_message.Message):
    __slots__ = ("name", "start_time", "end_time", "status", "logs", "merge_build", "summary_markdown", "tags")
    class MergeBuild(_message.Message):
        __slots__ = ("from_logdog_stream", "legacy_global_namespace", "merge_output_properties_to")
        FROM_LOGDOG_STREAM_FIELD_NUMBER: _ClassVar[int]
        LEGACY_GLOBAL_NAMESPACE_FIELD_NUMBER: _ClassVar[int]
        MERGE_OUTPUT_PROPERTIES_TO_FIELD_NUMBER: _ClassVar[int]
        from_logdog_stream: str
        legacy_global_namespace: bool
        merge_output_properties_to: _containers.RepeatedScalarFieldContainer[str]
        def __init__(self, from_logdog_stream: _Optional[str] = ..., legacy_global_namespace: _Optional[bool] = ..., merge_output_properties_to: _Optional[_Iterable[str]] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LOGS_FIELD_NUMBER: _ClassVar[int]
    MERGE_BUILD_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_MARKDOWN_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    name: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    status: Status
    logs: _containers.RepeatedCompositeFieldContainer[Log]
    merge_build: Step.MergeBuild
    summary_markdown: str
    tags: _containers.RepeatedCompositeFieldContainer[StringPair]
    def __init__(self, name: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., status: _Optional[_Union[Status, str]] = ..., logs: _Optional[_Iterable[_Union[Log, _Mapping]]] = ..., merge_build: _Optional[_Union[Step.MergeBuild, _Mapping]] = ..., summary_markdown: _Optional[str] = ..., tags: _Optional[_Iterable[_Union[StringPair, _Mapping]]] = ...) -> None: ...

class Build(_message.Message):
    __slots__ = ("id", "builder", "number", "create_time", "start_time", "end_time", "update_time", "status", "input", "output", "steps", "infra", "tags", "summary_markdown", "status_details", "cancel_time", "cancellation_markdown")
    class Input(_message.Message):
        __slots__ = ("properties",)
        PROPERTIES_FIELD_NUMBER: _ClassVar[int]
        properties: _struct_pb2.Struct
        def __init__(self, properties: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...
    class Output(_message.Message):
        __slots__ = ("properties", "summary_markdown", "status", "status_details")
        PROPERTIES_FIELD_NUMBER: _ClassVar[int]
        SUMMARY_MARKDOWN_FIELD_NUMBER: _ClassVar[int]
        STATUS_FIELD_NUMBER: _ClassVar[int]
        STATUS_DETAILS_FIELD_NUMBER: _ClassVar[int]
        properties: _struct_pb2.Struct
        summary_markdown: str
        status: Status
        status_details: StatusDetails
        def __init__(self, properties: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., summary_markdown: _Optional[str] = ..., status: _Optional[_Union[Status, str]] = ..., status_details: _Optional[_Union[StatusDetails, _Mapping]] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    BUILDER_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    INFRA_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_MARKDOWN_FIELD_NUMBER: _ClassVar[int]
    STATUS_DETAILS_FIELD_NUMBER: _ClassVar[int]
    CANCEL_TIME_FIELD_NUMBER: _ClassVar[int]
    CANCELLATION_MARKDOWN_FIELD_NUMBER: _ClassVar[int]
    id: int
    builder: BuilderID
    number: int
    create_time: _timestamp_pb2.Timestamp
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    status: Status
    input: Build.Input
    output: Build.Output
    steps: _containers.RepeatedCompositeFieldContainer[Step]
    infra: BuildInfra
    tags: _containers.RepeatedCompositeFieldContainer[StringPair]
    summary_markdown: str
    status_details: StatusDetails
    cancel_time: _timestamp_pb2.Timestamp
    cancellation_markdown: str
    def __init__(self, id: _Optional[int] = ..., builder: _Optional[_Union[BuilderID, _Mapping]] = ..., number: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., status: _Optional[_Union[Status, str]] = ..., input: _Optional[_Union[Build.Input, _Mapping]] = ..., output: _Optional[_Union[Build.Output, _Mapping]] = ..., steps: _Optional[_Iterable[_Union[Step, _Mapping]]] = ..., infra: _Optional[_Union[BuildInfra, _Mapping]] = ..., tags: _Optional[_Iterable[_Union[StringPair, _Mapping]]] = ..., summary_markdown: _Optional[str] = ..., status_details: _Optional[_Union[StatusDetails, _Mapping]] = ..., cancel_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., cancellation_markdown: _Optional[str] = ...) -> None: ...

class BuildInfra(_message.Message):
    __slots__ = ("resultdb", "backend")
    class ResultDB(_message.Message):
        __slots__ = ("hostname", "invocation")
        HOSTNAME_FIELD_NUMBER: _ClassVar[int]
        INVOCATION_FIELD_NUMBER: _ClassVar[int]
        hostname: str
        invocation: str
        def __init__(self, hostname: _Optional[str] = ..., invocation: _Optional[str] = ...) -> None: ...
    class Backend(_message.Message):
        __slots__ = ("config", "task", "hostname")
        CONFIG_FIELD_NUMBER: _ClassVar[int]
        TASK_FIELD_NUMBER: _ClassVar[int]
        HOSTNAME_FIELD_NUMBER: _ClassVar[int]
        config: _struct_pb2.Struct
        task: Task
        hostname: str
        def __init__(self, config: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., task: _Optional[_Union[Task, _Mapping]] = ..., hostname: _Optional[str] = ...) -> None: ...
    RESULTDB_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    resultdb: BuildInfra.ResultDB
    backend: BuildInfra.Backend
    def __init__(self, resultdb: _Optional[_Union[BuildInfra.ResultDB, _Mapping]] = ..., backend: _Optional[_Union[BuildInfra.Backend, _Mapping]] = ...) -> None: ...

class FetchTasksRequest(_message.Message):
    __slots__ = ("task_ids",)
    TASK_IDS_FIELD_NUMBER: _ClassVar[int]
    task_ids: _containers.RepeatedCompositeFieldContainer[TaskID]
    def __init__(self, task_ids: _Optional[_Iterable[_Union[TaskID, _Mapping]]] = ...) -> None: ...

class FetchTasksResponse(_message.Message):
    __slots__ = ("responses",)
    class Response(_message.Message):
        __slots__ = ("task", "error")
        TASK_FIELD_NUMBER: _ClassVar[int]
        ERROR_FIELD_NUMBER: _ClassVar[int]
        task: Task
        error: _status_pb2.Status
        def __init__(self, task: _Optional[_Union[Task, _Mapping]] = ..., error: _Optional[_Union[_status_pb2.Status, _Mapping]] = ...) -> None: ...
    RESPONSES_FIELD_NUMBER: _ClassVar[int]
    responses: _containers.RepeatedCompositeFieldContainer[FetchTasksResponse.Response]
    def __init__(self, responses: _Optional[_Iterable[_Union[FetchTasksResponse.Response, _Mapping]]] = ...) -> None: ...

class RunTaskRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RunTaskResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CancelTasksRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CancelTasksResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ValidateConfigsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ValidateConfigsResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
