from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CheckpointConfig(_message.Message):
    __slots__ = ("thread_id", "checkpoint_ns", "checkpoint_id")
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_NS_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str
    def __init__(self, thread_id: _Optional[str] = ..., checkpoint_ns: _Optional[str] = ..., checkpoint_id: _Optional[str] = ...) -> None: ...

class TypedValue(_message.Message):
    __slots__ = ("type", "data")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    type: str
    data: bytes
    def __init__(self, type: _Optional[str] = ..., data: _Optional[bytes] = ...) -> None: ...

class PendingWrite(_message.Message):
    __slots__ = ("task_id", "channel", "value")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    channel: str
    value: TypedValue
    def __init__(self, task_id: _Optional[str] = ..., channel: _Optional[str] = ..., value: _Optional[_Union[TypedValue, _Mapping]] = ...) -> None: ...

class CheckpointTuple(_message.Message):
    __slots__ = ("config", "checkpoint_json", "channel_values", "metadata_json", "parent_config", "pending_writes")
    class ChannelValuesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: TypedValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[TypedValue, _Mapping]] = ...) -> None: ...
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_JSON_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_VALUES_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    PARENT_CONFIG_FIELD_NUMBER: _ClassVar[int]
    PENDING_WRITES_FIELD_NUMBER: _ClassVar[int]
    config: CheckpointConfig
    checkpoint_json: bytes
    channel_values: _containers.MessageMap[str, TypedValue]
    metadata_json: bytes
    parent_config: CheckpointConfig
    pending_writes: _containers.RepeatedCompositeFieldContainer[PendingWrite]
    def __init__(self, config: _Optional[_Union[CheckpointConfig, _Mapping]] = ..., checkpoint_json: _Optional[bytes] = ..., channel_values: _Optional[_Mapping[str, TypedValue]] = ..., metadata_json: _Optional[bytes] = ..., parent_config: _Optional[_Union[CheckpointConfig, _Mapping]] = ..., pending_writes: _Optional[_Iterable[_Union[PendingWrite, _Mapping]]] = ...) -> None: ...

class GetTupleRequest(_message.Message):
    __slots__ = ("tenant_id", "config")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    config: CheckpointConfig
    def __init__(self, tenant_id: _Optional[str] = ..., config: _Optional[_Union[CheckpointConfig, _Mapping]] = ...) -> None: ...

class GetTupleResponse(_message.Message):
    __slots__ = ("tuple",)
    TUPLE_FIELD_NUMBER: _ClassVar[int]
    tuple: CheckpointTuple
    def __init__(self, tuple: _Optional[_Union[CheckpointTuple, _Mapping]] = ...) -> None: ...

class ListRequest(_message.Message):
    __slots__ = ("tenant_id", "config", "filter_json", "before", "limit")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    FILTER_JSON_FIELD_NUMBER: _ClassVar[int]
    BEFORE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    config: CheckpointConfig
    filter_json: bytes
    before: CheckpointConfig
    limit: int
    def __init__(self, tenant_id: _Optional[str] = ..., config: _Optional[_Union[CheckpointConfig, _Mapping]] = ..., filter_json: _Optional[bytes] = ..., before: _Optional[_Union[CheckpointConfig, _Mapping]] = ..., limit: _Optional[int] = ...) -> None: ...

class PutRequest(_message.Message):
    __slots__ = ("tenant_id", "config", "checkpoint_json", "channel_values", "metadata_json", "new_versions_json")
    class ChannelValuesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: TypedValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[TypedValue, _Mapping]] = ...) -> None: ...
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_JSON_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_VALUES_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    NEW_VERSIONS_JSON_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    config: CheckpointConfig
    checkpoint_json: bytes
    channel_values: _containers.MessageMap[str, TypedValue]
    metadata_json: bytes
    new_versions_json: bytes
    def __init__(self, tenant_id: _Optional[str] = ..., config: _Optional[_Union[CheckpointConfig, _Mapping]] = ..., checkpoint_json: _Optional[bytes] = ..., channel_values: _Optional[_Mapping[str, TypedValue]] = ..., metadata_json: _Optional[bytes] = ..., new_versions_json: _Optional[bytes] = ...) -> None: ...

class PutResponse(_message.Message):
    __slots__ = ("config",)
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    config: CheckpointConfig
    def __init__(self, config: _Optional[_Union[CheckpointConfig, _Mapping]] = ...) -> None: ...

class PutWritesRequest(_message.Message):
    __slots__ = ("tenant_id", "config", "writes", "task_id", "task_path")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    WRITES_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_PATH_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    config: CheckpointConfig
    writes: _containers.RepeatedCompositeFieldContainer[PendingWrite]
    task_id: str
    task_path: str
    def __init__(self, tenant_id: _Optional[str] = ..., config: _Optional[_Union[CheckpointConfig, _Mapping]] = ..., writes: _Optional[_Iterable[_Union[PendingWrite, _Mapping]]] = ..., task_id: _Optional[str] = ..., task_path: _Optional[str] = ...) -> None: ...

class PutWritesResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CheckpointWrite(_message.Message):
    __slots__ = ("put", "writes")
    PUT_FIELD_NUMBER: _ClassVar[int]
    WRITES_FIELD_NUMBER: _ClassVar[int]
    put: PutRequest
    writes: PutWritesRequest
    def __init__(self, put: _Optional[_Union[PutRequest, _Mapping]] = ..., writes: _Optional[_Union[PutWritesRequest, _Mapping]] = ...) -> None: ...

class PutBatchRequest(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[CheckpointWrite]
    def __init__(self, items: _Optional[_Iterable[_Union[CheckpointWrite, _Mapping]]] = ...) -> None: ...

class PutBatchResponse(_message.Message):
    __slots__ = ("puts",)
    PUTS_FIELD_NUMBER: _ClassVar[int]
    puts: _containers.RepeatedCompositeFieldContainer[PutResponse]
    def __init__(self, puts: _Optional[_Iterable[_Union[PutResponse, _Mapping]]] = ...) -> None: ...

class DeleteThreadRequest(_message.Message):
    __slots__ = ("tenant_id", "thread_id")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    thread_id: str
    def __init__(self, tenant_id: _Optional[str] = ..., thread_id: _Optional[str] = ...) -> None: ...

class DeleteThreadResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Thread(_message.Message):
    __slots__ = ("thread_id", "metadata_json", "created_at", "updated_at")
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    thread_id: str
    metadata_json: bytes
    created_at: str
    updated_at: str
    def __init__(self, thread_id: _Optional[str] = ..., metadata_json: _Optional[bytes] = ..., created_at: _Optional[str] = ..., updated_at: _Optional[str] = ...) -> None: ...

class CreateThreadRequest(_message.Message):
    __slots__ = ("tenant_id", "thread_id", "metadata_json", "if_exists_do_nothing")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    IF_EXISTS_DO_NOTHING_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    thread_id: str
    metadata_json: bytes
    if_exists_do_nothing: bool
    def __init__(self, tenant_id: _Optional[str] = ..., thread_id: _Optional[str] = ..., metadata_json: _Optional[bytes] = ..., if_exists_do_nothing: _Optional[bool] = ...) -> None: ...

class GetThreadRequest(_message.Message):
    __slots__ = ("tenant_id", "thread_id")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    thread_id: str
    def __init__(self, tenant_id: _Optional[str] = ..., thread_id: _Optional[str] = ...) -> None: ...

class UpdateThreadRequest(_message.Message):
    __slots__ = ("tenant_id", "thread_id", "metadata_json")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    thread_id: str
    metadata_json: bytes
    def __init__(self, tenant_id: _Optional[str] = ..., thread_id: _Optional[str] = ..., metadata_json: _Optional[bytes] = ...) -> None: ...

class ListThreadsRequest(_message.Message):
    __slots__ = ("tenant_id", "metadata_filter_json", "limit", "offset", "sort_by", "sort_order")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    METADATA_FILTER_JSON_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    SORT_BY_FIELD_NUMBER: _ClassVar[int]
    SORT_ORDER_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    metadata_filter_json: bytes
    limit: int
    offset: int
    sort_by: str
    sort_order: str
    def __init__(self, tenant_id: _Optional[str] = ..., metadata_filter_json: _Optional[bytes] = ..., limit: _Optional[int] = ..., offset: _Optional[int] = ..., sort_by: _Optional[str] = ..., sort_order: _Optional[str] = ...) -> None: ...

class ListThreadsResponse(_message.Message):
    __slots__ = ("threads",)
    THREADS_FIELD_NUMBER: _ClassVar[int]
    threads: _containers.RepeatedCompositeFieldContainer[Thread]
    def __init__(self, threads: _Optional[_Iterable[_Union[Thread, _Mapping]]] = ...) -> None: ...

class CopyThreadRequest(_message.Message):
    __slots__ = ("tenant_id", "thread_id", "new_thread_id")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    NEW_THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    thread_id: str
    new_thread_id: str
    def __init__(self, tenant_id: _Optional[str] = ..., thread_id: _Optional[str] = ..., new_thread_id: _Optional[str] = ...) -> None: ...

class EraseRequest(_message.Message):
    __slots__ = ("tenant_id", "user_id")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    user_id: str
    def __init__(self, tenant_id: _Optional[str] = ..., user_id: _Optional[str] = ...) -> None: ...

class EraseResponse(_message.Message):
    __slots__ = ("threads", "store_items", "assistants", "crons")
    THREADS_FIELD_NUMBER: _ClassVar[int]
    STORE_ITEMS_FIELD_NUMBER: _ClassVar[int]
    ASSISTANTS_FIELD_NUMBER: _ClassVar[int]
    CRONS_FIELD_NUMBER: _ClassVar[int]
    threads: int
    store_items: int
    assistants: int
    crons: int
    def __init__(self, threads: _Optional[int] = ..., store_items: _Optional[int] = ..., assistants: _Optional[int] = ..., crons: _Optional[int] = ...) -> None: ...

class StoreItem(_message.Message):
    __slots__ = ("namespace", "key", "value_json", "created_at", "updated_at", "score")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_JSON_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    namespace: _containers.RepeatedScalarFieldContainer[str]
    key: str
    value_json: bytes
    created_at: str
    updated_at: str
    score: float
    def __init__(self, namespace: _Optional[_Iterable[str]] = ..., key: _Optional[str] = ..., value_json: _Optional[bytes] = ..., created_at: _Optional[str] = ..., updated_at: _Optional[str] = ..., score: _Optional[float] = ...) -> None: ...

class StoreGet(_message.Message):
    __slots__ = ("namespace", "key", "refresh_ttl")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    REFRESH_TTL_FIELD_NUMBER: _ClassVar[int]
    namespace: _containers.RepeatedScalarFieldContainer[str]
    key: str
    refresh_ttl: bool
    def __init__(self, namespace: _Optional[_Iterable[str]] = ..., key: _Optional[str] = ..., refresh_ttl: _Optional[bool] = ...) -> None: ...

class StorePut(_message.Message):
    __slots__ = ("namespace", "key", "value_json", "ttl_minutes")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_JSON_FIELD_NUMBER: _ClassVar[int]
    TTL_MINUTES_FIELD_NUMBER: _ClassVar[int]
    namespace: _containers.RepeatedScalarFieldContainer[str]
    key: str
    value_json: bytes
    ttl_minutes: float
    def __init__(self, namespace: _Optional[_Iterable[str]] = ..., key: _Optional[str] = ..., value_json: _Optional[bytes] = ..., ttl_minutes: _Optional[float] = ...) -> None: ...

class StoreSearch(_message.Message):
    __slots__ = ("namespace_prefix", "filter_json", "limit", "offset", "query", "refresh_ttl")
    NAMESPACE_PREFIX_FIELD_NUMBER: _ClassVar[int]
    FILTER_JSON_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    REFRESH_TTL_FIELD_NUMBER: _ClassVar[int]
    namespace_prefix: _containers.RepeatedScalarFieldContainer[str]
    filter_json: bytes
    limit: int
    offset: int
    query: str
    refresh_ttl: bool
    def __init__(self, namespace_prefix: _Optional[_Iterable[str]] = ..., filter_json: _Optional[bytes] = ..., limit: _Optional[int] = ..., offset: _Optional[int] = ..., query: _Optional[str] = ..., refresh_ttl: _Optional[bool] = ...) -> None: ...

class NamespaceMatch(_message.Message):
    __slots__ = ("match_type", "path")
    MATCH_TYPE_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    match_type: str
    path: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, match_type: _Optional[str] = ..., path: _Optional[_Iterable[str]] = ...) -> None: ...

class StoreListNamespaces(_message.Message):
    __slots__ = ("match_conditions", "max_depth", "limit", "offset")
    MATCH_CONDITIONS_FIELD_NUMBER: _ClassVar[int]
    MAX_DEPTH_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    match_conditions: _containers.RepeatedCompositeFieldContainer[NamespaceMatch]
    max_depth: int
    limit: int
    offset: int
    def __init__(self, match_conditions: _Optional[_Iterable[_Union[NamespaceMatch, _Mapping]]] = ..., max_depth: _Optional[int] = ..., limit: _Optional[int] = ..., offset: _Optional[int] = ...) -> None: ...

class StoreOp(_message.Message):
    __slots__ = ("get", "put", "search", "list_namespaces")
    GET_FIELD_NUMBER: _ClassVar[int]
    PUT_FIELD_NUMBER: _ClassVar[int]
    SEARCH_FIELD_NUMBER: _ClassVar[int]
    LIST_NAMESPACES_FIELD_NUMBER: _ClassVar[int]
    get: StoreGet
    put: StorePut
    search: StoreSearch
    list_namespaces: StoreListNamespaces
    def __init__(self, get: _Optional[_Union[StoreGet, _Mapping]] = ..., put: _Optional[_Union[StorePut, _Mapping]] = ..., search: _Optional[_Union[StoreSearch, _Mapping]] = ..., list_namespaces: _Optional[_Union[StoreListNamespaces, _Mapping]] = ...) -> None: ...

class Namespace(_message.Message):
    __slots__ = ("path",)
    PATH_FIELD_NUMBER: _ClassVar[int]
    path: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, path: _Optional[_Iterable[str]] = ...) -> None: ...

class StoreResult(_message.Message):
    __slots__ = ("item", "items", "namespaces")
    ITEM_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    NAMESPACES_FIELD_NUMBER: _ClassVar[int]
    item: StoreItem
    items: _containers.RepeatedCompositeFieldContainer[StoreItem]
    namespaces: _containers.RepeatedCompositeFieldContainer[Namespace]
    def __init__(self, item: _Optional[_Union[StoreItem, _Mapping]] = ..., items: _Optional[_Iterable[_Union[StoreItem, _Mapping]]] = ..., namespaces: _Optional[_Iterable[_Union[Namespace, _Mapping]]] = ...) -> None: ...

class StoreBatchRequest(_message.Message):
    __slots__ = ("tenant_id", "ops")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    OPS_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    ops: _containers.RepeatedCompositeFieldContainer[StoreOp]
    def __init__(self, tenant_id: _Optional[str] = ..., ops: _Optional[_Iterable[_Union[StoreOp, _Mapping]]] = ...) -> None: ...

class StoreBatchResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[StoreResult]
    def __init__(self, results: _Optional[_Iterable[_Union[StoreResult, _Mapping]]] = ...) -> None: ...

class Assistant(_message.Message):
    __slots__ = ("assistant_id", "graph_id", "name", "description", "config_json", "context_json", "metadata_json", "version", "created_at", "updated_at", "system")
    ASSISTANT_ID_FIELD_NUMBER: _ClassVar[int]
    GRAPH_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_JSON_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_FIELD_NUMBER: _ClassVar[int]
    assistant_id: str
    graph_id: str
    name: str
    description: str
    config_json: bytes
    context_json: bytes
    metadata_json: bytes
    version: int
    created_at: str
    updated_at: str
    system: bool
    def __init__(self, assistant_id: _Optional[str] = ..., graph_id: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., config_json: _Optional[bytes] = ..., context_json: _Optional[bytes] = ..., metadata_json: _Optional[bytes] = ..., version: _Optional[int] = ..., created_at: _Optional[str] = ..., updated_at: _Optional[str] = ..., system: _Optional[bool] = ...) -> None: ...

class CreateAssistantRequest(_message.Message):
    __slots__ = ("tenant_id", "assistant_id", "graph_id", "name", "description", "config_json", "context_json", "metadata_json", "if_exists_do_nothing")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    ASSISTANT_ID_FIELD_NUMBER: _ClassVar[int]
    GRAPH_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_JSON_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    IF_EXISTS_DO_NOTHING_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    assistant_id: str
    graph_id: str
    name: str
    description: str
    config_json: bytes
    context_json: bytes
    metadata_json: bytes
    if_exists_do_nothing: bool
    def __init__(self, tenant_id: _Optional[str] = ..., assistant_id: _Optional[str] = ..., graph_id: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., config_json: _Optional[bytes] = ..., context_json: _Optional[bytes] = ..., metadata_json: _Optional[bytes] = ..., if_exists_do_nothing: _Optional[bool] = ...) -> None: ...

class GetAssistantRequest(_message.Message):
    __slots__ = ("tenant_id", "assistant_id")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    ASSISTANT_ID_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    assistant_id: str
    def __init__(self, tenant_id: _Optional[str] = ..., assistant_id: _Optional[str] = ...) -> None: ...

class UpdateAssistantRequest(_message.Message):
    __slots__ = ("tenant_id", "assistant_id", "graph_id", "name", "description", "config_json", "context_json", "metadata_json")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    ASSISTANT_ID_FIELD_NUMBER: _ClassVar[int]
    GRAPH_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_JSON_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    assistant_id: str
    graph_id: str
    name: str
    description: str
    config_json: bytes
    context_json: bytes
    metadata_json: bytes
    def __init__(self, tenant_id: _Optional[str] = ..., assistant_id: _Optional[str] = ..., graph_id: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., config_json: _Optional[bytes] = ..., context_json: _Optional[bytes] = ..., metadata_json: _Optional[bytes] = ...) -> None: ...

class SetLatestVersionRequest(_message.Message):
    __slots__ = ("tenant_id", "assistant_id", "version")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    ASSISTANT_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    assistant_id: str
    version: int
    def __init__(self, tenant_id: _Optional[str] = ..., assistant_id: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class SearchAssistantsRequest(_message.Message):
    __slots__ = ("tenant_id", "graph_id", "name", "metadata_filter_json", "limit", "offset", "sort_by", "sort_order")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    GRAPH_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    METADATA_FILTER_JSON_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    SORT_BY_FIELD_NUMBER: _ClassVar[int]
    SORT_ORDER_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    graph_id: str
    name: str
    metadata_filter_json: bytes
    limit: int
    offset: int
    sort_by: str
    sort_order: str
    def __init__(self, tenant_id: _Optional[str] = ..., graph_id: _Optional[str] = ..., name: _Optional[str] = ..., metadata_filter_json: _Optional[bytes] = ..., limit: _Optional[int] = ..., offset: _Optional[int] = ..., sort_by: _Optional[str] = ..., sort_order: _Optional[str] = ...) -> None: ...

class SearchAssistantsResponse(_message.Message):
    __slots__ = ("assistants",)
    ASSISTANTS_FIELD_NUMBER: _ClassVar[int]
    assistants: _containers.RepeatedCompositeFieldContainer[Assistant]
    def __init__(self, assistants: _Optional[_Iterable[_Union[Assistant, _Mapping]]] = ...) -> None: ...

class CountAssistantsResponse(_message.Message):
    __slots__ = ("count",)
    COUNT_FIELD_NUMBER: _ClassVar[int]
    count: int
    def __init__(self, count: _Optional[int] = ...) -> None: ...

class DeleteAssistantRequest(_message.Message):
    __slots__ = ("tenant_id", "assistant_id")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    ASSISTANT_ID_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    assistant_id: str
    def __init__(self, tenant_id: _Optional[str] = ..., assistant_id: _Optional[str] = ...) -> None: ...

class DeleteAssistantResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListAssistantVersionsRequest(_message.Message):
    __slots__ = ("tenant_id", "assistant_id", "metadata_filter_json", "limit", "offset")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    ASSISTANT_ID_FIELD_NUMBER: _ClassVar[int]
    METADATA_FILTER_JSON_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    assistant_id: str
    metadata_filter_json: bytes
    limit: int
    offset: int
    def __init__(self, tenant_id: _Optional[str] = ..., assistant_id: _Optional[str] = ..., metadata_filter_json: _Optional[bytes] = ..., limit: _Optional[int] = ..., offset: _Optional[int] = ...) -> None: ...

class ListAssistantVersionsResponse(_message.Message):
    __slots__ = ("versions",)
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    versions: _containers.RepeatedCompositeFieldContainer[Assistant]
    def __init__(self, versions: _Optional[_Iterable[_Union[Assistant, _Mapping]]] = ...) -> None: ...

class GraphSchemas(_message.Message):
    __slots__ = ("graph_id", "input_schema_json", "output_schema_json", "state_schema_json", "config_schema_json", "context_schema_json", "graph_json")
    GRAPH_ID_FIELD_NUMBER: _ClassVar[int]
    INPUT_SCHEMA_JSON_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_SCHEMA_JSON_FIELD_NUMBER: _ClassVar[int]
    STATE_SCHEMA_JSON_FIELD_NUMBER: _ClassVar[int]
    CONFIG_SCHEMA_JSON_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_SCHEMA_JSON_FIELD_NUMBER: _ClassVar[int]
    GRAPH_JSON_FIELD_NUMBER: _ClassVar[int]
    graph_id: str
    input_schema_json: bytes
    output_schema_json: bytes
    state_schema_json: bytes
    config_schema_json: bytes
    context_schema_json: bytes
    graph_json: bytes
    def __init__(self, graph_id: _Optional[str] = ..., input_schema_json: _Optional[bytes] = ..., output_schema_json: _Optional[bytes] = ..., state_schema_json: _Optional[bytes] = ..., config_schema_json: _Optional[bytes] = ..., context_schema_json: _Optional[bytes] = ..., graph_json: _Optional[bytes] = ...) -> None: ...

class RegisterGraphsRequest(_message.Message):
    __slots__ = ("graphs",)
    GRAPHS_FIELD_NUMBER: _ClassVar[int]
    graphs: _containers.RepeatedCompositeFieldContainer[GraphSchemas]
    def __init__(self, graphs: _Optional[_Iterable[_Union[GraphSchemas, _Mapping]]] = ...) -> None: ...

class RegisterGraphsResponse(_message.Message):
    __slots__ = ("assistants",)
    ASSISTANTS_FIELD_NUMBER: _ClassVar[int]
    assistants: _containers.RepeatedCompositeFieldContainer[Assistant]
    def __init__(self, assistants: _Optional[_Iterable[_Union[Assistant, _Mapping]]] = ...) -> None: ...

class Cron(_message.Message):
    __slots__ = ("tenant_id", "cron_id", "assistant_id", "thread_id", "schedule", "timezone", "payload_json", "metadata_json", "enabled", "end_time", "next_run_at", "created_at", "updated_at", "user_id", "on_run_completed")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    CRON_ID_FIELD_NUMBER: _ClassVar[int]
    ASSISTANT_ID_FIELD_NUMBER: _ClassVar[int]
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_JSON_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    NEXT_RUN_AT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ON_RUN_COMPLETED_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    cron_id: str
    assistant_id: str
    thread_id: str
    schedule: str
    timezone: str
    payload_json: bytes
    metadata_json: bytes
    enabled: bool
    end_time: str
    next_run_at: str
    created_at: str
    updated_at: str
    user_id: str
    on_run_completed: str
    def __init__(self, tenant_id: _Optional[str] = ..., cron_id: _Optional[str] = ..., assistant_id: _Optional[str] = ..., thread_id: _Optional[str] = ..., schedule: _Optional[str] = ..., timezone: _Optional[str] = ..., payload_json: _Optional[bytes] = ..., metadata_json: _Optional[bytes] = ..., enabled: _Optional[bool] = ..., end_time: _Optional[str] = ..., next_run_at: _Optional[str] = ..., created_at: _Optional[str] = ..., updated_at: _Optional[str] = ..., user_id: _Optional[str] = ..., on_run_completed: _Optional[str] = ...) -> None: ...

class CreateCronRequest(_message.Message):
    __slots__ = ("cron",)
    CRON_FIELD_NUMBER: _ClassVar[int]
    cron: Cron
    def __init__(self, cron: _Optional[_Union[Cron, _Mapping]] = ...) -> None: ...

class GetCronRequest(_message.Message):
    __slots__ = ("tenant_id", "cron_id")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    CRON_ID_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    cron_id: str
    def __init__(self, tenant_id: _Optional[str] = ..., cron_id: _Optional[str] = ...) -> None: ...

class UpdateCronRequest(_message.Message):
    __slots__ = ("tenant_id", "cron_id", "schedule", "timezone", "payload_json", "metadata_json", "enabled", "end_time", "on_run_completed")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    CRON_ID_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_JSON_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    ON_RUN_COMPLETED_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    cron_id: str
    schedule: str
    timezone: str
    payload_json: bytes
    metadata_json: bytes
    enabled: bool
    end_time: str
    on_run_completed: str
    def __init__(self, tenant_id: _Optional[str] = ..., cron_id: _Optional[str] = ..., schedule: _Optional[str] = ..., timezone: _Optional[str] = ..., payload_json: _Optional[bytes] = ..., metadata_json: _Optional[bytes] = ..., enabled: _Optional[bool] = ..., end_time: _Optional[str] = ..., on_run_completed: _Optional[str] = ...) -> None: ...

class DeleteCronResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SearchCronsRequest(_message.Message):
    __slots__ = ("tenant_id", "assistant_id", "thread_id", "enabled", "metadata_json", "limit", "offset", "sort_by", "sort_order")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    ASSISTANT_ID_FIELD_NUMBER: _ClassVar[int]
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    SORT_BY_FIELD_NUMBER: _ClassVar[int]
    SORT_ORDER_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    assistant_id: str
    thread_id: str
    enabled: bool
    metadata_json: bytes
    limit: int
    offset: int
    sort_by: str
    sort_order: str
    def __init__(self, tenant_id: _Optional[str] = ..., assistant_id: _Optional[str] = ..., thread_id: _Optional[str] = ..., enabled: _Optional[bool] = ..., metadata_json: _Optional[bytes] = ..., limit: _Optional[int] = ..., offset: _Optional[int] = ..., sort_by: _Optional[str] = ..., sort_order: _Optional[str] = ...) -> None: ...

class SearchCronsResponse(_message.Message):
    __slots__ = ("crons",)
    CRONS_FIELD_NUMBER: _ClassVar[int]
    crons: _containers.RepeatedCompositeFieldContainer[Cron]
    def __init__(self, crons: _Optional[_Iterable[_Union[Cron, _Mapping]]] = ...) -> None: ...

class CountCronsResponse(_message.Message):
    __slots__ = ("count",)
    COUNT_FIELD_NUMBER: _ClassVar[int]
    count: int
    def __init__(self, count: _Optional[int] = ...) -> None: ...

class ClaimDueCronsRequest(_message.Message):
    __slots__ = ("now", "limit")
    NOW_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    now: str
    limit: int
    def __init__(self, now: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class ClaimedTick(_message.Message):
    __slots__ = ("cron", "tick")
    CRON_FIELD_NUMBER: _ClassVar[int]
    TICK_FIELD_NUMBER: _ClassVar[int]
    cron: Cron
    tick: str
    def __init__(self, cron: _Optional[_Union[Cron, _Mapping]] = ..., tick: _Optional[str] = ...) -> None: ...

class ClaimDueCronsResponse(_message.Message):
    __slots__ = ("ticks",)
    TICKS_FIELD_NUMBER: _ClassVar[int]
    ticks: _containers.RepeatedCompositeFieldContainer[ClaimedTick]
    def __init__(self, ticks: _Optional[_Iterable[_Union[ClaimedTick, _Mapping]]] = ...) -> None: ...
