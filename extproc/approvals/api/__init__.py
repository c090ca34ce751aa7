"""The approvals gRPC API: generated messages and stubs (``approvals_pb2*``, from
``protos/approvals.proto``), the servicer, and the conversions between them and the core."""
