"""The model of a rule's ``when`` block: conditions that must all hold (lists mean "any of").

```yaml
when:
  groups_any: [ml-eu]
  source_region: eu
  not: {source_country: FR}
  any: [{path: "/v1/*"}, {model: "gpt-*"}]
```
Globs (``*``, ``?``, ``[...]``) are allowed in subject, host, path, model, header and route
values. ``unknown`` in ``source_region`` / ``source_country`` / ``target_region`` matches a
source or target found in no table; ``none`` in ``declared_region`` matches a token without a
location claim. Conditions are compiled (and checked against the defined regions) in
``extproc.policy.conditions``.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from extproc.config.base import Name, Names, SettingsModel

_GLOBS = "values or globs (*, ?, [...]); any of them"


class WhenSettings(SettingsModel):
    """Conditions on a request that must all hold; an empty block always holds."""

    subject: Names | None = Field(None, description=f"the caller's subject: {_GLOBS}")
    issuer: Names | None = Field(None, description="issuer names; any of them")
    groups_any: Names | None = Field(None, description="the caller is in one of these groups")
    groups_all: Names | None = Field(None, description="the caller is in all of these groups")
    source_country: Names | None = Field(
        None, description="ISO 3166-1 alpha-2 codes, or unknown; any of them"
    )
    source_region: Names | None = Field(None, description="regions, or unknown; any of them")
    declared_region: Names | None = Field(
        None, description="regions the token declares, or none; any of them"
    )
    target_region: Names | None = Field(None, description="regions, or unknown; any of them")
    declared_region_matches_source: bool | None = Field(
        None, description="the token declares a region, and the source is (or is not) in it"
    )
    target_region_allowed_for_groups: bool | None = Field(
        None, description="one of the caller's groups may (or may not) reach the target region"
    )
    host: Names | None = Field(None, description=f"the host: {_GLOBS}")
    method: Names | None = Field(None, description="HTTP methods; any of them")
    path: Names | None = Field(None, description=f"the path without the query: {_GLOBS}")
    model: Names | None = Field(None, description=f"the model named in the body: {_GLOBS}")
    data_class: Names | None = Field(None, description="the route's data classes; any of them")
    headers: dict[Name, Names] | None = Field(
        None, description=f"header name → {_GLOBS}; every header named must match"
    )
    route: dict[Name, Names] | None = Field(
        None, description=f"context extension → {_GLOBS}; every one named must match"
    )
    authenticated: bool | None = Field(None, description="whether the caller has an identity")
    any_: Annotated[tuple[WhenSettings, ...], Field(min_length=1)] | None = Field(
        None, alias="any", description="blocks of which at least one must hold"
    )
    not_: WhenSettings | None = Field(None, alias="not", description="a block that must not hold")
