"""Where a request comes from."""

from __future__ import annotations

from dataclasses import dataclass

UNKNOWN_REGION = "unknown"


@dataclass(frozen=True, slots=True)
class Location:
    """The client address Envoy computed, its country and the named regions that country is in.

    ``regions`` keeps the configured order; ``region`` is the first of them, or ``"unknown"`` when
    the address maps to no region (rules must handle ``unknown`` explicitly). ``source`` says which
    table answered: ``network_table``, ``database`` or ``none``.
    """

    address: str
    country: str | None
    regions: tuple[str, ...]
    source: str

    @property
    def region(self) -> str:
        return self.regions[0] if self.regions else UNKNOWN_REGION
