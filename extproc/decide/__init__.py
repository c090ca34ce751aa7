"""The authz decision pipeline: identity → facts → policy → answer. Pure: no gRPC, no I/O."""
