"""Help for the options ``extproc``'s parsers declare without one, and defaults in every help
line: ``extproc COMMAND --help`` explains each option and shows what it is when not given."""

from __future__ import annotations

import argparse

_CONFIG = "the extproc config file (YAML)"
_KEY_FILE = "a file holding the audit key (default: the key of --config, or $EXTPROC_AUDIT_KEY)"
_KEY_ENV = "the environment variable holding the audit key"
_TIMEOUT = "seconds to wait for the approvals service"
HELP: dict[tuple[str, str], str] = {
    ("check", "config"): _CONFIG,
    ("explain", "--config"): _CONFIG,
    ("explain", "--path"): "the request path (a query string is ignored, as authz does)",
    ("explain", "--method"): "the HTTP method",
    ("explain", "--host"): "the :authority / Host the request names",
    ("explain", "--header"): "a request header, e.g. --header x-tenant=blue (repeat)",
    ("explain", "--body-file"): "a request body (JSON), for rules on the model it names",
    ("test", "suites"): "policy test suites (YAML files with a top-level tests: list)",
    ("demo init", "directory"): "the state directory to create or complete",
    ("demo issuer", "--host"): "the address to listen on",
    ("demo issuer", "--port"): "the port to listen on",
    ("demo model", "--host"): "the address to listen on",
    ("demo model", "--port"): "the port to listen on",
    ("demo envoy-config", "output"): "where to write the Envoy config (JSON)",
    ("demo envoy-config", "--listen-host"): "the address Envoy's listener binds",
    ("demo envoy-config", "--listener-port"): "the port clients call",
    ("demo envoy-config", "--admin-port"): "Envoy's admin port (on 127.0.0.1)",
    ("serve", "service"): "which service to run",
    ("serve", "--config"): _CONFIG,
    ("serve", "--host"): "the address the workers listen on",
    ("serve", "--workers"): "worker processes, one port each (default: the number of cores)",
    ("serve", "--log-level"): "debug, info, warning or error (JSON lines on stderr)",
    ("serve", "--reload-interval"): "how often the config and the files it names are checked",
    ("up", "--state-dir"): "where the demo keeps keys, config, audit trail and logs",
    ("up", "--admin-port"): "Envoy's admin port",
    ("up", "--model-port"): "the demo model's port",
    ("up", "--authz-port"): "the first authz worker's port (metrics on this + 100)",
    ("up", "--processor-port"): "the first processor worker's port (metrics on this + 100)",
    ("up", "--approvals-port"): "the approvals service's port (metrics on this + 100)",
    ("up", "--issuer-port"): "the demo OIDC issuer's port",
    ("up", "--workers"): "worker processes per service",
    ("mask", "--profile"): "the masking profile to apply (default: the config's default)",
    ("mask", "--direction"): "mask as a request (to the model) or as a response",
    ("audit verify", "--key-file"): _KEY_FILE,
    ("audit verify", "--key-env"): _KEY_ENV,
    ("audit report", "--key-file"): _KEY_FILE,
    ("audit report", "--key-env"): _KEY_ENV,
    ("audit report", "--format"): "a self-contained HTML page, or JSON for machines",
    ("audit replay", "--key-file"): _KEY_FILE,
    ("audit replay", "--key-env"): _KEY_ENV,
    ("audit prune", "--key-file"): _KEY_FILE,
    ("audit prune", "--key-env"): _KEY_ENV,
    ("approvals list", "--status"): "only approvals in this state",
    ("approvals list", "--limit"): "at most this many, newest first",
    ("token", "--sub"): "the subject (the caller's name)",
    ("token", "--claim"): "an extra claim, e.g. --claim region=DE (repeat)",
    ("token", "--audience"): "the audience the token is for",
    ("token", "--state-dir"): "the demo state directory whose issuer signs the token",
}
for _action in ("list", "show", "approve", "deny", "revoke", "watch"):
    HELP[(f"approvals {_action}", "--timeout")] = _TIMEOUT


class _Defaults(argparse.HelpFormatter):
    """A default in the help line, unless the line already says it, or there is none to say
    (a flag's False, an option's None or empty value)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "default" in text
            or default is None
            or default is False
            or (isinstance(default, str | list | tuple) and not default)
            or default is argparse.SUPPRESS
            or not (
                action.option_strings or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE)
            )
        ):
            return text
        return f"{text} (default: %(default)s)"


def document(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> None:
    """Fill in missing help from ``HELP`` and show defaults, for this parser and below."""
    parser.formatter_class = _Defaults
    command = " ".join(path)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                document(sub, (*path, name))
            continue
        if action.help is None:
            name = action.option_strings[-1] if action.option_strings else action.dest
            action.help = HELP.get((command, name))
