"""The ``upstreams`` section of the config: its model, and its compile step → ``Upstreams``.

```yaml
upstreams:
  credentials:
    model-eu: {env: MODEL_EU_KEY}                       # Authorization: Bearer $MODEL_EU_KEY
    model-us: {header: x-api-key, file: keys/model-us}  # never the secret itself
  strip_request_headers: [authorization, x-api-key]
```
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field

from extproc.config.base import FilePath, Name, Names, SettingsModel, resolve_path
from extproc.config.problems import Problems
from extproc.credentials import DEFAULT_STRIPPED_HEADERS, UpstreamCredential, Upstreams

_AUTHORIZATION = "authorization"


class CredentialSettings(SettingsModel):
    """A secret the gateway injects into allowed requests; exactly one of ``env`` and ``file``."""

    header: Name = Field(_AUTHORIZATION, description="the header that carries it")
    prefix: str | None = Field(
        None,
        description="written before the secret (default: 'Bearer ' for authorization, else none)",
    )
    env: Name | None = Field(None, description="environment variable holding the secret")
    file: FilePath | None = Field(None, description="file holding the secret")


class UpstreamsSettings(SettingsModel):
    """Credentials only the gateway holds (a route picks one with the context extension
    ``upstream_credential``), and the caller's credentials that never reach an upstream."""

    credentials: dict[Name, CredentialSettings] = Field(
        default_factory=dict, description="credential name → where its secret comes from"
    )
    strip_request_headers: Names = Field(
        DEFAULT_STRIPPED_HEADERS, description="caller headers removed before the upstream"
    )


def compile_upstreams(settings: UpstreamsSettings, base_dir: Path) -> Upstreams:
    """Read every secret now, so a missing one refuses the config rather than a request."""
    problems = Problems()
    credentials = {
        name: _credential(name, credential, base_dir, problems.at("credentials", name))
        for name, credential in settings.credentials.items()
    }
    problems.check()
    return Upstreams(
        credentials=credentials,
        strip_request_headers=tuple(h.lower() for h in settings.strip_request_headers),
    )


def _credential(
    name: str, settings: CredentialSettings, base_dir: Path, problems: Problems
) -> UpstreamCredential:
    header = settings.header.lower()
    prefix = settings.prefix
    if prefix is None:
        prefix = "Bearer " if header == _AUTHORIZATION else ""
    secret = ""
    if (settings.env is None) == (settings.file is None):
        problems.add((), "set exactly one of 'env' (environment variable) or 'file'")
    elif settings.env is not None:
        secret = os.environ.get(settings.env, "")
        if not secret:
            problems.add(("env",), f"environment variable {settings.env} is not set or empty")
    elif settings.file is not None:
        path = resolve_path(settings.file, base_dir)
        try:
            secret = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            problems.add(("file",), f"cannot read credential file {path}: {exc}")
        else:
            if not secret:
                problems.add(("file",), f"credential file {path} is empty")
    if any(ch in prefix + secret for ch in "\r\n\0"):
        problems.add((), "the credential contains a line break or NUL, which no header may carry")
    return UpstreamCredential(name=name, header=header, value=prefix + secret)
