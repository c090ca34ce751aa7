import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Person(_message.Message):
    __slots__ = ("subject", "issuer", "groups")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    ISSUER_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    subject: str
    issuer: str
    groups: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, subject: _Optional[str] = ..., issuer: _Optional[str] = ..., groups: _Optional[_Iterable[str]] = ...) -> None: ...

class Review(_message.Message):
    __slots__ = ("reviewer", "verdict", "reason", "at", "ttl_seconds")
    REVIEWER_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    reviewer: Person
    verdict: str
    reason: str
    at: _timestamp_pb2.Timestamp
    ttl_seconds: float
    def __init__(self, reviewer: _Optional[_Union[Person, _Mapping]] = ..., verdict: _Optional[str] = ..., reason: _Optional[str] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ttl_seconds: _Optional[float] = ...) -> None: ...

class Policy(_message.Message):
    __slots__ = ("approver_groups", "thresholds", "any_of", "scope", "grant_ttl_seconds", "max_grant_ttl_seconds", "pending_ttl_seconds", "approve_reason_required")
    class ThresholdsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    APPROVER_GROUPS_FIELD_NUMBER: _ClassVar[int]
    THRESHOLDS_FIELD_NUMBER: _ClassVar[int]
    ANY_OF_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    GRANT_TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MAX_GRANT_TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PENDING_TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    APPROVE_REASON_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    approver_groups: _containers.RepeatedScalarFieldContainer[str]
    thresholds: _containers.ScalarMap[str, int]
    any_of: int
    scope: str
    grant_ttl_seconds: float
    max_grant_ttl_seconds: float
    pending_ttl_seconds: float
    approve_reason_required: bool
    def __init__(self, approver_groups: _Optional[_Iterable[str]] = ..., thresholds: _Optional[_Mapping[str, int]] = ..., any_of: _Optional[int] = ..., scope: _Optional[str] = ..., grant_ttl_seconds: _Optional[float] = ..., max_grant_ttl_seconds: _Optional[float] = ..., pending_ttl_seconds: _Optional[float] = ..., approve_reason_required: _Optional[bool] = ...) -> None: ...

class Approval(_message.Message):
    __slots__ = ("id", "status", "rule", "rule_reason", "requester", "method", "path", "route", "model", "target_region", "request_digest", "justification", "policy", "reviews", "created_at", "expires_at", "resolved_at", "resolve_reason", "resolved_by", "grant_expires_at", "request_id", "version")
    ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    RULE_REASON_FIELD_NUMBER: _ClassVar[int]
    REQUESTER_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TARGET_REGION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_DIGEST_FIELD_NUMBER: _ClassVar[int]
    JUSTIFICATION_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    REVIEWS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_AT_FIELD_NUMBER: _ClassVar[int]
    RESOLVE_REASON_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_BY_FIELD_NUMBER: _ClassVar[int]
    GRANT_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    id: str
    status: str
    rule: str
    rule_reason: str
    requester: Person
    method: str
    path: str
    route: str
    model: str
    target_region: str
    request_digest: str
    justification: str
    policy: Policy
    reviews: _containers.RepeatedCompositeFieldContainer[Review]
    created_at: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    resolved_at: _timestamp_pb2.Timestamp
    resolve_reason: str
    resolved_by: str
    grant_expires_at: _timestamp_pb2.Timestamp
    request_id: str
    version: int
    def __init__(self, id: _Optional[str] = ..., status: _Optional[str] = ..., rule: _Optional[str] = ..., rule_reason: _Optional[str] = ..., requester: _Optional[_Union[Person, _Mapping]] = ..., method: _Optional[str] = ..., path: _Optional[str] = ..., route: _Optional[str] = ..., model: _Optional[str] = ..., target_region: _Optional[str] = ..., request_digest: _Optional[str] = ..., justification: _Optional[str] = ..., policy: _Optional[_Union[Policy, _Mapping]] = ..., reviews: _Optional[_Iterable[_Union[Review, _Mapping]]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., resolved_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., resolve_reason: _Optional[str] = ..., resolved_by: _Optional[str] = ..., grant_expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., request_id: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class ListRequest(_message.Message):
    __slots__ = ("status", "since", "limit")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    status: str
    since: _timestamp_pb2.Timestamp
    limit: int
    def __init__(self, status: _Optional[str] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., limit: _Optional[int] = ...) -> None: ...

class ListResponse(_message.Message):
    __slots__ = ("approvals",)
    APPROVALS_FIELD_NUMBER: _ClassVar[int]
    approvals: _containers.RepeatedCompositeFieldContainer[Approval]
    def __init__(self, approvals: _Optional[_Iterable[_Union[Approval, _Mapping]]] = ...) -> None: ...

class GetRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ApproveRequest(_message.Message):
    __slots__ = ("id", "reason", "ttl_seconds")
    ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    id: str
    reason: str
    ttl_seconds: float
    def __init__(self, id: _Optional[str] = ..., reason: _Optional[str] = ..., ttl_seconds: _Optional[float] = ...) -> None: ...

class DenyRequest(_message.Message):
    __slots__ = ("id", "reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    id: str
    reason: str
    def __init__(self, id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class RevokeRequest(_message.Message):
    __slots__ = ("id", "reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    id: str
    reason: str
    def __init__(self, id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class WatchRequest(_message.Message):
    __slots__ = ("since_version",)
    SINCE_VERSION_FIELD_NUMBER: _ClassVar[int]
    since_version: int
    def __init__(self, since_version: _Optional[int] = ...) -> None: ...

class Change(_message.Message):
    __slots__ = ("version", "kind", "at", "approval")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    APPROVAL_FIELD_NUMBER: _ClassVar[int]
    version: int
    kind: str
    at: _timestamp_pb2.Timestamp
    approval: Approval
    def __init__(self, version: _Optional[int] = ..., kind: _Optional[str] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., approval: _Optional[_Union[Approval, _Mapping]] = ...) -> None: ...
