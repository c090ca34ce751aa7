"""One Envoy config holding every scenario, so all of them run in the same Envoy process.

Each scenario is a listener whose route passes requests through to an upstream:

- ``backend``: a listener of the same Envoy that reads the whole request (buffer filter) and
  answers the 8 KB JSON body with a ``direct_response``; the upstream of S0, S1, E1 and E2;
- ``sse``: the small streaming upstream (``bench/sse_upstream.py``); the upstream of E3.

The filters mirror the production template (``envoy/envoy.yaml``): header_mutation for the
client address, ext_authz with the start of the body, ext_proc with BUFFERED bodies switched to
STREAMED for event streams, metadata forwarding of the ext_authz namespace, fail closed. Access
logs are off in every scenario.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Json = dict[str, Any]
HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
BUFFER_LIMIT = 8 * 1024 * 1024
ROUTE_CONTEXT = {
    "target_region": "eu",
    "upstream_credential": "model",
    "data_class": "personal",
    "masking_profile": "standard",
}


@dataclass(frozen=True)
class Listener:
    name: str
    port: int
    filters: tuple[str, ...]  # "jwt", "authz", "processor"
    cluster: str


def envoy_config(
    *,
    admin: int,
    listeners: Sequence[Listener],
    backend_port: int,
    backend_body: bytes,
    clusters: Mapping[str, list[int]],
    jwks: str,
    issuer: str,
    audience: str,
    group: str,
) -> Json:
    """The whole bootstrap: the scenario listeners, the ``backend`` listener and the clusters
    (``backend``, ``sse``, ``extproc_authz``, ``extproc_processor``: name → ports)."""
    http_filters = {
        "jwt": _jwt_filters(jwks, issuer, audience, group),
        "authz": _authz_filters(),
        "processor": [_processor_filter()],
    }
    scenario_listeners = [
        _listener(
            item.name,
            item.port,
            [f for kind in item.filters for f in http_filters[kind]],
            _proxy_route(item.cluster, authz="authz" in item.filters),
        )
        for item in listeners
    ]
    backend = _listener("backend", backend_port, [_buffer_filter()], _direct_route(backend_body))
    return {
        "admin": {"address": _address(admin)},
        "static_resources": {
            "listeners": [*scenario_listeners, backend],
            "clusters": [_cluster(name, ports) for name, ports in clusters.items()],
        },
    }


# -- listeners and routes -------------------------------------------------------------------------
def _listener(name: str, port: int, filters: list[Json], route: Json) -> Json:
    router = {
        "name": "envoy.filters.http.router",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
        },
    }
    manager = {
        "@type": HCM,
        "stat_prefix": name,
        "use_remote_address": True,
        "xff_num_trusted_hops": 1,  # the load generator plays a client behind one proxy
        "route_config": {
            "name": name,
            "max_direct_response_body_size_bytes": 1024 * 1024,
            "virtual_hosts": [{"name": name, "domains": ["*"], "routes": [route]}],
        },
        "http_filters": [*filters, router],
    }
    return {
        "name": name,
        "address": _address(port),
        "per_connection_buffer_limit_bytes": BUFFER_LIMIT,
        "filter_chains": [
            {
                "filters": [
                    {
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": manager,
                    }
                ]
            }
        ],
    }


def _proxy_route(cluster: str, *, authz: bool) -> Json:
    route: Json = {"match": {"prefix": "/"}, "route": {"cluster": cluster, "timeout": "60s"}}
    if authz:
        route["typed_per_filter_config"] = {
            "envoy.filters.http.ext_authz": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute",
                "check_settings": {"context_extensions": ROUTE_CONTEXT},
            }
        }
    return route


def _direct_route(body: bytes) -> Json:
    return {
        "match": {"prefix": "/"},
        "direct_response": {"status": 200, "body": {"inline_string": body.decode()}},
        "response_headers_to_add": [
            {"header": {"key": "content-type", "value": "application/json"}}
        ],
    }


# -- HTTP filters ---------------------------------------------------------------------------------
def _buffer_filter() -> Json:
    """The backend reads the whole request before it answers, so keep-alive connections from
    the scenario listeners are reused (an HTTP/1.1 answer sent before the request's end closes
    the connection)."""
    return {
        "name": "envoy.filters.http.buffer",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer",
            "max_request_bytes": BUFFER_LIMIT,
        },
    }


def _jwt_filters(jwks: str, issuer: str, audience: str, group: str) -> list[Json]:
    """Envoy's native alternative to extproc authz: jwt_authn (verified tokens cached) and rbac
    on the ``groups`` claim."""
    jwt_authn = {
        "name": "envoy.filters.http.jwt_authn",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
            "providers": {
                "bench": {
                    "issuer": issuer,
                    "audiences": [audience],
                    "local_jwks": {"inline_string": jwks},
                    "payload_in_metadata": "jwt_payload",
                    "forward": True,
                    "jwt_cache_config": {"jwt_cache_size": 100},
                }
            },
            "rules": [{"match": {"prefix": "/"}, "requires": {"provider_name": "bench"}}],
        },
    }
    group_matcher = {
        "filter": "envoy.filters.http.jwt_authn",
        "path": [{"key": "jwt_payload"}, {"key": "groups"}],
        "value": {"list_match": {"one_of": {"string_match": {"exact": group}}}},
    }
    rbac = {
        "name": "envoy.filters.http.rbac",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
            "rules": {
                "action": "ALLOW",
                "policies": {
                    "require-group": {
                        "permissions": [{"any": True}],
                        "principals": [{"sourced_metadata": {"metadata_matcher": group_matcher}}],
                    }
                },
            },
        },
    }
    return [jwt_authn, rbac]


def _authz_filters() -> list[Json]:
    client_address = {
        "name": "envoy.filters.http.header_mutation",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
            "mutations": {
                "request_mutations": [
                    {
                        "append": {
                            "header": {
                                "key": "x-extproc-client-address",
                                "value": "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%",
                            },
                            "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                        }
                    }
                ]
            },
        },
    }
    ext_authz = {
        "name": "envoy.filters.http.ext_authz",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz",
            "transport_api_version": "V3",
            "failure_mode_allow": False,
            "status_on_error": {"code": 503},
            "grpc_service": {"envoy_grpc": {"cluster_name": "extproc_authz"}, "timeout": "2s"},
            "with_request_body": {
                "max_request_bytes": BUFFER_LIMIT,
                "allow_partial_message": True,
                "pack_as_bytes": True,
            },
        },
    }
    return [client_address, ext_authz]


def _processor_filter() -> Json:
    return {
        "name": "envoy.filters.http.ext_proc",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor",
            "failure_mode_allow": False,
            "message_timeout": "5s",
            "max_message_timeout": "30s",
            "grpc_service": {
                "envoy_grpc": {"cluster_name": "extproc_processor"},
                "timeout": "300s",
            },
            "processing_mode": {
                "request_header_mode": "SEND",
                "response_header_mode": "SEND",
                "request_body_mode": "BUFFERED",
                "response_body_mode": "BUFFERED",
                "request_trailer_mode": "SKIP",
                "response_trailer_mode": "SKIP",
            },
            "allow_mode_override": True,
            "metadata_options": {
                "forwarding_namespaces": {"untyped": ["envoy.filters.http.ext_authz"]}
            },
        },
    }


# -- clusters -------------------------------------------------------------------------------------
def _cluster(name: str, ports: list[int]) -> Json:
    cluster: Json = {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "per_connection_buffer_limit_bytes": BUFFER_LIMIT,
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [
                {"lb_endpoints": [{"endpoint": {"address": _address(port)}} for port in ports]}
            ],
        },
    }
    if name.startswith("extproc_"):  # gRPC: HTTP/2, one endpoint per worker process
        cluster["lb_policy"] = "LEAST_REQUEST"
        cluster["typed_extension_protocol_options"] = {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {
                    "http2_protocol_options": {
                        "initial_stream_window_size": 16777216,
                        "initial_connection_window_size": 16777216,
                    }
                },
            }
        }
    return cluster


def _address(port: int) -> Json:
    return {"socket_address": {"address": "127.0.0.1", "port_value": port}}
