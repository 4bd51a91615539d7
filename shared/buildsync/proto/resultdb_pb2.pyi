from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
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

class BigQueryExport(_message.Message):
    __slots__ = ("project", "dataset", "table", "test_results", "text_artifacts")
    class TestResults(_message.Message):
        __slots__ = ("predicate",)
        PREDICATE_FIELD_NUMBER: _ClassVar[int]
        predicate: TestResultPredicate
        def __init__(self, predicate: _Optional[_Union[TestResultPredicate, _Mapping]] = ...) -> None: ...
    class TextArtifacts(_message.Message):
        __slots__ = ("predicate",)
        PREDICATE_FIELD_NUMBER: _ClassVar[int]
        predicate: ArtifactPredicate
        def __init__(self, predicate: _Optional[_Union[ArtifactPredicate, _Mapping]] = ...) -> None: ...
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    TABLE_FIELD_NUMBER: _ClassVar[int]
    TEST_RESULTS_FIELD_NUMBER: _ClassVar[int]
    TEXT_ARTIFACTS_FIELD_NUMBER: _ClassVar[int]
    project: str
    dataset: str
    table: str
    test_results: BigQueryExport.TestResults
    text_artifacts: BigQueryExport.TextArtifacts
    def __init__(self, project: _Optional[str] = ..., dataset: _Optional[str] = ..., table: _Optional[str] = ..., test_results: _Optional[_Union[BigQueryExport.TestResults, _Mapping]] = ..., text_artifacts: _Optional[_Union[BigQueryExport.TextArtifacts, _Mapping]] = ...) -> None: ...

class HistoryOptions(_message.Message):
    __slots__ = ("use_invocation_timestamp", "commit")
    USE_INVOCATION_TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    COMMIT_FIELD_NUMBER: _ClassVar[int]
    use_invocation_timestamp: bool
    commit: CommitPosition
    def __init__(self, use_invocation_timestamp: _Optional[bool] = ..., commit: _Optional[_Union[CommitPosition, _Mapping]] = ...) -> None: ...

class CommitPosition(_message.Message):
    __slots__ = ("host", "project", "ref", "position")
    HOST_FIELD_NUMBER: _ClassVar[int]
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    REF_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    host: str
    project: str
    ref: str
    position: int
    def __init__(self, host: _Optional[str] = ..., project: _Optional[str] = ..., ref: _Optional[str] = ..., position: _Optional[int] = ...) -> None: ...

class Variant(_message.Message):
    __slots__ = ()
    class DefEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    DEF_FIELD_NUMBER: _ClassVar[int]
    def __init__(self, **kwargs) -> None: ...

class TestResultPredicate(_message.Message):
    __slots__ = ("test_id_regexp", "variant", "expectancy", "exclude_exonerated")
    class Expectancy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        ALL: _ClassVar[TestResultPredicate.Expectancy]
        VARIANTS_WITH_UNEXPECTED_RESULTS: _ClassVar[TestResultPredicate.Expectancy]
        VARIANTS_WITH_ONLY_UNEXPECTED_RESULTS: _ClassVar[TestResultPredicate.Expectancy]
    ALL: TestResultPredicate.Expectancy
    VARIANTS_WITH_UNEXPECTED_RESULTS: TestResultPredicate.Expectancy
    VARIANTS_WITH_ONLY_UNEXPECTED_RESULTS: TestResultPredicate.Expectancy
    TEST_ID_REGEXP_FIELD_NUMBER: _ClassVar[int]
    VARIANT_FIELD_NUMBER: _ClassVar[int]
    EXPECTANCY_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_EXONERATED_FIELD_NUMBER: _ClassVar[int]
    test_id_regexp: str
    variant: VariantPredicate
    expectancy: TestResultPredicate.Expectancy
    exclude_exonerated: bool
    def __init__(self, test_id_regexp: _Optional[str] = ..., variant: _Optional[_Union[VariantPredicate, _Mapping]] = ..., expectancy: _Optional[_Union[TestResultPredicate.Expectancy, str]] = ..., exclude_exonerated: _Optional[bool] = ...) -> None: ...

class VariantPredicate(_message.Message):
    __slots__ = ("equals", "contains")
    EQUALS_FIELD_NUMBER: _ClassVar[int]
    CONTAINS_FIELD_NUMBER: _ClassVar[int]
    equals: Variant
    contains: Variant
    def __init__(self, equals: _Optional[_Union[Variant, _Mapping]] = ..., contains: _Optional[_Union[Variant, _Mapping]] = ...) -> None: ...

class ArtifactPredicate(_message.Message):
    __slots__ = ("follow_edges", "artifact_kind", "work_units", "test_result_predicate", "content_type_regexp", "artifact_id_regexp", "artifact_type_regexp")
    class ArtifactKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        ARTIFACT_KIND_UNSPECIFIED: _ClassVar[ArtifactPredicate.ArtifactKind]
        WORK_UNIT: _ClassVar[ArtifactPredicate.ArtifactKind]
    ARTIFACT_KIND_UNSPECIFIED: ArtifactPredicate.ArtifactKind
    WORK_UNIT: ArtifactPredicate.ArtifactKind
    class EdgeTypeSet(_message.Message):
        __slots__ = ("included_invocations", "test_results")
        INCLUDED_INVOCATIONS_FIELD_NUMBER: _ClassVar[int]
        TEST_RESULTS_FIELD_NUMBER: _ClassVar[int]
        included_invocations: bool
        test_results: bool
        def __init__(self, included_invocations: _Optional[bool] = ..., test_results: _Optional[bool] = ...) -> None: ...
    FOLLOW_EDGES_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_KIND_FIELD_NUMBER: _ClassVar[int]
    WORK_UNITS_FIELD_NUMBER: _ClassVar[int]
    TEST_RESULT_PREDICATE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_REGEXP_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_ID_REGEXP_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_TYPE_REGEXP_FIELD_NUMBER: _ClassVar[int]
    follow_edges: ArtifactPredicate.EdgeTypeSet
    artifact_kind: ArtifactPredicate.ArtifactKind
    work_units: _containers.RepeatedScalarFieldContainer[str]
    test_result_predicate: TestResultPredicate
    content_type_regexp: str
    artifact_id_regexp: str
    artifact_type_regexp: str
    def __init__(self, follow_edges: _Optional[_Union[ArtifactPredicate.EdgeTypeSet, _Mapping]] = ..., artifact_kind: _Optional[_Union[ArtifactPredicate.ArtifactKind, str]] = ..., work_units: _Optional[_Iterable[str]] = ..., test_result_predicate: _Optional[_Union[TestResultPredicate, _Mapping]] = ..., content_type_regexp: _Optional[str] = ..., artifact_id_regexp: _Optional[str] = ..., artifact_type_regexp: _Optional[str] = ...) -> None: ...
