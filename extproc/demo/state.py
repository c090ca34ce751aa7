"""A demo state directory: keys, the generated GeoIP database, the issuer's key, a config that
``extproc check`` accepts as it is, and that config's policy tests. ``extproc demo init`` writes
one; ``extproc up`` prepares its own with the same function, so what a user inspects is what the
demo runs.

Existing keys are kept (tokens, masked values and the audit trail stay valid), and so is an
existing config written for the same issuer address, so a user's edits survive.
"""

from __future__ import annotations

import os
import secrets
from importlib import resources
from pathlib import Path

from extproc.demo.issuer import prepare_issuer_state
from extproc.geo.writer import write_demo_database
from extproc.settings import config_schema_text

DEFAULT_ISSUER_PORT = 18443
SCHEMA_FILE = "extproc.schema.json"
# The shipped template points at the schema in a checkout; a state directory has its own copy.
_TEMPLATE_SCHEMA_LINE = "# yaml-language-server: $schema=../../extproc.schema.json\n"
_STATE_SCHEMA_LINE = f"# yaml-language-server: $schema={SCHEMA_FILE}\n"
_KEYS = ("masking.key", "audit.key", "model.key")
POLICY_TESTS = (
    "policy_test.yaml"  # the demo config's policy tests: extproc test DIR/policy_test.yaml
)


def default_issuer_url(port: int = DEFAULT_ISSUER_PORT) -> str:
    return f"http://127.0.0.1:{port}"


def init_demo_state(state_dir: Path, issuer_url: str | None = None) -> Path:
    """Create what is missing in ``state_dir``; return the config's path."""
    issuer_url = issuer_url or default_issuer_url()
    state_dir.mkdir(parents=True, exist_ok=True)
    keys = state_dir / "keys"
    keys.mkdir(mode=0o700, exist_ok=True)
    for name in _KEYS:
        _write_secret_once(keys / name)
    prepare_issuer_state(state_dir / "issuer", issuer_url)
    database = state_dir / "geoip" / "demo.mmdb"
    if not database.exists():
        write_demo_database(database)
    _write_schema(state_dir / SCHEMA_FILE)
    _write_once(state_dir / POLICY_TESTS, _shipped(POLICY_TESTS))
    return _write_config(state_dir / "config.yaml", issuer_url)


def demo_model_key(state_dir: Path) -> str:
    """The secret the gateway injects into requests to the demo model."""
    return (state_dir / "keys" / "model.key").read_text(encoding="utf-8").strip()


def _write_secret_once(path: Path) -> None:
    if path.exists():
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(48))


def _shipped(name: str) -> str:
    return resources.files("extproc.demo").joinpath(name).read_text("utf-8")


def _write_once(path: Path, text: str) -> None:
    if not path.exists():
        path.write_text(text, encoding="utf-8")


def _write_schema(path: Path) -> None:
    """The schema of this version, for the editor that opens the config beside it."""
    path.write_text(config_schema_text(), encoding="utf-8")


def _write_config(config: Path, issuer_url: str) -> Path:
    template = resources.files("extproc.demo").joinpath("config.yaml").read_text("utf-8")
    rendered = template.replace(_TEMPLATE_SCHEMA_LINE, _STATE_SCHEMA_LINE, 1)
    rendered = rendered.replace("{issuer_url}", issuer_url)
    if config.exists():
        current = config.read_text(encoding="utf-8")
        if f'"{issuer_url}"' in current and "\nmasking:" in current and "\naudit:" in current:
            return config
        # Written for another issuer address or by an older version without masking and audit:
        # keep the user's copy beside it, start from the template.
        config.replace(config.with_suffix(".yaml.bak"))
    config.write_text(rendered, encoding="utf-8")
    return config
