"""The tamper-evident audit trail: one hash chain per worker process, written off the request
path (or ahead of it, for exchanges opened before forwarding), checked by ``extproc audit verify``.

- ``event``: the event model (``AuditEvent``): ids, names and counts, never body content.
- ``chain``: the record format: canonical JSON, ``seq``, ``prev``, SHA-256 ``hash``, HMAC ``mac``.
- ``files``, ``resume``, ``store``: a chain's JSONL files, rotation, restart after a crash.
- ``writer``, ``settings``, ``backlog``, ``committer``: the bounded backlog, ``submit``,
  ``submit_durable`` and the exchange records, and the thread that group-commits them.
- ``exchanges``: ``open`` / ``close`` records and how verify pairs them.
- ``gaps``, ``pending``: refusals and failed writes recorded in the chain, and carried over to
  the next writer when the process stops first.
- ``verify``, ``check``, ``recovery_notes``, ``report``, ``read``: checking a trail, judging
  what it records about itself, printing it, and reading its events.
- ``config``, ``sink``: the ``audit`` config section, one writer per chain per process.
"""
