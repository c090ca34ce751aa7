"""Headers as the processor reads them: by lower-case name, a repeated header's values joined
with commas (as Envoy joins them for authz), and kept apart too, so that masking writes each
back on its own (one Set-Cookie per cookie)."""

from __future__ import annotations


class HeaderValues(dict[str, str]):
    __slots__ = ("repeated",)

    def __init__(self) -> None:
        super().__init__()
        self.repeated: dict[str, list[str]] = {}  # name → its values, for names seen twice

    def add(self, name: str, value: str) -> None:
        joined = self.get(name)
        if joined is None:
            self[name] = value
            return
        self.repeated.setdefault(name, [joined]).append(value)
        self[name] = f"{joined},{value}"
