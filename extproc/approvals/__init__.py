"""Human approvals at the edges: the SQLite store (``sqlite``, ``connections``, ``schema``), the
asyncio waiter for held requests (``waiter``), the data path's approval step (``gate``), the
approvals gRPC API (``api``) and its service runtime and background feed (``runtime``,
``feed``), webhooks (``webhooks``, ``settings``) and the ``extproc approvals`` client
(``client``, ``display``). The rules themselves are pure and live in ``extproc.approval``.
"""
