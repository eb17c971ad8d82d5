"""The shape of a rule: its metadata, its tunables and its check, independent of `pulumi_policy`.

Each rule module defines one `Rule`. `inferstack.policies.pack` turns rules into CrossGuard
policies; tests call `check` directly on hand-built resources as well as through the real pack.

A rule's why and fix are written once, in its module docstring (`name: summary`, then a `Why:`
paragraph and a `Fix:` paragraph), which the module hands to its `Rule` as `doc`: the pack's
remediation steps, the pack README and the documentation site all read them from there.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from inferstack.contract.labels import TIER_LABEL, TIER_REALTIME
from inferstack.policies.resources import Finding, Resource

Severity = Literal["low", "medium", "high", "critical"]
Enforcement = Literal["advisory", "mandatory", "remediate", "disabled"]

ResourceCheck = Callable[[Resource, Mapping[str, Any]], list[str]]
"""A resource rule: the messages for one resource (empty when it complies)."""
StackCheck = Callable[[Sequence[Resource], Mapping[str, Any]], list[Finding]]
"""A stack rule: findings across all resources, each attributed to a resource URN."""


@dataclass(frozen=True)
class Rule:
    """One policy of the pack.

    `doc` is the rule module's docstring, the one place its why and fix are written.
    `config_schema` maps each tunable to its JSON schema (with a `default`); the engine fills the
    defaults in before the pack sees the config, and `config_value` falls back to them too.
    """

    name: str
    description: str
    doc: str | None
    severity: Severity
    enforcement: Enforcement
    check_resource: ResourceCheck | None = None
    check_stack: StackCheck | None = None
    config_schema: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if (self.check_resource is None) == (self.check_stack is None):
            raise TypeError(f"rule {self.name}: give exactly one of check_resource, check_stack")
        doc = self.doc or ""
        if not doc.startswith(f"{self.name}: "):
            raise ValueError(f"rule {self.name}: its doc must start with '{self.name}: <summary>'")
        for heading in ("Why", "Fix"):
            if not doc_section(doc, heading):
                raise ValueError(f"rule {self.name}: its doc needs a '{heading}:' paragraph")

    @property
    def why(self) -> str:
        """Why the rule matters: the `Why:` paragraph of its module docstring."""
        return doc_section(self.doc or "", "Why")

    @property
    def remediation(self) -> str:
        """How to comply: the `Fix:` paragraph of its module docstring."""
        return doc_section(self.doc or "", "Fix")

    @property
    def kind(self) -> Literal["resource", "stack"]:
        """Whether the engine calls it per resource (`Analyze`) or once (`AnalyzeStack`)."""
        return "resource" if self.check_resource is not None else "stack"

    def defaults(self) -> dict[str, Any]:
        """The schema defaults of every tunable."""
        return {
            key: schema["default"]
            for key, schema in self.config_schema.items()
            if "default" in schema
        }


_HEADING: Final = re.compile(r"^(Why|Fix): ")
"""A paragraph that opens a section of a rule's docstring."""


def doc_section(doc: str, heading: str) -> str:
    """The paragraphs of `doc` from `<heading>:` to the next heading, each unwrapped to one line.

    Paragraphs within a section stay apart (a blank line between them); the heading is dropped
    and the first letter capitalised, so the text stands alone.
    """
    paragraphs = [" ".join(p.split()) for p in doc.split("\n\n") if p.strip()]
    found: list[str] = []
    for paragraph in paragraphs:
        if _HEADING.match(paragraph):
            if found:
                break
            if paragraph.startswith(f"{heading}: "):
                found.append(paragraph.removeprefix(f"{heading}: "))
        elif found:
            found.append(paragraph)
    text = "\n\n".join(found)
    return text[:1].upper() + text[1:]


def config_value(config: Mapping[str, Any], rule: Rule, key: str) -> Any:
    """A tunable's configured value, or its schema default when the config does not set it."""
    if key in config and config[key] is not None:
        return config[key]
    return rule.config_schema[key]["default"]


TIER_CONFIG_SCHEMA: Mapping[str, Mapping[str, Any]] = {
    "tierLabel": {
        "type": "string",
        "minLength": 1,
        "default": TIER_LABEL,
        "description": "label key that marks a resource's tier",
    },
    "realtimeTier": {
        "type": "string",
        "minLength": 1,
        "default": TIER_REALTIME,
        "description": "value of the tier label that marks synchronous, latency-bound serving",
    },
}
"""Tunables of the rules that single out the realtime tier (our components set the defaults)."""


def realtime_selector(config: Mapping[str, Any], rule: Rule) -> tuple[str, str]:
    """The configured `(label key, realtime value)` pair."""
    return str(config_value(config, rule, "tierLabel")), str(
        config_value(config, rule, "realtimeTier")
    )
