"""Human approvals for high-risk requests: the pure core (model, review rules, the store's
interface, audit events and notification payloads). No I/O, no gRPC; clock and ids are passed
in. The SQLite store, the gRPC API, webhooks and the CLI client live in ``extproc.approvals``.
"""
