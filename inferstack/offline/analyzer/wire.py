"""What travels over the Analyzer protocol, made from captured registrations.

The enforcement levels and severities by their proto codes, a registration as the analysis
holds it (`Entry`, after marshalling and any remediation), the resource options, the default
provider the engine registers for resources that name none, and the diagnostics a pack
returns, attributed to a resource as the engine attributes them. `session` drives the RPCs
with these.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from google.protobuf import json_format
from pulumi.runtime.proto import analyzer_pb2

from inferstack.offline.analyzer.pack_config import ConfigEntry, PolicyMeta
from inferstack.offline.analyzer.pack_process import StackContext
from inferstack.offline.capture import default_provider_name
from inferstack.policies.kube import go_duration_seconds

LEVELS: Final = {
    analyzer_pb2.ADVISORY: "advisory",
    analyzer_pb2.MANDATORY: "mandatory",
    analyzer_pb2.REMEDIATE: "remediate",
    analyzer_pb2.DISABLED: "disabled",
}
LEVEL_CODES: Final = {name: code for code, name in LEVELS.items()}
SEVERITIES: Final = {
    analyzer_pb2.POLICY_SEVERITY_UNSPECIFIED: "",
    analyzer_pb2.POLICY_SEVERITY_LOW: "low",
    analyzer_pb2.POLICY_SEVERITY_MEDIUM: "medium",
    analyzer_pb2.POLICY_SEVERITY_HIGH: "high",
    analyzer_pb2.POLICY_SEVERITY_CRITICAL: "critical",
}


class ResourceRecord(Protocol):
    """A registered resource: what `inferstack.offline.capture.CapturedResource` holds."""

    @property
    def type(self) -> str:
        """The type token, e.g. `kubernetes:apps/v1:Deployment`."""

    @property
    def name(self) -> str:
        """The resource's name in the program."""

    @property
    def urn(self) -> str:
        """The URN the monitor gave it."""

    @property
    def parent(self) -> str:
        """The parent's URN; empty for the stack."""

    @property
    def custom(self) -> bool:
        """False for a component."""

    @property
    def provider(self) -> str:
        """The explicit provider reference (`URN::ID`); empty for the default one."""

    @property
    def inputs(self) -> dict[str, Any]:
        """The registered inputs, as the SDK serialised them."""

    @property
    def dependencies(self) -> list[str]:
        """URNs it depends on."""

    @property
    def property_dependencies(self) -> dict[str, list[str]]:
        """Per input property, the URNs its value came from."""

    @property
    def options(self) -> dict[str, Any]:
        """Resource options (protect, aliases, custom timeouts, ...)."""

    @property
    def version(self) -> str:
        """The provider plugin version; names the default provider."""


@dataclass(frozen=True)
class Diagnostic:
    """One reported violation, attributed to a resource."""

    policy: str
    pack: str
    pack_version: str
    level: str
    severity: str
    description: str
    message: str
    urn: str
    resource_type: str
    resource_name: str
    stage: str
    """`Analyze` (per resource) or `AnalyzeStack`."""


def policy_metas(info: Any) -> list[PolicyMeta]:
    """Each policy `GetAnalyzerInfo` described: name, level, severity and config schema."""
    metas = []
    for policy in info.policies:
        schema = json_format.MessageToDict(policy.configSchema.properties)
        metas.append(
            PolicyMeta(
                name=policy.name,
                description=policy.description,
                enforcement=LEVELS.get(policy.enforcementLevel, "advisory"),
                severity=SEVERITIES.get(policy.severity, ""),
                config_schema=schema,
                required=tuple(policy.configSchema.required),
            )
        )
    return metas


def initial_config(info: Any) -> dict[str, ConfigEntry]:
    """The pack's own `initialConfig`, per policy."""
    # An entry without an enforcement level decodes as proto 0 = advisory, as in the engine.
    return {
        name: ConfigEntry(
            LEVELS.get(config.enforcementLevel, "advisory"),
            json_format.MessageToDict(config.properties),
        )
        for name, config in info.initialConfig.items()
    }


def custom_timeouts(raw: Mapping[str, Any]) -> analyzer_pb2.AnalyzerResourceOptions.CustomTimeouts:
    seconds = {
        key: go_duration_seconds(raw.get(key)) or 0.0 for key in ("create", "update", "delete")
    }
    return analyzer_pb2.AnalyzerResourceOptions.CustomTimeouts(**seconds)


def resource_options(record: ResourceRecord) -> analyzer_pb2.AnalyzerResourceOptions:
    """The options an analyzer sees for a registration (custom timeouts in seconds)."""
    raw = record.options or {}
    aliases = [
        str(a["urn"]) for a in raw.get("aliases", []) if isinstance(a, Mapping) and "urn" in a
    ]
    return analyzer_pb2.AnalyzerResourceOptions(
        protect=bool(raw.get("protect", False)),
        ignoreChanges=list(raw.get("ignoreChanges", [])),
        deleteBeforeReplace=bool(raw.get("deleteBeforeReplace", False)),
        deleteBeforeReplaceDefined=bool(raw.get("deleteBeforeReplaceDefined", False)),
        additionalSecretOutputs=list(raw.get("additionalSecretOutputs", [])),
        aliases=aliases,
        customTimeouts=custom_timeouts(raw.get("customTimeouts") or {}),
        parent=record.parent,
    )


@dataclass
class Entry:
    """A resource as the analysis sees it: after marshalling and any remediation."""

    type: str
    name: str
    urn: str
    parent: str
    properties: dict[str, Any]
    options: analyzer_pb2.AnalyzerResourceOptions
    provider_urn: str
    dependencies: list[str]
    property_dependencies: dict[str, list[str]]


@dataclass(frozen=True)
class DefaultProvider:
    """The provider the engine registers for a package whose resources name none."""

    record_type: str
    name: str
    urn: str
    properties: dict[str, Any]


def stack_urn(resources: Sequence[ResourceRecord], context: StackContext) -> str:
    """The stack resource's URN: the registered one, else the one the engine would give it."""
    for record in resources:
        if record.type == "pulumi:pulumi:Stack":
            return record.urn
    name = f"{context.project}-{context.stack}"
    return f"urn:pulumi:{context.stack}::{context.project}::pulumi:pulumi:Stack::{name}"


def default_provider(
    package: str, version: str, context: StackContext, root_urn: str
) -> DefaultProvider:
    """The provider the engine registers for resources without an explicit one.

    Named `default_<X_Y_Z>` after the plugin version, with the stack's `<package>:*` config as
    its inputs (the engine does this in `pkg/resource/deploy/providers/registry.go`).
    """
    name = default_provider_name(version)
    prefix = f"{package}:"
    properties: dict[str, Any] = {
        key[len(prefix) :]: _config_value(value)
        for key, value in context.config.items()
        if key.startswith(prefix)
    }
    if version:
        properties["version"] = version
    record_type = f"pulumi:providers:{package}"
    head = root_urn.rsplit("::", 2)[0]
    return DefaultProvider(record_type, name, f"{head}::{record_type}::{name}", properties)


def _config_value(value: str) -> Any:
    # Object and list config values travel JSON-encoded; the provider sees them decoded.
    if value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def diagnostic(
    raw: Any, stage: str, fallback_urn: str, entries: Mapping[str, Entry], root_urn: str
) -> Diagnostic:
    """One diagnostic of the pack, attributed to a resource as the engine attributes it."""
    urn = raw.urn or fallback_urn
    if urn not in entries:
        urn = root_urn  # the engine attributes unknown URNs to the root stack
    entry = entries.get(urn)
    message = raw.message
    prefix = f"{raw.description}\n"
    if raw.description and message.startswith(prefix):
        message = message[len(prefix) :]
    level = LEVELS.get(raw.enforcementLevel, "advisory")
    return Diagnostic(
        policy=raw.policyName,
        pack=raw.policyPackName,
        pack_version=raw.policyPackVersion,
        level="mandatory" if level == "remediate" else level,
        severity=SEVERITIES.get(raw.severity, ""),
        description=raw.description,
        message=message,
        urn=urn,
        resource_type=entry.type if entry else "",
        resource_name=entry.name if entry else "",
        stage=stage,
    )


__all__ = [
    "LEVELS",
    "LEVEL_CODES",
    "SEVERITIES",
    "DefaultProvider",
    "Diagnostic",
    "Entry",
    "ResourceRecord",
    "default_provider",
    "diagnostic",
    "initial_config",
    "policy_metas",
    "resource_options",
    "stack_urn",
]
