"""Policy pack configuration, reconciled and validated the way the engine does it.

The engine (`pkg/resource/analyzer/config.go`) starts from each policy's declared enforcement
level and its schema defaults, applies the pack's `initialConfig`, then the user's
`--policy-pack-config` file (its `"all"` entry first, then per-policy entries), and validates each
policy's properties against its JSON schema before sending `Configure`. Bad config is a
`PackConfigError` naming the policy, the property and the fix; nothing is sent to the pack.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

ENFORCEMENT_LEVELS: Final = ("advisory", "mandatory", "remediate", "disabled")


class PackConfigError(ValueError):
    """The policy pack config is unusable; the message names each bad entry and its fix."""


@dataclass(frozen=True)
class PolicyMeta:
    """What `GetAnalyzerInfo` said about one policy."""

    name: str
    description: str
    enforcement: str
    severity: str
    config_schema: Mapping[str, Any] = field(default_factory=dict)
    """Property name -> JSON schema."""
    required: tuple[str, ...] = ()


@dataclass(frozen=True)
class PolicyConfig:
    """The effective config of one policy: its enforcement level and properties."""

    enforcement: str
    properties: dict[str, Any]


@dataclass(frozen=True)
class ConfigEntry:
    """One entry of a config source: a level, properties, or both (either may be absent)."""

    enforcement: str | None
    properties: dict[str, Any]


def parse_entries(document: Any, source: str) -> dict[str, ConfigEntry]:
    """Parse `{"<policy>": "<level>" | {"enforcementLevel": ..., "<prop>": ...}}`."""
    if not isinstance(document, Mapping):
        raise PackConfigError(
            f"{source}: expected a JSON object of policy name -> level or settings, "
            f"got {type(document).__name__}"
        )
    entries: dict[str, ConfigEntry] = {}
    problems: list[str] = []
    for name, value in document.items():
        level: Any
        if isinstance(value, str):
            level, properties = value, {}
        elif isinstance(value, Mapping):
            properties = {k: v for k, v in value.items() if k != "enforcementLevel"}
            level = value.get("enforcementLevel")
        else:
            problems.append(
                f"{name}: expected an enforcement level string or an object, "
                f"got {type(value).__name__}"
            )
            continue
        if level is not None and level not in ENFORCEMENT_LEVELS:
            problems.append(
                f"{name}.enforcementLevel: {level!r} is not one of {', '.join(ENFORCEMENT_LEVELS)}"
            )
            continue
        if name == "all" and properties:
            problems.append(
                f"all: only an enforcement level applies to every policy; move "
                f"{', '.join(sorted(properties))} under the policy that declares it"
            )
            continue
        entries[str(name)] = ConfigEntry(level, dict(properties))
    if problems:
        raise PackConfigError(f"{source}:\n" + "\n".join(f"  - {p}" for p in problems))
    return entries


def load_config_file(path: Path) -> dict[str, ConfigEntry]:
    """Read a `--policy-pack-config` JSON file."""
    try:
        document = json.loads(path.read_text())
    except OSError as error:
        raise PackConfigError(f"cannot read policy pack config {path}: {error.strerror}") from None
    except json.JSONDecodeError as error:
        raise PackConfigError(f"{path}: not valid JSON: {error}") from None
    return parse_entries(document, str(path))


def _apply(
    result: dict[str, PolicyConfig], entries: Mapping[str, ConfigEntry], source: str
) -> None:
    unknown = sorted(set(entries) - set(result) - {"all"})
    if unknown:
        raise PackConfigError(
            f"{source}: no policy named {', '.join(unknown)} in this pack; "
            f"known policies: {', '.join(sorted(result))}"
        )
    if "all" in entries and entries["all"].enforcement is not None:
        for name, config in result.items():
            result[name] = PolicyConfig(str(entries["all"].enforcement), config.properties)
    for name, entry in entries.items():
        if name == "all":
            continue
        current = result[name]
        result[name] = PolicyConfig(
            entry.enforcement or current.enforcement, {**current.properties, **entry.properties}
        )


def reconcile(
    policies: list[PolicyMeta],
    initial: Mapping[str, ConfigEntry],
    user: Mapping[str, ConfigEntry],
    *,
    user_source: str = "policy pack config",
) -> dict[str, PolicyConfig]:
    """Defaults -> pack initialConfig -> user file, then schema validation."""
    result = {
        policy.name: PolicyConfig(
            policy.enforcement,
            {
                key: schema["default"]
                for key, schema in policy.config_schema.items()
                if isinstance(schema, Mapping) and schema.get("default") is not None
            },
        )
        for policy in policies
    }
    _apply(result, initial, "the pack's initialConfig")
    _apply(result, user, user_source)
    validate(policies, result, user_source)
    return result


def validate(policies: list[PolicyMeta], config: Mapping[str, PolicyConfig], source: str) -> None:
    """Check every policy's properties against its JSON schema, as the engine does."""
    from jsonschema import Draft7Validator  # deferred: only needed once per run

    problems: list[str] = []
    for policy in policies:
        schema = {
            "type": "object",
            "properties": dict(policy.config_schema),
            "required": list(policy.required),
        }
        properties = config[policy.name].properties
        unexpected = sorted(set(properties) - set(policy.config_schema))
        for key in unexpected:
            known = ", ".join(sorted(policy.config_schema)) or "none"
            problems.append(
                f"{policy.name}.{key}: not a setting of this policy (settings: {known})"
            )
        for error in Draft7Validator(schema).iter_errors(properties):
            where = ".".join(str(p) for p in error.absolute_path)
            problems.append(f"{policy.name}.{where or '(settings)'}: {error.message}")
    if problems:
        raise PackConfigError(f"invalid {source}:\n" + "\n".join(f"  - {p}" for p in problems))
