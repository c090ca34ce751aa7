"""What a session recording holds of one exchange, decided here, without I/O.

The exchange feeds the recorder what it let through, after masking: the request body as it was
forwarded (decoded when it arrived compressed), the response body, or each chunk of a streamed
response with its offset from the exchange's start. Nothing else:

- headers: only an allowlist whose values cannot be credentials, each value masked like a body
  (``x-user: jane@example.com`` is recorded masked); every other header (authorization, cookies,
  the upstream credential the gateway injected, anything unknown) is counted, never written, not
  even its name;
- the path without its query string (the processor already masked the path; the query is
  where tokens travel);
- a body that is not UTF-8 text (binary parts the masker could not read) is omitted with its
  size: what was not read as text cannot be shown to be clean;
- a response carrying values restored for the caller (``restore: true``) is omitted: those are
  the caller's raw values;
- a request the processor refused (a blocked prompt, an unreleased hold) never reached the
  model: its body is omitted with the refusal's code.

Memory is bounded: everything recorded counts against ``max_bytes`` (each chunk also costs a
fixed overhead, so a stream of empty chunks is bounded too); past it the text is cut at a
character boundary, the rest counted as ``dropped_bytes`` and the recording marked
``truncated``, never silently.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from extproc.audit.recording import RECORDING_FORMAT

CHUNK_OVERHEAD = 32  # bytes a chunk's entry costs beyond its text (offset, keys)
SAFE_REQUEST_HEADERS = frozenset(
    {":method", ":authority", ":scheme", "accept", "accept-encoding", "content-encoding",
     "content-type", "user-agent", "x-request-id"}
)  # fmt: skip
SAFE_RESPONSE_HEADERS = frozenset(
    {":status", "cache-control", "content-encoding", "content-type", "date", "server",
     "x-request-id"}
)  # fmt: skip
_SAFE = {"request": SAFE_REQUEST_HEADERS, "response": SAFE_RESPONSE_HEADERS}


class Recorder:
    """One exchange's recording while it runs; ``document`` is what the file will hold."""

    def __init__(self, max_bytes: int, started: float) -> None:
        self.max_bytes = max_bytes
        self._room = max_bytes
        self._started = started
        self.dropped_bytes = 0
        self.request: dict[str, Any] = {}
        self.response: dict[str, Any] = {}
        self._chunks: list[dict[str, Any]] | None = None

    @property
    def truncated(self) -> bool:
        return self.dropped_bytes > 0

    def headers(
        self,
        direction: str,
        headers: Mapping[str, str],
        mask: Callable[[str], str],
        now: float | None = None,
    ) -> None:
        """The side's headers (``now``: when they arrived, monotonic, kept as an offset)."""
        safe, kept, withheld = _SAFE[direction], {}, 0
        for name, value in headers.items():
            if name in safe:
                kept[name] = self._text(mask(value))
            elif name != ":path":  # the path is recorded on its own, masked, without its query
                withheld += 1
        side = self._side(direction)
        if now is not None:
            side["at_ms"] = round((now - self._started) * 1000, 3)
        side["headers"] = kept
        if withheld:
            side["headers_withheld"] = withheld

    def body(self, direction: str, body: bytes) -> None:
        """A whole body as the processor forwarded it (masked, decoded)."""
        side = self._side(direction)
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            self.omit(direction, "not UTF-8 text", len(body))
            return
        side["body"] = self._text(text)

    def omit(self, direction: str, reason: str, size: int | None = None) -> None:
        side = self._side(direction)
        side.pop("body", None)
        side.pop("chunks", None)
        if direction == "response":
            self._chunks = None
        side["omitted"] = reason
        if size is not None:
            side["omitted_bytes"] = size

    def chunk(self, data: bytes, now: float) -> None:
        """One chunk of a streamed response, as sent to the client, at ``now`` (monotonic)."""
        if "omitted" in self.response:
            return
        if self._chunks is None:
            self._chunks = self.response["chunks"] = []
        if self._room < CHUNK_OVERHEAD:
            self.dropped_bytes += len(data) + CHUNK_OVERHEAD
            return
        self._room -= CHUNK_OVERHEAD
        at_ms = round((now - self._started) * 1000, 3)
        self._chunks.append({"at_ms": at_ms, "data": self._text(data.decode("utf-8", "replace"))})

    def document(self, summary: Mapping[str, Any]) -> dict[str, Any]:
        """The recording: ``summary`` (ids, method, masked path, profile) and both sides."""
        return {
            "format": RECORDING_FORMAT,
            **summary,
            "max_bytes": self.max_bytes,
            "truncated": self.truncated,
            "dropped_bytes": self.dropped_bytes,
            "request": self.request,
            "response": self.response,
        }

    def _side(self, direction: str) -> dict[str, Any]:
        return self.request if direction == "request" else self.response

    def _text(self, text: str) -> str:
        """``text`` within the room left; what does not fit is counted as dropped."""
        if len(text) * 4 <= self._room:  # fits even if every character took 4 bytes
            self._room -= len(text.encode("utf-8"))
            return text
        data = text.encode("utf-8")
        if len(data) <= self._room:
            self._room -= len(data)
            return text
        kept = data[: self._room].decode("utf-8", "ignore")  # never half a character
        self.dropped_bytes += len(data) - len(kept.encode("utf-8"))
        self._room = 0
        return kept
