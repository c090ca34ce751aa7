"""Envoy's ProcessingRequest → core values, and exchange steps → ProcessingResponse. Nothing else.

The authz decision is read from the ext_authz namespace of the dynamic metadata Envoy forwards
(``metadata_options.forwarding_namespaces``) through ``extproc.decision.from_metadata``, the
inverse of what authz wrote; never from a header a client could send.
"""

from __future__ import annotations

from typing import Any

from envoy.config.core.v3 import base_pb2
from envoy.extensions.filters.http.ext_proc.v3 import processing_mode_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep
from envoy.type.v3 import http_status_pb2
from google.protobuf import struct_pb2

from extproc.audit.event import Refusal
from extproc.decision import Decision, denial_body, from_metadata
from extproc.exchange.headers import HeaderValues
from extproc.exchange.steps import BodyStep, HeaderStep

AUTHZ_NAMESPACE = "envoy.filters.http.ext_authz"
_MODE = processing_mode_pb2.ProcessingMode
_STREAM_RESPONSE_BODY = _MODE(response_body_mode=_MODE.STREAMED)


# The shipped processing mode (envoy.yaml) with the response body off. An override replaces
# the whole mode, so every field is stated.
_WITHOUT_RESPONSE_BODY = _MODE(
    request_header_mode=_MODE.SEND,
    response_header_mode=_MODE.SEND,
    request_body_mode=_MODE.BUFFERED,
    response_body_mode=_MODE.NONE,
    request_trailer_mode=_MODE.SKIP,
    response_trailer_mode=_MODE.SKIP,
)
_JSON_HEADER = base_pb2.HeaderValueOption(
    header=base_pb2.HeaderValue(key="content-type", raw_value=b"application/json")
)


def decision_of(request: ep.ProcessingRequest) -> Decision | None:
    """The decision authz made, or None when the message carries none. Raises
    ``DecisionError`` for metadata authz could not have written."""
    if not request.HasField("metadata_context"):
        return None
    namespace = request.metadata_context.filter_metadata.get(AUTHZ_NAMESPACE)
    if namespace is None:
        return None
    return from_metadata(struct_to_dict(namespace))


def struct_to_dict(struct: struct_pb2.Struct) -> dict[str, Any]:
    """Struct → plain values (json_format.MessageToDict is several times slower)."""
    return {key: _value(value) for key, value in struct.fields.items()}


def _value(value: struct_pb2.Value) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "number_value":
        return value.number_value
    if kind == "list_value":
        return [_value(item) for item in value.list_value.values]
    if kind == "struct_value":
        return struct_to_dict(value.struct_value)
    return None


def headers(message: ep.HttpHeaders) -> HeaderValues:
    """By lower-case name; a repeated header's values joined, and kept apart (``HeaderValues``)."""
    out = HeaderValues()
    for header in message.headers.headers:
        value = header.raw_value.decode("utf-8", "replace") if header.raw_value else header.value
        out.add(header.key.lower(), value)
    return out


def request_headers_response(step: HeaderStep) -> ep.ProcessingResponse:
    response = ep.ProcessingResponse(request_headers=_headers_response(step))
    if step.skip_response_body:
        response.mode_override.CopyFrom(_WITHOUT_RESPONSE_BODY)
    return response


def response_headers_response(step: HeaderStep) -> ep.ProcessingResponse:
    response = ep.ProcessingResponse(response_headers=_headers_response(step))
    if step.stream_body:
        response.mode_override.CopyFrom(_STREAM_RESPONSE_BODY)
    return response


def request_body_response(step: BodyStep) -> ep.ProcessingResponse:
    return ep.ProcessingResponse(request_body=_body_response(step))


def response_body_response(step: BodyStep) -> ep.ProcessingResponse:
    return ep.ProcessingResponse(response_body=_body_response(step))


def add_request_headers(
    response: ep.ProcessingResponse, headers: tuple[tuple[str, str], ...]
) -> None:
    """Add header mutations to a request-headers or request-body answer (a released request's
    upstream credential: the request's headers are still held while its body is processed)."""
    if not headers:
        return
    kind = response.WhichOneof("response")
    if kind == "request_headers":
        mutation = response.request_headers.response.header_mutation
    elif kind == "request_body":
        mutation = response.request_body.response.header_mutation
    else:
        raise ValueError(f"cannot add request headers to a {kind} answer")
    for name, value in headers:
        mutation.set_headers.append(_header(name, value))


def _header(name: str, value: str) -> base_pb2.HeaderValueOption:
    return base_pb2.HeaderValueOption(
        header=base_pb2.HeaderValue(key=name, raw_value=value.encode("utf-8")),
        append_action=base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD,
    )


def streamed_chunk_response(step: BodyStep) -> ep.ProcessingResponse:
    """A STREAMED chunk is always replaced, possibly by nothing (the held-back tail)."""
    return ep.ProcessingResponse(
        response_body=ep.BodyResponse(
            response=ep.CommonResponse(body_mutation=ep.BodyMutation(body=step.body or b""))
        )
    )


def _headers_response(step: HeaderStep) -> ep.HeadersResponse:
    common = ep.CommonResponse()
    if step.remove:
        common.header_mutation.remove_headers.extend(step.remove)
    written: set[str] = set()
    for name, value in step.set:
        # A repeated header comes back as its values, in order: the first replaces them all.
        option = _header(name, value)
        if name in written:
            # ext_proc reads the older "append" flag (append_action's default is indistinct).
            option.append_action = base_pb2.HeaderValueOption.APPEND_IF_EXISTS_OR_ADD
            option.append.value = True
        written.add(name)
        common.header_mutation.set_headers.append(option)
    return ep.HeadersResponse(response=common)


def _body_response(step: BodyStep) -> ep.BodyResponse:
    if step.body is None:
        return ep.BodyResponse(response=ep.CommonResponse())
    return ep.BodyResponse(
        response=ep.CommonResponse(body_mutation=ep.BodyMutation(body=step.body))
    )


def immediate(refusal: Refusal, request_id: str) -> ep.ProcessingResponse:
    """End the exchange with the gateway's own JSON answer."""
    return ep.ProcessingResponse(
        immediate_response=ep.ImmediateResponse(
            status=http_status_pb2.HttpStatus(code=refusal.status),
            headers=ep.HeaderMutation(set_headers=[_JSON_HEADER]),
            body=denial_body(
                refusal.error, refusal.reason, refusal.rule, request_id, refusal.approval_id
            ),
            details=f"extproc_{refusal.error}",
        )
    )
