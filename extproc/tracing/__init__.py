"""Optional OpenTelemetry traces of the gRPC services (off by default).

``settings`` is the config section, ``notes`` the hook the servicers tell their result through
(free of OpenTelemetry, and a no-op unless a span is open), ``otel`` the exporter and the gRPC
server interceptor, imported only when tracing is enabled.
"""
