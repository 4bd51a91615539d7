import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from buildsync.proto import project_config_pb2 as _project_config_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CustomMetricBase(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CUSTOM_METRIC_BASE_UNSET: _ClassVar[CustomMetricBase]
    CUSTOM_METRIC_BASE_CREATED: _ClassVar[CustomMetricBase]
    CUSTOM_METRIC_BASE_STARTED: _ClassVar[CustomMetricBase]
    CUSTOM_METRIC_BASE_COMPLETED: _ClassVar[CustomMetricBase]
    CUSTOM_METRIC_BASE_CYCLE_DURATIONS: _ClassVar[CustomMetricBase]
    CUSTOM_METRIC_BASE_RUN_DURATIONS: _ClassVar[CustomMetricBase]
    CUSTOM_METRIC_BASE_SCHEDULING_DURATIONS: _ClassVar[CustomMetricBase]
    CUSTOM_METRIC_BASE_MAX_AGE_SCHEDULED: _ClassVar[CustomMetricBase]
    CUSTOM_METRIC_BASE_COUNT: _ClassVar[CustomMetricBase]
    CUSTOM_METRIC_BASE_CONSECUTIVE_FAILURE_COUNT: _ClassVar[CustomMetricBase]
    CUSTOM_METRIC_BASE_AGE: _ClassVar[CustomMetricBase]
CUSTOM_METRIC_BASE_UNSET: CustomMetricBase
CUSTOM_METRIC_BASE_CREATED: CustomMetricBase
CUSTOM_METRIC_BASE_STARTED: CustomMetricBase
CUSTOM_METRIC_BASE_COMPLETED: CustomMetricBase
CUSTOM_METRIC_BASE_CYCLE_DURATIONS: CustomMetricBase
CUSTOM_METRIC_BASE_RUN_DURATIONS: CustomMetricBase
CUSTOM_METRIC_BASE_SCHEDULING_DURATIONS: CustomMetricBase
CUSTOM_METRIC_BASE_MAX_AGE_SCHEDULED: CustomMetricBase
CUSTOM_METRIC_BASE_COUNT: CustomMetricBase
CUSTOM_METRIC_BASE_CONSECUTIVE_FAILURE_COUNT: CustomMetricBase
CUSTOM_METRIC_BASE_AGE: CustomMetricBase

class SettingsCfg(_message.Message):
    __slots__ = ("swarming", "logdog", "known_public_gerrit_hosts", "resultdb", "experiment", "cipd", "backends", "swarming_backends", "custom_metrics")
    class SwarmingBackendsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SWARMING_FIELD_NUMBER: _ClassVar[int]
    LOGDOG_FIELD_NUMBER: _ClassVar[int]
    KNOWN_PUBLIC_GERRIT_HOSTS_FIELD_NUMBER: _ClassVar[int]
    RESULTDB_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    CIPD_FIELD_NUMBER: _ClassVar[int]
    BACKENDS_FIELD_NUMBER: _ClassVar[int]
    SWARMING_BACKENDS_FIELD_NUMBER: _ClassVar[int]
    CUSTOM_METRICS_FIELD_NUMBER: _ClassVar[int]
    swarming: SwarmingSettings
    logdog: LogDogSettings
    known_public_gerrit_hosts: _containers.RepeatedScalarFieldContainer[str]
    resultdb: ResultDBSettings
    experiment: ExperimentSettings
    cipd: CipdSettings
    backends: _containers.RepeatedCompositeFieldContainer[BackendSetting]
    swarming_backends: _containers.ScalarMap[str, str]
    custom_metrics: _containers.RepeatedCompositeFieldContainer[CustomMetric]
    def __init__(self, swarming: _Optional[_Union[SwarmingSettings, _Mapping]] = ..., logdog: _Optional[_Union[LogDogSettings, _Mapping]] = ..., known_public_gerrit_hosts: _Optional[_Iterable[str]] = ..., resultdb: _Optional[_Union[ResultDBSettings, _Mapping]] = ..., experiment: _Optional[_Union[ExperimentSettings, _Mapping]] = ..., cipd: _Optional[_Union[CipdSettings, _Mapping]] = ..., backends: _Optional[_Iterable[_Union[BackendSetting, _Mapping]]] = ..., swarming_backends: _Optional[_Mapping[str, str]] = ..., custom_metrics: _Optional[_Iterable[_Union[CustomMetric, _Mapping]]] = ...) -> None: ...

class BackendSetting(_message.Message):
    __slots__ = ("target", "hostname", "pubsub_id", "build_sync_setting", "full_mode", "lite_mode", "task_creating_timeout")
    class BuildSyncSetting(_message.Message):
        __slots__ = ("shards", "sync_interval_seconds")
        SHARDS_FIELD_NUMBER: _ClassVar[int]
        SYNC_INTERVAL_SECONDS_FIELD_NUMBER: _ClassVar[int]
        shards: int
        sync_interval_seconds: int
        def __init__(self, shards: _Optional[int] = ..., sync_interval_seconds: _Optional[int] = ...) -> None: ...
    class FullMode(_message.Message):
        __slots__ = ("pubsub_id", "build_sync_setting", "redirect_to_task_page", "succeed_build_if_task_is_succeeded")
        PUBSUB_ID_FIELD_NUMBER: _ClassVar[int]
        BUILD_SYNC_SETTING_FIELD_NUMBER: _ClassVar[int]
        REDIRECT_TO_TASK_PAGE_FIELD_NUMBER: _ClassVar[int]
        SUCCEED_BUILD_IF_TASK_IS_SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
        pubsub_id: str
        build_sync_setting: BackendSetting.BuildSyncSetting
        redirect_to_task_page: bool
        succeed_build_if_task_is_succeeded: bool
        def __init__(self, pubsub_id: _Optional[str] = ..., build_sync_setting: _Optional[_Union[BackendSetting.BuildSyncSetting, _Mapping]] = ..., redirect_to_task_page: _Optional[bool] = ..., succeed_build_if_task_is_succeeded: _Optional[bool] = ...) -> None: ...
    class LiteMode(_message.Message):
        __slots__ = ()
        def __init__(self) -> None: ...
    TARGET_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    PUBSUB_ID_FIELD_NUMBER: _ClassVar[int]
    BUILD_SYNC_SETTING_FIELD_NUMBER: _ClassVar[int]
    FULL_MODE_FIELD_NUMBER: _ClassVar[int]
    LITE_MODE_FIELD_NUMBER: _ClassVar[int]
    TASK_CREATING_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    target: str
    hostname: str
    pubsub_id: str
    build_sync_setting: BackendSetting.BuildSyncSetting
    full_mode: BackendSetting.FullMode
    lite_mode: BackendSetting.LiteMode
    task_creating_timeout: _duration_pb2.Duration
    def __init__(self, target: _Optional[str] = ..., hostname: _Optional[str] = ..., pubsub_id: _Optional[str] = ..., build_sync_setting: _Optional[_Union[BackendSetting.BuildSyncSetting, _Mapping]] = ..., full_mode: _Optional[_Union[BackendSetting.FullMode, _Mapping]] = ..., lite_mode: _Optional[_Union[BackendSetting.LiteMode, _Mapping]] = ..., task_creating_timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class SwarmingSettings(_message.Message):
    __slots__ = ("milo_hostname", "global_caches", "user_packages", "kitchen_package", "bbagent_package", "alternative_agent_packages", "bbagent_utility_packages")
    class Package(_message.Message):
        __slots__ = ("package_name", "version", "version_canary", "builders", "subdir", "omit_on_experiment", "include_on_experiment")
        PACKAGE_NAME_FIELD_NUMBER: _ClassVar[int]
        VERSION_FIELD_NUMBER: _ClassVar[int]
        VERSION_CANARY_FIELD_NUMBER: _ClassVar[int]
        BUILDERS_FIELD_NUMBER: _ClassVar[int]
        SUBDIR_FIELD_NUMBER: _ClassVar[int]
        OMIT_ON_EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
        INCLUDE_ON_EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
        package_name: str
        version: str
        version_canary: str
        builders: BuilderPredicate
        subdir: str
        omit_on_experiment: _containers.RepeatedScalarFieldContainer[str]
        include_on_experiment: _containers.RepeatedScalarFieldContainer[str]
        def __init__(self, package_name: _Optional[str] = ..., version: _Optional[str] = ..., version_canary: _Optional[str] = ..., builders: _Optional[_Union[BuilderPredicate, _Mapping]] = ..., subdir: _Optional[str] = ..., omit_on_experiment: _Optional[_Iterable[str]] = ..., include_on_experiment: _Optional[_Iterable[str]] = ...) -> None: ...
    MILO_HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    GLOBAL_CACHES_FIELD_NUMBER: _ClassVar[int]
    USER_PACKAGES_FIELD_NUMBER: _ClassVar[int]
    KITCHEN_PACKAGE_FIELD_NUMBER: _ClassVar[int]
    BBAGENT_PACKAGE_FIELD_NUMBER: _ClassVar[int]
    ALTERNATIVE_AGENT_PACKAGES_FIELD_NUMBER: _ClassVar[int]
    BBAGENT_UTILITY_PACKAGES_FIELD_NUMBER: _ClassVar[int]
    milo_hostname: str
    global_caches: _containers.RepeatedCompositeFieldContainer[_project_config_pb2.BuilderConfig.CacheEntry]
    user_packages: _containers.RepeatedCompositeFieldContainer[SwarmingSettings.Package]
    kitchen_package: SwarmingSettings.Package
    bbagent_package: SwarmingSettings.Package
    alternative_agent_packages: _containers.RepeatedCompositeFieldContainer[SwarmingSettings.Package]
    bbagent_utility_packages: _containers.RepeatedCompositeFieldContainer[SwarmingSettings.Package]
    def __init__(self, milo_hostname: _Optional[str] = ..., global_caches: _Optional[_Iterable[_Union[_project_config_pb2.BuilderConfig.CacheEntry, _Mapping]]] = ..., user_packages: _Optional[_Iterable[_Union[SwarmingSettings.Package, _Mapping]]] = ..., kitchen_package: _Optional[_Union[SwarmingSettings.Package, _Mapping]] = ..., bbagent_package: _Optional[_Union[SwarmingSettings.Package, _Mapping]] = ..., alternative_agent_packages: _Optional[_Iterable[_Union[SwarmingSettings.Package, _Mapping]]] = ..., bbagent_utility_packages: _Optional[_Iterable[_Union[SwarmingSettings.Package, _Mapping]]] = ...) -> None: ...

class LogDogSettings(_message.Message):
    __slots__ = ("hostname",)
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    hostname: str
    def __init__(self, hostname: _Optional[str] = ...) -> None: ...

class ResultDBSettings(_message.Message):
    __slots__ = ("hostname",)
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    hostname: str
    def __init__(self, hostname: _Optional[str] = ...) -> None: ...

class ExperimentSettings(_message.Message):
    __slots__ = ("experiments",)
    class Experiment(_message.Message):
        __slots__ = ("name", "default_value", "minimum_value", "builders", "inactive")
        NAME_FIELD_NUMBER: _ClassVar[int]
        DEFAULT_VALUE_FIELD_NUMBER: _ClassVar[int]
        MINIMUM_VALUE_FIELD_NUMBER: _ClassVar[int]
        BUILDERS_FIELD_NUMBER: _ClassVar[int]
        INACTIVE_FIELD_NUMBER: _ClassVar[int]
        name: str
        default_value: int
        minimum_value: int
        builders: BuilderPredicate
        inactive: bool
        def __init__(self, name: _Optional[str] = ..., default_value: _Optional[int] = ..., minimum_value: _Optional[int] = ..., builders: _Optional[_Union[BuilderPredicate, _Mapping]] = ..., inactive: _Optional[bool] = ...) -> None: ...
    EXPERIMENTS_FIELD_NUMBER: _ClassVar[int]
    experiments: _containers.RepeatedCompositeFieldContainer[ExperimentSettings.Experiment]
    def __init__(self, experiments: _Optional[_Iterable[_Union[ExperimentSettings.Experiment, _Mapping]]] = ...) -> None: ...

class BuilderPredicate(_message.Message):
    __slots__ = ("regex", "regex_exclude")
    REGEX_FIELD_NUMBER: _ClassVar[int]
    REGEX_EXCLUDE_FIELD_NUMBER: _ClassVar[int]
    regex: _containers.RepeatedScalarFieldContainer[str]
    regex_exclude: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, regex: _Optional[_Iterable[str]] = ..., regex_exclude: _Optional[_Iterable[str]] = ...) -> None: ...

class CipdSettings(_message.Message):
    __slots__ = ("server", "source")
    class Source(_message.Message):
        __slots__ = ("package_name", "version", "version_canary")
        PACKAGE_NAME_FIELD_NUMBER: _ClassVar[int]
        VERSION_FIELD_NUMBER: _ClassVar[int]
        VERSION_CANARY_FIELD_NUMBER: _ClassVar[int]
        package_name: str
        version: str
        version_canary: str
        def __init__(self, package_name: _Optional[str] = ..., version: _Optional[str] = ..., version_canary: _Optional[str] = ...) -> None: ...
    SERVER_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    server: str
    source: CipdSettings.Source
    def __init__(self, server: _Optional[str] = ..., source: _Optional[_Union[CipdSettings.Source, _Mapping]] = ...) -> None: ...

class CustomMetric(_message.Message):
    __slots__ = ("name", "description", "extra_fields", "metric_base")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    EXTRA_FIELDS_FIELD_NUMBER: _ClassVar[int]
    METRIC_BASE_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    extra_fields: _containers.RepeatedScalarFieldContainer[str]
    metric_base: CustomMetricBase
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., extra_fields: _Optional[_Iterable[str]] = ..., metric_base: _Optional[_Union[CustomMetricBase, str]] = ...) -> None: ...
