"""``extproc test``: policy tests a security team writes in YAML, run against a config without a
server, like ``opa test`` and Cerbos' test suites."""
