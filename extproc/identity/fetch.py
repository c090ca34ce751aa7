"""HTTP GET of a JSON document (OIDC discovery, JWKS): the network edge of identity."""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any

import orjson

from extproc.identity.jwks import KeySourceError

MAX_DOCUMENT_BYTES = 1 << 20


def http_get_json(url: str, timeout: float) -> Any:
    if not url.startswith(("https://", "http://")):
        raise KeySourceError(f"refusing to fetch {url!r}: only http(s) URLs are allowed")
    request = urllib.request.Request(url, headers={"accept": "application/json"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - scheme checked
            body = response.read(MAX_DOCUMENT_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise KeySourceError(f"GET {url} answered {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise KeySourceError(f"GET {url} failed: {reason}") from None
    if len(body) > MAX_DOCUMENT_BYTES:
        raise KeySourceError(f"GET {url}: document larger than {MAX_DOCUMENT_BYTES} bytes")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise KeySourceError(f"GET {url}: not JSON") from None
