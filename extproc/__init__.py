"""extproc: the policy enforcement point beside Envoy (ext_authz and ext_proc services)."""
