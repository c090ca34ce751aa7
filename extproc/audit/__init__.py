"""The tamper-evident audit trail: one hash chain per worker process, written off the request
path, checked by ``extproc audit verify``.

- ``event``: the event model (``AuditEvent``): ids, names and counts, never body content.
- ``chain``: the record format: canonical JSON, ``seq``, ``prev``, SHA-256 ``hash``, HMAC ``mac``.
- ``files``, ``resume``, ``store``: a chain's JSONL files, rotation, restart after a crash.
- ``writer``: the bounded queue and the background thread (``AuditWriter.submit``).
- ``verify``, ``read``: checking a trail and reading its events.
- ``config``, ``sink``: the ``audit`` config section, one writer per chain per process.
"""
