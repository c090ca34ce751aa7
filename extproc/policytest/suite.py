"""The test suite file: named fixtures and cases with what each must come to.

```yaml
config: ../config.yaml            # relative to this file (or extproc test --config)
fixtures:
  principals:                     # the claims of a verified token, mapped like a real one
    alice: {sub: alice, groups: [ml-eu]}
    alice-declaring-us: {sub: alice, groups: [ml-eu], region: US}
  sources: {berlin: 192.0.2.10, new-york: 198.51.100.7}
  routes:                         # what envoy.yaml gives a route: path, method, context_extensions
    eu-chat: {path: /eu/v1/chat/completions, ext: {target_region: eu}}
  bodies:
    card: {json: {messages: [{role: user, content: "card 4111 1111 1111 1111"}]}}
tests:
  - name: alice reaches the eu model from Berlin
    principal: alice
    source: berlin
    route: eu-chat
    expect: {effect: allow, rule: eu-team-to-eu}
  - name: a card in the prompt is masked before the model sees it
    principal: alice
    source: berlin
    route: eu-chat
    body: card
    expect: {outcome: allowed, masked: [CARD]}
```
A case without ``principal`` has no token (401 ``missing_token``). ``expect`` names only what
matters to the case: ``effect``, ``outcome``, ``rule``, ``error``, ``status``, ``masked`` (the
entity types found in the request body, as a set), ``blocked`` (the blocking rule).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from extproc.config.base import SettingsModel

Name = str


class RouteFixture(SettingsModel):
    path: str = Field(description="the request path, with its query string if any")
    method: str = "POST"
    host: str = "gateway.test"
    headers: dict[str, str] = Field(default_factory=dict)
    ext: dict[str, str] = Field(
        default_factory=dict, description="the route's context_extensions in envoy.yaml"
    )


class BodyFixture(SettingsModel):
    json_value: Any = Field(None, alias="json", description="a JSON body, written as YAML")
    text: str | None = Field(None, description="a body as text")
    content_type: str | None = None


class Fixtures(SettingsModel):
    principals: dict[Name, dict[str, Any]] = Field(default_factory=dict)
    sources: dict[Name, str] = Field(default_factory=dict)
    routes: dict[Name, RouteFixture] = Field(default_factory=dict)
    bodies: dict[Name, BodyFixture] = Field(default_factory=dict)


class Expectation(SettingsModel):
    effect: Literal["allow", "deny", "require_approval"] | None = None
    outcome: Literal["allowed", "denied", "held", "dry_run"] | None = None
    rule: str | None = None
    error: str | None = None
    status: int | None = None
    masked: tuple[str, ...] | None = Field(
        None, description="entity types found in the request body (as a set)"
    )
    blocked: str | None = Field(None, description="the blocking rule that refuses the body")


class Case(SettingsModel):
    name: str
    principal: Name | None = None
    source: Name
    route: Name
    body: Name | None = None
    expect: Expectation


class Suite(SettingsModel):
    config: str | None = Field(None, description="the config under test, relative to this file")
    fixtures: Fixtures = Field(default_factory=Fixtures)
    tests: tuple[Case, ...] = Field(min_length=1)
