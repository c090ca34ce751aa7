"""Envoy's CheckRequest → RequestView, and Answer → CheckResponse. Nothing else.

The decision travels on as dynamic metadata through ``extproc.decision.to_metadata``, the one
mapping the processor reads back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from envoy.config.core.v3 import base_pb2
from envoy.service.auth.v3 import external_auth_pb2
from envoy.type.v3 import http_status_pb2
from google.protobuf import struct_pb2
from google.rpc import code_pb2, status_pb2

from extproc.decide.answer import Answer
from extproc.decide.request import RequestView
from extproc.decision import to_metadata

_OVERWRITE = base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
_OK_STATUS = status_pb2.Status(code=code_pb2.OK)
_JSON = base_pb2.HeaderValueOption(
    header=base_pb2.HeaderValue(key="content-type", value="application/json"),
    append_action=_OVERWRITE,
)
_NO_STORE = base_pb2.HeaderValueOption(
    header=base_pb2.HeaderValue(key="cache-control", value="no-store"),
    append_action=_OVERWRITE,
)


CLIENT_ADDRESS_HEADER = "x-extproc-client-address"


def request_view(request: external_auth_pb2.CheckRequest) -> RequestView:
    """Read what the pipeline needs.

    The source address is the one Envoy computed after ``use_remote_address`` and
    ``xff_num_trusted_hops``. ext_authz reports only the direct TCP peer in
    ``attributes.source``, so envoy.yaml's header_mutation filter hands the computed address over
    in ``x-extproc-client-address``, overwriting anything a client sent. Without that header the
    direct peer is used, which a client cannot forge either.
    """
    attributes = request.attributes
    http = attributes.request.http
    path = http.path
    query = path.find("?")
    if query >= 0:
        path = path[:query]
    body: bytes | None = http.raw_body or None  # each read of the field copies the bytes
    if body is None and http.body:
        body = http.body.encode("utf-8", "surrogateescape")
    headers = http.headers
    return RequestView(
        request_id=headers.get("x-request-id") or str(http.id),
        method=http.method.upper(),
        path=path,
        host=http.host,
        source_address=headers.get(CLIENT_ADDRESS_HEADER)
        or attributes.source.address.socket_address.address,
        headers=headers,
        route=attributes.context_extensions,
        body=body,
    )


def check_response(answer: Answer) -> external_auth_pb2.CheckResponse:
    metadata = _struct(to_metadata(answer.decision))
    if answer.allowed:
        return external_auth_pb2.CheckResponse(
            status=_OK_STATUS,
            ok_response=external_auth_pb2.OkHttpResponse(
                headers=[_header(name, value) for name, value in answer.set_headers],
                headers_to_remove=list(answer.remove_headers),
            ),
            dynamic_metadata=metadata,
        )
    headers = [_JSON, _NO_STORE]
    if answer.www_authenticate:
        headers.append(_header("www-authenticate", answer.www_authenticate))
    headers.append(_header("x-request-id", answer.request_id))
    code = code_pb2.UNAUTHENTICATED if answer.status == 401 else code_pb2.PERMISSION_DENIED
    return external_auth_pb2.CheckResponse(
        status=status_pb2.Status(code=code),
        denied_response=external_auth_pb2.DeniedHttpResponse(
            status=http_status_pb2.HttpStatus(code=answer.status),
            headers=headers,
            body=answer.deny_body().decode("utf-8"),
        ),
        dynamic_metadata=metadata,
    )


def _header(name: str, value: str) -> base_pb2.HeaderValueOption:
    return base_pb2.HeaderValueOption(
        header=base_pb2.HeaderValue(key=name, value=value), append_action=_OVERWRITE
    )


def _struct(values: Mapping[str, Any]) -> struct_pb2.Struct:
    """Written field by field: ``Struct.update`` costs about twice as much (7.5 against 4.3 µs
    for a typical decision), and this runs on every Check."""
    metadata = struct_pb2.Struct()
    fields = metadata.fields
    for name, value in values.items():
        _set(fields[name], value)
    return metadata


def _set(target: struct_pb2.Value, value: Any) -> None:
    if isinstance(value, str):
        target.string_value = value
    elif isinstance(value, bool):  # before int: a bool is an int
        target.bool_value = value
    elif isinstance(value, int | float):
        target.number_value = value
    elif isinstance(value, list | tuple):
        items = target.list_value.values
        for item in value:
            _set(items.add(), item)
    elif isinstance(value, Mapping):
        target.struct_value.update(value)
    elif value is None:
        target.null_value = struct_pb2.NULL_VALUE
    else:
        raise TypeError(f"metadata cannot hold a {type(value).__name__}")
