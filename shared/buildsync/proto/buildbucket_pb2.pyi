import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.rpc import status_pb2 as _status_pb2
from buildsync.proto import resultdb_pb2 as _resultdb_pb2
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

class Trinary(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    UNSET: _ClassVar[Trinary]
    YES: _ClassVar[Trinary]
    NO: _ClassVar[Trinary]
STATUS_UNSPECIFIED: Status
SCHEDULED: Status
STARTED: Status
ENDED_MASK: Status
SUCCESS: Status
FAILURE: Status
INFRA_FAILURE: Status
CANCELED: Status
UNSET: Trinary
YES: Trinary
NO: Trinary

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

class Executable(_message.Message):
    __slots__ = ("cipd_package", "cipd_version", "cmd", "wrapper")
    CIPD_PACKAGE_FIELD_NUMBER: _ClassVar[int]
    CIPD_VERSION_FIELD_NUMBER: _ClassVar[int]
    CMD_FIELD_NUMBER: _ClassVar[int]
    WRAPPER_FIELD_NUMBER: _ClassVar[int]
    cipd_package: str
    cipd_version: str
    cmd: _containers.RepeatedScalarFieldContainer[str]
    wrapper: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, cipd_package: _Optional[str] = ..., cipd_version: _Optional[str] = ..., cmd: _Optional[_Iterable[str]] = ..., wrapper: _Optional[_Iterable[str]] = ...) -> None: ...

class Log(_message.Message):
    __slots__ = ("name", "view_url", "url")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VIEW_URL_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    name: str
    view_url: str
    url: str
    def __init__(self, name: _Optional[str] = ..., view_url: _Optional[str] = ..., url: _Optional[str] = ...) -> None: ...

class GerritChange(_message.Message):
    __slots__ = ("host", "project", "change", "patchset")
    HOST_FIELD_NUMBER: _ClassVar[int]
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    PATCHSET_FIELD_NUMBER: _ClassVar[int]
    host: str
    project: str
    change: int
    patchset: int
    def __init__(self, host: _Optional[str] = ..., project: _Optional[str] = ..., change: _Optional[int] = ..., patchset: _Optional[int] = ...) -> None: ...

class GitilesCommit(_message.Message):
    __slots__ = ("host", "project", "id", "ref", "position")
    HOST_FIELD_NUMBER: _ClassVar[int]
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    REF_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    host: str
    project: str
    id: str
    ref: str
    position: int
    def __init__(self, host: _Optional[str] = ..., project: _Optional[str] = ..., id: _Optional[str] = ..., ref: _Optional[str] = ..., position: _Optional[int] = ...) -> None: ...

class StringPair(_message.Message):
    __slots__ = ("key", "value")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    key: str
    value: str
    def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class RequestedDimension(_message.Message):
    __slots__ = ("key", "value", "expiration")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    EXPIRATION_FIELD_NUMBER: _ClassVar[int]
    key: str
    value: str
    expiration: _duration_pb2.Duration
    def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ..., expiration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class CacheEntry(_message.Message):
    __slots__ = ("name", "path", "wait_for_warm_cache", "env_var")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    WAIT_FOR_WARM_CACHE_FIELD_NUMBER: _ClassVar[int]
    ENV_VAR_FIELD_NUMBER: _ClassVar[int]
    name: str
    path: str
    wait_for_warm_cache: _duration_pb2.Duration
    env_var: str
    def __init__(self, name: _Optional[str] = ..., path: _Optional[str] = ..., wait_for_warm_cache: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., env_var: _Optional[str] = ...) -> None: ...

class BuilderID(_message.Message):
    __slots__ = ("project", "bucket", "builder")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    BUILDER_FIELD_NUMBER: _ClassVar[int]
    project: str
    bucket: str
    builder: str
    def __init__(self, project: _Optional[str] = ..., bucket: _Optional[str] = ..., builder: _Optional[str] = ...) -> None: ...

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

class BuildTaskUpdate(_message.Message):
    __slots__ = ("build_id", "task")
    BUILD_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    build_id: str
    task: Task
    def __init__(self, build_id: _Optional[str] = ..., task: _Optional[_Union[Task, _Mapping]] = ...) -> None: ...

class Build(_message.Message):
    __slots__ = ("id", "builder", "builder_info", "number", "created_by", "view_url", "canceled_by", "create_time", "start_time", "end_time", "update_time", "cancel_time", "status", "summary_markdown", "cancellation_markdown", "critical", "status_details", "input", "output", "steps", "infra", "tags", "exe", "canary", "scheduling_timeout", "execution_timeout", "grace_period", "wait_for_capacity", "can_outlive_parent", "ancestor_ids", "retriable")
    class Input(_message.Message):
        __slots__ = ("properties", "gitiles_commit", "gerrit_changes", "experimental", "experiments")
        PROPERTIES_FIELD_NUMBER: _ClassVar[int]
        GITILES_COMMIT_FIELD_NUMBER: _ClassVar[int]
        GERRIT_CHANGES_FIELD_NUMBER: _ClassVar[int]
        EXPERIMENTAL_FIELD_NUMBER: _ClassVar[int]
        EXPERIMENTS_FIELD_NUMBER: _ClassVar[int]
        properties: _struct_pb2.Struct
        gitiles_commit: GitilesCommit
        gerrit_changes: _containers.RepeatedCompositeFieldContainer[GerritChange]
        experimental: bool
        experiments: _containers.RepeatedScalarFieldContainer[str]
        def __init__(self, properties: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., gitiles_commit: _Optional[_Union[GitilesCommit, _Mapping]] = ..., gerrit_changes: _Optional[_Iterable[_Union[GerritChange, _Mapping]]] = ..., experimental: _Optional[bool] = ..., experiments: _Optional[_Iterable[str]] = ...) -> None: ...
    class Output(_message.Message):
        __slots__ = ("properties", "gitiles_commit", "logs", "status", "status_details", "summary_html", "summary_markdown")
        PROPERTIES_FIELD_NUMBER: _ClassVar[int]
        GITILES_COMMIT_FIELD_NUMBER: _ClassVar[int]
        LOGS_FIELD_NUMBER: _ClassVar[int]
        STATUS_FIELD_NUMBER: _ClassVar[int]
        STATUS_DETAILS_FIELD_NUMBER: _ClassVar[int]
        SUMMARY_HTML_FIELD_NUMBER: _ClassVar[int]
        SUMMARY_MARKDOWN_FIELD_NUMBER: _ClassVar[int]
        properties: _struct_pb2.Struct
        gitiles_commit: GitilesCommit
        logs: _containers.RepeatedCompositeFieldContainer[Log]
        status: Status
        status_details: StatusDetails
        summary_html: str
        summary_markdown: str
        def __init__(self, properties: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., gitiles_commit: _Optional[_Union[GitilesCommit, _Mapping]] = ..., logs: _Optional[_Iterable[_Union[Log, _Mapping]]] = ..., status: _Optional[_Union[Status, str]] = ..., status_details: _Optional[_Union[StatusDetails, _Mapping]] = ..., summary_html: _Optional[str] = ..., summary_markdown: _Optional[str] = ...) -> None: ...
    class BuilderInfo(_message.Message):
        __slots__ = ("description",)
        DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
        description: str
        def __init__(self, description: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    BUILDER_FIELD_NUMBER: _ClassVar[int]
    BUILDER_INFO_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    VIEW_URL_FIELD_NUMBER: _ClassVar[int]
    CANCELED_BY_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    CANCEL_TIME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_MARKDOWN_FIELD_NUMBER: _ClassVar[int]
    CANCELLATION_MARKDOWN_FIELD_NUMBER: _ClassVar[int]
    CRITICAL_FIELD_NUMBER: _ClassVar[int]
    STATUS_DETAILS_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    INFRA_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    EXE_FIELD_NUMBER: _ClassVar[int]
    CANARY_FIELD_NUMBER: _ClassVar[int]
    SCHEDULING_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    GRACE_PERIOD_FIELD_NUMBER: _ClassVar[int]
    WAIT_FOR_CAPACITY_FIELD_NUMBER: _ClassVar[int]
    CAN_OUTLIVE_PARENT_FIELD_NUMBER: _ClassVar[int]
    ANCESTOR_IDS_FIELD_NUMBER: _ClassVar[int]
    RETRIABLE_FIELD_NUMBER: _ClassVar[int]
    id: int
    builder: BuilderID
    builder_info: Build.BuilderInfo
    number: int
    created_by: str
    view_url: str
    canceled_by: str
    create_time: _timestamp_pb2.Timestamp
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    cancel_time: _timestamp_pb2.Timestamp
    status: Status
    summary_markdown: str
    cancellation_markdown: str
    critical: Trinary
    status_details: StatusDetails
    input: Build.Input
    output: Build.Output
    steps: _containers.RepeatedCompositeFieldContainer[Step]
    infra: BuildInfra
    tags: _containers.RepeatedCompositeFieldContainer[StringPair]
    exe: Executable
    canary: bool
    scheduling_timeout: _duration_pb2.Duration
    execution_timeout: _duration_pb2.Duration
    grace_period: _duration_pb2.Duration
    wait_for_capacity: bool
    can_outlive_parent: bool
    ancestor_ids: _containers.RepeatedScalarFieldContainer[int]
    retriable: Trinary
    def __init__(self, id: _Optional[int] = ..., builder: _Optional[_Union[BuilderID, _Mapping]] = ..., builder_info: _Optional[_Union[Build.BuilderInfo, _Mapping]] = ..., number: _Optional[int] = ..., created_by: _Optional[str] = ..., view_url: _Optional[str] = ..., canceled_by: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., cancel_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., status: _Optional[_Union[Status, str]] = ..., summary_markdown: _Optional[str] = ..., cancellation_markdown: _Optional[str] = ..., critical: _Optional[_Union[Trinary, str]] = ..., status_details: _Optional[_Union[StatusDetails, _Mapping]] = ..., input: _Optional[_Union[Build.Input, _Mapping]] = ..., output: _Optional[_Union[Build.Output, _Mapping]] = ..., steps: _Optional[_Iterable[_Union[Step, _Mapping]]] = ..., infra: _Optional[_Union[BuildInfra, _Mapping]] = ..., tags: _Optional[_Iterable[_Union[StringPair, _Mapping]]] = ..., exe: _Optional[_Union[Executable, _Mapping]] = ..., canary: _Optional[bool] = ..., scheduling_timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., execution_timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., grace_period: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., wait_for_capacity: _Optional[bool] = ..., can_outlive_parent: _Optional[bool] = ..., ancestor_ids: _Optional[_Iterable[int]] = ..., retriable: _Optional[_Union[Trinary, str]] = ...) -> None: ...

class InputDataRef(_message.Message):
    __slots__ = ("cas", "cipd", "on_path")
    class CAS(_message.Message):
        __slots__ = ("cas_instance", "digest")
        class Digest(_message.Message):
            __slots__ = ("hash", "size_bytes")
            HASH_FIELD_NUMBER: _ClassVar[int]
            SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
            hash: str
            size_bytes: int
            def __init__(self, hash: _Optional[str] = ..., size_bytes: _Optional[int] = ...) -> None: ...
        CAS_INSTANCE_FIELD_NUMBER: _ClassVar[int]
        DIGEST_FIELD_NUMBER: _ClassVar[int]
        cas_instance: str
        digest: InputDataRef.CAS.Digest
        def __init__(self, cas_instance: _Optional[str] = ..., digest: _Optional[_Union[InputDataRef.CAS.Digest, _Mapping]] = ...) -> None: ...
    class CIPD(_message.Message):
        __slots__ = ("server", "specs")
        class PkgSpec(_message.Message):
            __slots__ = ("package", "version")
            PACKAGE_FIELD_NUMBER: _ClassVar[int]
            VERSION_FIELD_NUMBER: _ClassVar[int]
            package: str
            version: str
            def __init__(self, package: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...
        SERVER_FIELD_NUMBER: _ClassVar[int]
        SPECS_FIELD_NUMBER: _ClassVar[int]
        server: str
        specs: _containers.RepeatedCompositeFieldContainer[InputDataRef.CIPD.PkgSpec]
        def __init__(self, server: _Optional[str] = ..., specs: _Optional[_Iterable[_Union[InputDataRef.CIPD.PkgSpec, _Mapping]]] = ...) -> None: ...
    CAS_FIELD_NUMBER: _ClassVar[int]
    CIPD_FIELD_NUMBER: _ClassVar[int]
    ON_PATH_FIELD_NUMBER: _ClassVar[int]
    cas: InputDataRef.CAS
    cipd: InputDataRef.CIPD
    on_path: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, cas: _Optional[_Union[InputDataRef.CAS, _Mapping]] = ..., cipd: _Optional[_Union[InputDataRef.CIPD, _Mapping]] = ..., on_path: _Optional[_Iterable[str]] = ...) -> None: ...

class ResolvedDataRef(_message.Message):
    __slots__ = ("cas", "cipd")
    class Timing(_message.Message):
        __slots__ = ("fetch_duration", "install_duration")
        FETCH_DURATION_FIELD_NUMBER: _ClassVar[int]
        INSTALL_DURATION_FIELD_NUMBER: _ClassVar[int]
        fetch_duration: _duration_pb2.Duration
        install_duration: _duration_pb2.Duration
        def __init__(self, fetch_duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., install_duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...
    class CAS(_message.Message):
        __slots__ = ("timing",)
        TIMING_FIELD_NUMBER: _ClassVar[int]
        timing: ResolvedDataRef.Timing
        def __init__(self, timing: _Optional[_Union[ResolvedDataRef.Timing, _Mapping]] = ...) -> None: ...
    class CIPD(_message.Message):
        __slots__ = ("specs",)
        class PkgSpec(_message.Message):
            __slots__ = ("skipped", "package", "version", "was_cached", "timing")
            SKIPPED_FIELD_NUMBER: _ClassVar[int]
            PACKAGE_FIELD_NUMBER: _ClassVar[int]
            VERSION_FIELD_NUMBER: _ClassVar[int]
            WAS_CACHED_FIELD_NUMBER: _ClassVar[int]
            TIMING_FIELD_NUMBER: _ClassVar[int]
            skipped: bool
            package: str
            version: str
            was_cached: Trinary
            timing: ResolvedDataRef.Timing
            def __init__(self, skipped: _Optional[bool] = ..., package: _Optional[str] = ..., version: _Optional[str] = ..., was_cached: _Optional[_Union[Trinary, str]] = ..., timing: _Optional[_Union[ResolvedDataRef.Timing, _Mapping]] = ...) -> None: ...
        SPECS_FIELD_NUMBER: _ClassVar[int]
        specs: _containers.RepeatedCompositeFieldContainer[ResolvedDataRef.CIPD.PkgSpec]
        def __init__(self, specs: _Optional[_Iterable[_Union[ResolvedDataRef.CIPD.PkgSpec, _Mapping]]] = ...) -> None: ...
    CAS_FIELD_NUMBER: _ClassVar[int]
    CIPD_FIELD_NUMBER: _ClassVar[int]
    cas: ResolvedDataRef.CAS
    cipd: ResolvedDataRef.CIPD
    def __init__(self, cas: _Optional[_Union[ResolvedDataRef.CAS, _Mapping]] = ..., cipd: _Optional[_Union[ResolvedDataRef.CIPD, _Mapping]] = ...) -> None: ...

class BuildInfra(_message.Message):
    __slots__ = ("buildbucket", "swarming", "logdog", "recipe", "resultdb", "bbagent", "backend", "led", "turboci")
    class Buildbucket(_message.Message):
        __slots__ = ("service_config_revision", "requested_properties", "requested_dimensions", "hostname", "experiment_reasons", "agent_executable", "agent", "known_public_gerrit_hosts", "build_number")
        class ExperimentReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
            __slots__ = ()
            EXPERIMENT_REASON_UNSET: _ClassVar[BuildInfra.Buildbucket.ExperimentReason]
            EXPERIMENT_REASON_GLOBAL_DEFAULT: _ClassVar[BuildInfra.Buildbucket.ExperimentReason]
            EXPERIMENT_REASON_BUILDER_CONFIG: _ClassVar[BuildInfra.Buildbucket.ExperimentReason]
            EXPERIMENT_REASON_GLOBAL_MINIMUM: _ClassVar[BuildInfra.Buildbucket.ExperimentReason]
            EXPERIMENT_REASON_REQUESTED: _ClassVar[BuildInfra.Buildbucket.ExperimentReason]
            EXPERIMENT_REASON_GLOBAL_INACTIVE: _ClassVar[BuildInfra.Buildbucket.ExperimentReason]
            EXPERIMENT_REASON_TURBO_CI: _ClassVar[BuildInfra.Buildbucket.ExperimentReason]
        EXPERIMENT_REASON_UNSET: BuildInfra.Buildbucket.ExperimentReason
        EXPERIMENT_REASON_GLOBAL_DEFAULT: BuildInfra.Buildbucket.ExperimentReason
        EXPERIMENT_REASON_BUILDER_CONFIG: BuildInfra.Buildbucket.ExperimentReason
        EXPERIMENT_REASON_GLOBAL_MINIMUM: BuildInfra.Buildbucket.ExperimentReason
        EXPERIMENT_REASON_REQUESTED: BuildInfra.Buildbucket.ExperimentReason
        EXPERIMENT_REASON_GLOBAL_INACTIVE: BuildInfra.Buildbucket.ExperimentReason
        EXPERIMENT_REASON_TURBO_CI: BuildInfra.Buildbucket.ExperimentReason
        class Agent(_message.Message):
            __slots__ = ("input", "output", "source", "purposes", "cipd_client_cache", "cipd_packages_cache")
            class Purpose(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
                __slots__ = ()
                PURPOSE_UNSPECIFIED: _ClassVar[BuildInfra.Buildbucket.Agent.Purpose]
                PURPOSE_EXE_PAYLOAD: _ClassVar[BuildInfra.Buildbucket.Agent.Purpose]
                PURPOSE_BBAGENT_UTILITY: _ClassVar[BuildInfra.Buildbucket.Agent.Purpose]
            PURPOSE_UNSPECIFIED: BuildInfra.Buildbucket.Agent.Purpose
            PURPOSE_EXE_PAYLOAD: BuildInfra.Buildbucket.Agent.Purpose
            PURPOSE_BBAGENT_UTILITY: BuildInfra.Buildbucket.Agent.Purpose
            class Source(_message.Message):
                __slots__ = ("cipd",)
                class CIPD(_message.Message):
                    __slots__ = ("package", "version", "server", "resolved_instances")
                    class ResolvedInstancesEntry(_message.Message):
                        __slots__ = ("key", "value")
                        KEY_FIELD_NUMBER: _ClassVar[int]
                        VALUE_FIELD_NUMBER: _ClassVar[int]
                        key: str
                        value: str
                        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
                    PACKAGE_FIELD_NUMBER: _ClassVar[int]
                    VERSION_FIELD_NUMBER: _ClassVar[int]
                    SERVER_FIELD_NUMBER: _ClassVar[int]
                    RESOLVED_INSTANCES_FIELD_NUMBER: _ClassVar[int]
                    package: str
                    version: str
                    server: str
                    resolved_instances: _containers.ScalarMap[str, str]
                    def __init__(self, package: _Optional[str] = ..., version: _Optional[str] = ..., server: _Optional[str] = ..., resolved_instances: _Optional[_Mapping[str, str]] = ...) -> None: ...
                CIPD_FIELD_NUMBER: _ClassVar[int]
                cipd: BuildInfra.Buildbucket.Agent.Source.CIPD
                def __init__(self, cipd: _Optional[_Union[BuildInfra.Buildbucket.Agent.Source.CIPD, _Mapping]] = ...) -> None: ...
            class Input(_message.Message):
                __slots__ = ("data", "cipd_source")
                class DataEntry(_message.Message):
                    __slots__ = ("key", "value")
                    KEY_FIELD_NUMBER: _ClassVar[int]
                    VALUE_FIELD_NUMBER: _ClassVar[int]
                    key: str
                    value: InputDataRef
                    def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[InputDataRef, _Mapping]] = ...) -> None: ...
                class CipdSourceEntry(_message.Message):
                    __slots__ = ("key", "value")
                    KEY_FIELD_NUMBER: _ClassVar[int]
                    VALUE_FIELD_NUMBER: _ClassVar[int]
                    key: str
                    value: InputDataRef
                    def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[InputDataRef, _Mapping]] = ...) -> None: ...
                DATA_FIELD_NUMBER: _ClassVar[int]
                CIPD_SOURCE_FIELD_NUMBER: _ClassVar[int]
                data: _containers.MessageMap[str, InputDataRef]
                cipd_source: _containers.MessageMap[str, InputDataRef]
                def __init__(self, data: _Optional[_Mapping[str, InputDataRef]] = ..., cipd_source: _Optional[_Mapping[str, InputDataRef]] = ...) -> None: ...
            class Output(_message.Message):
                __slots__ = ("resolved_data", "status", "status_details", "summary_html", "agent_platform", "total_duration", "summary_markdown")
                class ResolvedDataEntry(_message.Message):
                    __slots__ = ("key", "value")
                    KEY_FIELD_NUMBER: _ClassVar[int]
                    VALUE_FIELD_NUMBER: _ClassVar[int]
                    key: str
                    value: ResolvedDataRef
                    def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[ResolvedDataRef, _Mapping]] = ...) -> None: ...
                RESOLVED_DATA_FIELD_NUMBER: _ClassVar[int]
                STATUS_FIELD_NUMBER: _ClassVar[int]
                STATUS_DETAILS_FIELD_NUMBER: _ClassVar[int]
                SUMMARY_HTML_FIELD_NUMBER: _ClassVar[int]
                AGENT_PLATFORM_FIELD_NUMBER: _ClassVar[int]
                TOTAL_DURATION_FIELD_NUMBER: _ClassVar[int]
                SUMMARY_MARKDOWN_FIELD_NUMBER: _ClassVar[int]
                resolved_data: _containers.MessageMap[str, ResolvedDataRef]
                status: Status
                status_details: StatusDetails
                summary_html: str
                agent_platform: str
                total_duration: _duration_pb2.Duration
                summary_markdown: str
                def __init__(self, resolved_data: _Optional[_Mapping[str, ResolvedDataRef]] = ..., status: _Optional[_Union[Status, str]] = ..., status_details: _Optional[_Union[StatusDetails, _Mapping]] = ..., summary_html: _Optional[str] = ..., agent_platform: _Optional[str] = ..., total_duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., summary_markdown: _Optional[str] = ...) -> None: ...
            class PurposesEntry(_message.Message):
                __slots__ = ("key", "value")
                KEY_FIELD_NUMBER: _ClassVar[int]
                VALUE_FIELD_NUMBER: _ClassVar[int]
                key: str
                value: BuildInfra.Buildbucket.Agent.Purpose
                def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[BuildInfra.Buildbucket.Agent.Purpose, str]] = ...) -> None: ...
            INPUT_FIELD_NUMBER: _ClassVar[int]
            OUTPUT_FIELD_NUMBER: _ClassVar[int]
            SOURCE_FIELD_NUMBER: _ClassVar[int]
            PURPOSES_FIELD_NUMBER: _ClassVar[int]
            CIPD_CLIENT_CACHE_FIELD_NUMBER: _ClassVar[int]
            CIPD_PACKAGES_CACHE_FIELD_NUMBER: _ClassVar[int]
            input: BuildInfra.Buildbucket.Agent.Input
            output: BuildInfra.Buildbucket.Agent.Output
            source: BuildInfra.Buildbucket.Agent.Source
            purposes: _containers.ScalarMap[str, BuildInfra.Buildbucket.Agent.Purpose]
            cipd_client_cache: CacheEntry
            cipd_packages_cache: CacheEntry
            def __init__(self, input: _Optional[_Union[BuildInfra.Buildbucket.Agent.Input, _Mapping]] = ..., output: _Optional[_Union[BuildInfra.Buildbucket.Agent.Output, _Mapping]] = ..., source: _Optional[_Union[BuildInfra.Buildbucket.Agent.Source, _Mapping]] = ..., purposes: _Optional[_Mapping[str, BuildInfra.Buildbucket.Agent.Purpose]] = ..., cipd_client_cache: _Optional[_Union[CacheEntry, _Mapping]] = ..., cipd_packages_cache: _Optional[_Union[CacheEntry, _Mapping]] = ...) -> None: ...
        class ExperimentReasonsEntry(_message.Message):
            __slots__ = ("key", "value")
            KEY_FIELD_NUMBER: _ClassVar[int]
            VALUE_FIELD_NUMBER: _ClassVar[int]
            key: str
            value: BuildInfra.Buildbucket.ExperimentReason
            def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[BuildInfra.Buildbucket.ExperimentReason, str]] = ...) -> None: ...
        class AgentExecutableEntry(_message.Message):
            __slots__ = ("key", "value")
            KEY_FIELD_NUMBER: _ClassVar[int]
            VALUE_FIELD_NUMBER: _ClassVar[int]
            key: str
            value: ResolvedDataRef
            def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[ResolvedDataRef, _Mapping]] = ...) -> None: ...
        SERVICE_CONFIG_REVISION_FIELD_NUMBER: _ClassVar[int]
        REQUESTED_PROPERTIES_FIELD_NUMBER: _ClassVar[int]
        REQUESTED_DIMENSIONS_FIELD_NUMBER: _ClassVar[int]
        HOSTNAME_FIELD_NUMBER: _ClassVar[int]
        EXPERIMENT_REASONS_FIELD_NUMBER: _ClassVar[int]
        AGENT_EXECUTABLE_FIELD_NUMBER: _ClassVar[int]
        AGENT_FIELD_NUMBER: _ClassVar[int]
        KNOWN_PUBLIC_GERRIT_HOSTS_FIELD_NUMBER: _ClassVar[int]
        BUILD_NUMBER_FIELD_NUMBER: _ClassVar[int]
        service_config_revision: str
        requested_properties: _struct_pb2.Struct
        requested_dimensions: _containers.RepeatedCompositeFieldContainer[RequestedDimension]
        hostname: str
        experiment_reasons: _containers.ScalarMap[str, BuildInfra.Buildbucket.ExperimentReason]
        agent_executable: _containers.MessageMap[str, ResolvedDataRef]
        agent: BuildInfra.Buildbucket.Agent
        known_public_gerrit_hosts: _containers.RepeatedScalarFieldContainer[str]
        build_number: bool
        def __init__(self, service_config_revision: _Optional[str] = ..., requested_properties: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., requested_dimensions: _Optional[_Iterable[_Union[RequestedDimension, _Mapping]]] = ..., hostname: _Optional[str] = ..., experiment_reasons: _Optional[_Mapping[str, BuildInfra.Buildbucket.ExperimentReason]] = ..., agent_executable: _Optional[_Mapping[str, ResolvedDataRef]] = ..., agent: _Optional[_Union[BuildInfra.Buildbucket.Agent, _Mapping]] = ..., known_public_gerrit_hosts: _Optional[_Iterable[str]] = ..., build_number: _Optional[bool] = ...) -> None: ...
    class Swarming(_message.Message):
        __slots__ = ("hostname", "task_id", "parent_run_id", "task_service_account", "priority", "task_dimensions", "bot_dimensions", "caches")
        class CacheEntry(_message.Message):
            __slots__ = ("name", "path", "wait_for_warm_cache", "env_var")
            NAME_FIELD_NUMBER: _ClassVar[int]
            PATH_FIELD_NUMBER: _ClassVar[int]
            WAIT_FOR_WARM_CACHE_FIELD_NUMBER: _ClassVar[int]
            ENV_VAR_FIELD_NUMBER: _ClassVar[int]
            name: str
            path: str
            wait_for_warm_cache: _duration_pb2.Duration
            env_var: str
            def __init__(self, name: _Optional[str] = ..., path: _Optional[str] = ..., wait_for_warm_cache: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., env_var: _Optional[str] = ...) -> None: ...
        HOSTNAME_FIELD_NUMBER: _ClassVar[int]
        TASK_ID_FIELD_NUMBER: _ClassVar[int]
        PARENT_RUN_ID_FIELD_NUMBER: _ClassVar[int]
        TASK_SERVICE_ACCOUNT_FIELD_NUMBER: _ClassVar[int]
        PRIORITY_FIELD_NUMBER: _ClassVar[int]
        TASK_DIMENSIONS_FIELD_NUMBER: _ClassVar[int]
        BOT_DIMENSIONS_FIELD_NUMBER: _ClassVar[int]
        CACHES_FIELD_NUMBER: _ClassVar[int]
        hostname: str
        task_id: str
        parent_run_id: str
        task_service_account: str
        priority: int
        task_dimensions: _containers.RepeatedCompositeFieldContainer[RequestedDimension]
        bot_dimensions: _containers.RepeatedCompositeFieldContainer[StringPair]
        caches: _containers.RepeatedCompositeFieldContainer[BuildInfra.Swarming.CacheEntry]
        def __init__(self, hostname: _Optional[str] = ..., task_id: _Optional[str] = ..., parent_run_id: _Optional[str] = ..., task_service_account: _Optional[str] = ..., priority: _Optional[int] = ..., task_dimensions: _Optional[_Iterable[_Union[RequestedDimension, _Mapping]]] = ..., bot_dimensions: _Optional[_Iterable[_Union[StringPair, _Mapping]]] = ..., caches: _Optional[_Iterable[_Union[BuildInfra.Swarming.CacheEntry, _Mapping]]] = ...) -> None: ...
    class LogDog(_message.Message):
        __slots__ = ("hostname", "project", "prefix")
        HOSTNAME_FIELD_NUMBER: _ClassVar[int]
        PROJECT_FIELD_NUMBER: _ClassVar[int]
        PREFIX_FIELD_NUMBER: _ClassVar[int]
        hostname: str
        project: str
        prefix: str
        def __init__(self, hostname: _Optional[str] = ..., project: _Optional[str] = ..., prefix: _Optional[str] = ...) -> None: ...
    class Recipe(_message.Message):
        __slots__ = ("cipd_package", "name")
        CIPD_PACKAGE_FIELD_NUMBER: _ClassVar[int]
        NAME_FIELD_NUMBER: _ClassVar[int]
        cipd_package: str
        name: str
        def __init__(self, cipd_package: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...
    class ResultDB(_message.Message):
        __slots__ = ("hostname", "invocation", "enable", "bq_exports", "history_options")
        HOSTNAME_FIELD_NUMBER: _ClassVar[int]
        INVOCATION_FIELD_NUMBER: _ClassVar[int]
        ENABLE_FIELD_NUMBER: _ClassVar[int]
        BQ_EXPORTS_FIELD_NUMBER: _ClassVar[int]
        HISTORY_OPTIONS_FIELD_NUMBER: _ClassVar[int]
        hostname: str
        invocation: str
        enable: bool
        bq_exports: _containers.RepeatedCompositeFieldContainer[_resultdb_pb2.BigQueryExport]
        history_options: _resultdb_pb2.HistoryOptions
        def __init__(self, hostname: _Optional[str] = ..., invocation: _Optional[str] = ..., enable: _Optional[bool] = ..., bq_exports: _Optional[_Iterable[_Union[_resultdb_pb2.BigQueryExport, _Mapping]]] = ..., history_options: _Optional[_Union[_resultdb_pb2.HistoryOptions, _Mapping]] = ...) -> None: ...
    class Led(_message.Message):
        __slots__ = ("shadowed_bucket",)
        SHADOWED_BUCKET_FIELD_NUMBER: _ClassVar[int]
        shadowed_bucket: str
        def __init__(self, shadowed_bucket: _Optional[str] = ...) -> None: ...
    class BBAgent(_message.Message):
        __slots__ = ("payload_path", "cache_dir", "known_public_gerrit_hosts", "input")
        class Input(_message.Message):
            __slots__ = ("cipd_packages",)
            class CIPDPackage(_message.Message):
                __slots__ = ("name", "version", "server", "path")
                NAME_FIELD_NUMBER: _ClassVar[int]
                VERSION_FIELD_NUMBER: _ClassVar[int]
                SERVER_FIELD_NUMBER: _ClassVar[int]
                PATH_FIELD_NUMBER: _ClassVar[int]
                name: str
                version: str
                server: str
                path: str
                def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., server: _Optional[str] = ..., path: _Optional[str] = ...) -> None: ...
            CIPD_PACKAGES_FIELD_NUMBER: _ClassVar[int]
            cipd_packages: _containers.RepeatedCompositeFieldContainer[BuildInfra.BBAgent.Input.CIPDPackage]
            def __init__(self, cipd_packages: _Optional[_Iterable[_Union[BuildInfra.BBAgent.Input.CIPDPackage, _Mapping]]] = ...) -> None: ...
        PAYLOAD_PATH_FIELD_NUMBER: _ClassVar[int]
        CACHE_DIR_FIELD_NUMBER: _ClassVar[int]
        KNOWN_PUBLIC_GERRIT_HOSTS_FIELD_NUMBER: _ClassVar[int]
        INPUT_FIELD_NUMBER: _ClassVar[int]
        payload_path: str
        cache_dir: str
        known_public_gerrit_hosts: _containers.RepeatedScalarFieldContainer[str]
        input: BuildInfra.BBAgent.Input
        def __init__(self, payload_path: _Optional[str] = ..., cache_dir: _Optional[str] = ..., known_public_gerrit_hosts: _Optional[_Iterable[str]] = ..., input: _Optional[_Union[BuildInfra.BBAgent.Input, _Mapping]] = ...) -> None: ...
    class Backend(_message.Message):
        __slots__ = ("config", "task", "caches", "task_dimensions", "hostname")
        CONFIG_FIELD_NUMBER: _ClassVar[int]
        TASK_FIELD_NUMBER: _ClassVar[int]
        CACHES_FIELD_NUMBER: _ClassVar[int]
        TASK_DIMENSIONS_FIELD_NUMBER: _ClassVar[int]
        HOSTNAME_FIELD_NUMBER: _ClassVar[int]
        config: _struct_pb2.Struct
        task: Task
        caches: _containers.RepeatedCompositeFieldContainer[CacheEntry]
        task_dimensions: _containers.RepeatedCompositeFieldContainer[RequestedDimension]
        hostname: str
        def __init__(self, config: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., task: _Optional[_Union[Task, _Mapping]] = ..., caches: _Optional[_Iterable[_Union[CacheEntry, _Mapping]]] = ..., task_dimensions: _Optional[_Iterable[_Union[RequestedDimension, _Mapping]]] = ..., hostname: _Optional[str] = ...) -> None: ...
    class TurboCI(_message.Message):
        __slots__ = ("hostname", "stage_attempt_id")
        HOSTNAME_FIELD_NUMBER: _ClassVar[int]
        STAGE_ATTEMPT_ID_FIELD_NUMBER: _ClassVar[int]
        hostname: str
        stage_attempt_id: str
        def __init__(self, hostname: _Optional[str] = ..., stage_attempt_id: _Optional[str] = ...) -> None: ...
    BUILDBUCKET_FIELD_NUMBER: _ClassVar[int]
    SWARMING_FIELD_NUMBER: _ClassVar[int]
    LOGDOG_FIELD_NUMBER: _ClassVar[int]
    RECIPE_FIELD_NUMBER: _ClassVar[int]
    RESULTDB_FIELD_NUMBER: _ClassVar[int]
    BBAGENT_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    LED_FIELD_NUMBER: _ClassVar[int]
    TURBOCI_FIELD_NUMBER: _ClassVar[int]
    buildbucket: BuildInfra.Buildbucket
    swarming: BuildInfra.Swarming
    logdog: BuildInfra.LogDog
    recipe: BuildInfra.Recipe
    resultdb: BuildInfra.ResultDB
    bbagent: BuildInfra.BBAgent
    backend: BuildInfra.Backend
    led: BuildInfra.Led
    turboci: BuildInfra.TurboCI
    def __init__(self, buildbucket: _Optional[_Union[BuildInfra.Buildbucket, _Mapping]] = ..., swarming: _Optional[_Union[BuildInfra.Swarming, _Mapping]] = ..., logdog: _Optional[_Union[BuildInfra.LogDog, _Mapping]] = ..., recipe: _Optional[_Union[BuildInfra.Recipe, _Mapping]] = ..., resultdb: _Optional[_Union[BuildInfra.ResultDB, _Mapping]] = ..., bbagent: _Optional[_Union[BuildInfra.BBAgent, _Mapping]] = ..., backend: _Optional[_Union[BuildInfra.Backend, _Mapping]] = ..., led: _Optional[_Union[BuildInfra.Led, _Mapping]] = ..., turboci: _Optional[_Union[BuildInfra.TurboCI, _Mapping]] = ...) -> None: ...

class BuildSecrets(_message.Message):
    __slots__ = ("build_token", "resultdb_invocation_update_token", "start_build_token")
    BUILD_TOKEN_FIELD_NUMBER: _ClassVar[int]
    RESULTDB_INVOCATION_UPDATE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    START_BUILD_TOKEN_FIELD_NUMBER: _ClassVar[int]
    build_token: str
    resultdb_invocation_update_token: str
    start_build_token: str
    def __init__(self, build_token: _Optional[str] = ..., resultdb_invocation_update_token: _Optional[str] = ..., start_build_token: _Optional[str] = ...) -> None: ...

class RunTaskRequest(_message.Message):
    __slots__ = ("target", "register_backend_task_token", "realm", "agent", "agent_args", "secrets", "buildbucket_host", "build_id", "dimensions", "start_deadline", "execution_timeout", "grace_period", "caches", "backend_config", "experiments", "request_id", "pubsub_topic")
    class AgentExecutable(_message.Message):
        __slots__ = ("source",)
        class AgentSource(_message.Message):
            __slots__ = ("sha256", "size_bytes", "url")
            SHA256_FIELD_NUMBER: _ClassVar[int]
            SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
            URL_FIELD_NUMBER: _ClassVar[int]
            sha256: str
            size_bytes: int
            url: str
            def __init__(self, sha256: _Optional[str] = ..., size_bytes: _Optional[int] = ..., url: _Optional[str] = ...) -> None: ...
        class SourceEntry(_message.Message):
            __slots__ = ("key", "value")
            KEY_FIELD_NUMBER: _ClassVar[int]
            VALUE_FIELD_NUMBER: _ClassVar[int]
            key: str
            value: RunTaskRequest.AgentExecutable.AgentSource
            def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[RunTaskRequest.AgentExecutable.AgentSource, _Mapping]] = ...) -> None: ...
        SOURCE_FIELD_NUMBER: _ClassVar[int]
        source: _containers.MessageMap[str, RunTaskRequest.AgentExecutable.AgentSource]
        def __init__(self, source: _Optional[_Mapping[str, RunTaskRequest.AgentExecutable.AgentSource]] = ...) -> None: ...
    TARGET_FIELD_NUMBER: _ClassVar[int]
    REGISTER_BACKEND_TASK_TOKEN_FIELD_NUMBER: _ClassVar[int]
    REALM_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    AGENT_ARGS_FIELD_NUMBER: _ClassVar[int]
    SECRETS_FIELD_NUMBER: _ClassVar[int]
    BUILDBUCKET_HOST_FIELD_NUMBER: _ClassVar[int]
    BUILD_ID_FIELD_NUMBER: _ClassVar[int]
    DIMENSIONS_FIELD_NUMBER: _ClassVar[int]
    START_DEADLINE_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    GRACE_PERIOD_FIELD_NUMBER: _ClassVar[int]
    CACHES_FIELD_NUMBER: _ClassVar[int]
    BACKEND_CONFIG_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENTS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PUBSUB_TOPIC_FIELD_NUMBER: _ClassVar[int]
    target: str
    register_backend_task_token: str
    realm: str
    agent: RunTaskRequest.AgentExecutable
    agent_args: _containers.RepeatedScalarFieldContainer[str]
    secrets: BuildSecrets
    buildbucket_host: str
    build_id: str
    dimensions: _containers.RepeatedCompositeFieldContainer[RequestedDimension]
    start_deadline: _timestamp_pb2.Timestamp
    execution_timeout: _duration_pb2.Duration
    grace_period: _duration_pb2.Duration
    caches: _containers.RepeatedCompositeFieldContainer[CacheEntry]
    backend_config: _struct_pb2.Struct
    experiments: _containers.RepeatedScalarFieldContainer[str]
    request_id: str
    pubsub_topic: str
    def __init__(self, target: _Optional[str] = ..., register_backend_task_token: _Optional[str] = ..., realm: _Optional[str] = ..., agent: _Optional[_Union[RunTaskRequest.AgentExecutable, _Mapping]] = ..., agent_args: _Optional[_Iterable[str]] = ..., secrets: _Optional[_Union[BuildSecrets, _Mapping]] = ..., buildbucket_host: _Optional[str] = ..., build_id: _Optional[str] = ..., dimensions: _Optional[_Iterable[_Union[RequestedDimension, _Mapping]]] = ..., start_deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., execution_timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., grace_period: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., caches: _Optional[_Iterable[_Union[CacheEntry, _Mapping]]] = ..., backend_config: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., experiments: _Optional[_Iterable[str]] = ..., request_id: _Optional[str] = ..., pubsub_topic: _Optional[str] = ...) -> None: ...

class RunTaskResponse(_message.Message):
    __slots__ = ("task",)
    TASK_FIELD_NUMBER: _ClassVar[int]
    task: Task
    def __init__(self, task: _Optional[_Union[Task, _Mapping]] = ...) -> None: ...

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

class CancelTasksRequest(_message.Message):
    __slots__ = ("task_ids",)
    TASK_IDS_FIELD_NUMBER: _ClassVar[int]
    task_ids: _containers.RepeatedCompositeFieldContainer[TaskID]
    def __init__(self, task_ids: _Optional[_Iterable[_Union[TaskID, _Mapping]]] = ...) -> None: ...

class CancelTasksResponse(_message.Message):
    __slots__ = ("tasks", "responses")
    class Response(_message.Message):
        __slots__ = ("task", "error")
        TASK_FIELD_NUMBER: _ClassVar[int]
        ERROR_FIELD_NUMBER: _ClassVar[int]
        task: Task
        error: _status_pb2.Status
        def __init__(self, task: _Optional[_Union[Task, _Mapping]] = ..., error: _Optional[_Union[_status_pb2.Status, _Mapping]] = ...) -> None: ...
    TASKS_FIELD_NUMBER: _ClassVar[int]
    RESPONSES_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[Task]
    responses: _containers.RepeatedCompositeFieldContainer[CancelTasksResponse.Response]
    def __init__(self, tasks: _Optional[_Iterable[_Union[Task, _Mapping]]] = ..., responses: _Optional[_Iterable[_Union[CancelTasksResponse.Response, _Mapping]]] = ...) -> None: ...

class ValidateConfigsRequest(_message.Message):
    __slots__ = ("configs",)
    class ConfigContext(_message.Message):
        __slots__ = ("target", "config_json")
        TARGET_FIELD_NUMBER: _ClassVar[int]
        CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
        target: str
        config_json: _struct_pb2.Struct
        def __init__(self, target: _Optional[str] = ..., config_json: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...
    CONFIGS_FIELD_NUMBER: _ClassVar[int]
    configs: _containers.RepeatedCompositeFieldContainer[ValidateConfigsRequest.ConfigContext]
    def __init__(self, configs: _Optional[_Iterable[_Union[ValidateConfigsRequest.ConfigContext, _Mapping]]] = ...) -> None: ...

class ValidateConfigsResponse(_message.Message):
    __slots__ = ("config_errors",)
    class ErrorDetail(_message.Message):
        __slots__ = ("index", "error")
        INDEX_FIELD_NUMBER: _ClassVar[int]
        ERROR_FIELD_NUMBER: _ClassVar[int]
        index: int
        error: str
        def __init__(self, index: _Optional[int] = ..., error: _Optional[str] = ...) -> None: ...
    CONFIG_ERRORS_FIELD_NUMBER: _ClassVar[int]
    config_errors: _containers.RepeatedCompositeFieldContainer[ValidateConfigsResponse.ErrorDetail]
    def __init__(self, config_errors: _Optional[_Iterable[_Union[ValidateConfigsResponse.ErrorDetail, _Mapping]]] = ...) -> None: ...
