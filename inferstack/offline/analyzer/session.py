"""Drive a real CrossGuard policy pack over the Analyzer gRPC protocol, as the Pulumi engine does.

The pack is the unmodified `pulumi_policy` server: started as `python -u -m pulumi.policy
<engine-address> <pack-dir>` in the pack directory with the engine's environment variables, its
port read from the first stdout line. The RPCs follow the engine's order: Handshake,
ConfigureStack, GetPluginInfo, GetAnalyzerInfo, Configure (reconciled and validated config),
then Remediate and Analyze per resource in registration order (default providers synthesized
first, as the engine registers them), then AnalyzeStack once. `../shared/notes/policy-harness.md`
records where each step comes from and what this cannot reproduce (provider Check, provider
previews of outputs, multi-language components, engine-side transforms).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

import grpc
from google.protobuf import empty_pb2, json_format
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

from inferstack.offline.capture import default_provider_name
from inferstack.offline.analyzer.marshal import marshal_properties, to_struct
from inferstack.offline.analyzer.pack_config import (
    ConfigEntry,
    PolicyConfig,
    PolicyMeta,
    reconcile,
)
from inferstack.offline.analyzer.pack_process import (
    BOOT_TIMEOUT_S,
    ORGANIZATION,
    PackInfo,
    PackProcess,
    PolicyRunError,
    StackContext,
    read_pack,
)

_MAX_MESSAGE: Final = 400 * 1024 * 1024
_RPC_TIMEOUT_S: Final = 120.0
_LEVELS: Final = {
    analyzer_pb2.ADVISORY: "advisory",
    analyzer_pb2.MANDATORY: "mandatory",
    analyzer_pb2.REMEDIATE: "remediate",
    analyzer_pb2.DISABLED: "disabled",
}
_LEVEL_CODES: Final = {name: code for code, name in _LEVELS.items()}
_SEVERITIES: Final = {
    analyzer_pb2.POLICY_SEVERITY_UNSPECIFIED: "",
    analyzer_pb2.POLICY_SEVERITY_LOW: "low",
    analyzer_pb2.POLICY_SEVERITY_MEDIUM: "medium",
    analyzer_pb2.POLICY_SEVERITY_HIGH: "high",
    analyzer_pb2.POLICY_SEVERITY_CRITICAL: "critical",
}


class ResourceRecord(Protocol):
    """A registered resource: what `inferstack.offline.capture.CapturedResource` holds."""

    @property
    def type(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def urn(self) -> str: ...
    @property
    def parent(self) -> str: ...
    @property
    def custom(self) -> bool: ...
    @property
    def provider(self) -> str: ...
    @property
    def inputs(self) -> dict[str, Any]: ...
    @property
    def dependencies(self) -> list[str]: ...
    @property
    def property_dependencies(self) -> dict[str, list[str]]: ...
    @property
    def options(self) -> dict[str, Any]: ...
    @property
    def version(self) -> str: ...


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


@dataclass(frozen=True)
class AnalysisResult:
    """Everything one run produced."""

    pack_name: str
    pack_version: str
    pack_dir: Path
    policies: list[PolicyMeta]
    config: dict[str, PolicyConfig]
    diagnostics: list[Diagnostic]
    remediations: list[dict[str, Any]]
    analyzed: int
    rpc_log: list[str]

    @property
    def mandatory(self) -> list[Diagnostic]:
        """The violations that fail a preview."""
        return [d for d in self.diagnostics if d.level == "mandatory"]


def _call(log: list[str], name: str, method: Any, request: Any, *, optional: bool = False) -> Any:
    try:
        response = method(request, timeout=_RPC_TIMEOUT_S)
    except grpc.RpcError as error:
        code = error.code() if hasattr(error, "code") else None
        if optional and code == grpc.StatusCode.UNIMPLEMENTED:
            log.append(f"{name}: UNIMPLEMENTED (tolerated, as by the engine)")
            return None
        details = error.details() if hasattr(error, "details") else str(error)
        raise PolicyRunError(f"{name} failed: {details}") from None
    return response


def _policy_metas(info: Any) -> list[PolicyMeta]:
    metas = []
    for policy in info.policies:
        schema = json_format.MessageToDict(policy.configSchema.properties)
        metas.append(
            PolicyMeta(
                name=policy.name,
                description=policy.description,
                enforcement=_LEVELS.get(policy.enforcementLevel, "advisory"),
                severity=_SEVERITIES.get(policy.severity, ""),
                config_schema=schema,
                required=tuple(policy.configSchema.required),
            )
        )
    return metas


def _initial_config(info: Any) -> dict[str, ConfigEntry]:
    # An entry without an enforcement level decodes as proto 0 = advisory, as in the engine.
    return {
        name: ConfigEntry(
            _LEVELS.get(config.enforcementLevel, "advisory"),
            json_format.MessageToDict(config.properties),
        )
        for name, config in info.initialConfig.items()
    }


def _custom_timeouts(raw: Mapping[str, Any]) -> analyzer_pb2.AnalyzerResourceOptions.CustomTimeouts:
    from inferstack.policies.kube import go_duration_seconds

    seconds = {
        key: go_duration_seconds(raw.get(key)) or 0.0 for key in ("create", "update", "delete")
    }
    return analyzer_pb2.AnalyzerResourceOptions.CustomTimeouts(**seconds)


def _options(record: ResourceRecord) -> analyzer_pb2.AnalyzerResourceOptions:
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
        customTimeouts=_custom_timeouts(raw.get("customTimeouts") or {}),
        parent=record.parent,
    )


@dataclass
class _Entry:
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
class _DefaultProvider:
    record_type: str
    name: str
    urn: str
    properties: dict[str, Any]


def _stack_urn(resources: Sequence[ResourceRecord], context: StackContext) -> str:
    for record in resources:
        if record.type == "pulumi:pulumi:Stack":
            return record.urn
    name = f"{context.project}-{context.stack}"
    return f"urn:pulumi:{context.stack}::{context.project}::pulumi:pulumi:Stack::{name}"


def _default_provider(
    package: str, version: str, context: StackContext, stack_urn: str
) -> _DefaultProvider:
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
    head = stack_urn.rsplit("::", 2)[0]
    return _DefaultProvider(record_type, name, f"{head}::{record_type}::{name}", properties)


def _config_value(value: str) -> Any:
    # Object and list config values travel JSON-encoded; the provider sees them decoded.
    if value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _diagnostic(
    raw: Any, stage: str, fallback_urn: str, entries: Mapping[str, _Entry], stack_urn: str
) -> Diagnostic:
    urn = raw.urn or fallback_urn
    if urn not in entries:
        urn = stack_urn  # the engine attributes unknown URNs to the root stack
    entry = entries.get(urn)
    message = raw.message
    prefix = f"{raw.description}\n"
    if raw.description and message.startswith(prefix):
        message = message[len(prefix) :]
    level = _LEVELS.get(raw.enforcementLevel, "advisory")
    return Diagnostic(
        policy=raw.policyName,
        pack=raw.policyPackName,
        pack_version=raw.policyPackVersion,
        level="mandatory" if level == "remediate" else level,
        severity=_SEVERITIES.get(raw.severity, ""),
        description=raw.description,
        message=message,
        urn=urn,
        resource_type=entry.type if entry else "",
        resource_name=entry.name if entry else "",
        stage=stage,
    )


def analyze(
    process: PackProcess,
    resources: Sequence[ResourceRecord],
    context: StackContext,
    user_config: Mapping[str, ConfigEntry] | None = None,
    *,
    user_config_source: str = "policy pack config",
) -> AnalysisResult:
    """Replay the engine's RPC sequence against a started pack and collect its verdict."""
    log: list[str] = []
    options = [
        ("grpc.max_receive_message_length", _MAX_MESSAGE),
        ("grpc.max_send_message_length", _MAX_MESSAGE),
    ]
    address = f"127.0.0.1:{process.port()}"
    with grpc.insecure_channel(address, options=options) as channel:
        grpc.channel_ready_future(channel).result(timeout=BOOT_TIMEOUT_S)
        stub = analyzer_pb2_grpc.AnalyzerStub(channel)
        pack_dir = str(process.pack.directory)
        _call(
            log,
            "Handshake",
            stub.Handshake,
            analyzer_pb2.AnalyzerHandshakeRequest(
                engine_address="127.0.0.1:0", root_directory=pack_dir, program_directory=pack_dir
            ),
            optional=True,
        )
        _call(
            log,
            "ConfigureStack",
            stub.ConfigureStack,
            analyzer_pb2.AnalyzerStackConfigureRequest(
                stack=context.stack,
                project=context.project,
                organization=ORGANIZATION,
                dry_run=context.dry_run,
                config=dict(context.config),
                tags=dict(context.tags),
            ),
            optional=True,
        )
        plugin = _call(log, "GetPluginInfo", stub.GetPluginInfo, empty_pb2.Empty())
        log.append(f"GetPluginInfo: version={plugin.version}")
        info = _call(log, "GetAnalyzerInfo", stub.GetAnalyzerInfo, empty_pb2.Empty())
        metas = _policy_metas(info)
        log.append(f"GetAnalyzerInfo: {info.name}, {len(metas)} policies")
        config = reconcile(
            metas, _initial_config(info), user_config or {}, user_source=user_config_source
        )
        request = analyzer_pb2.ConfigureAnalyzerRequest()
        for name, policy_config in config.items():
            entry = request.policyConfig[name]
            entry.enforcementLevel = _LEVEL_CODES[policy_config.enforcement]
            entry.properties.update(policy_config.properties)
        _call(log, "Configure", stub.Configure, request)
        log.append(
            "Configure: " + ", ".join(f"{n}={c.enforcement}" for n, c in sorted(config.items()))
        )

        stack_urn = _stack_urn(resources, context)
        entries: dict[str, _Entry] = {}
        providers: dict[str, _Entry] = {}
        diagnostics: list[Diagnostic] = []
        remediations: list[dict[str, Any]] = []

        def provider_message(urn: str) -> analyzer_pb2.AnalyzerProviderResource | None:
            provider = providers.get(urn)
            if provider is None:
                return None
            return analyzer_pb2.AnalyzerProviderResource(
                type=provider.type,
                urn=provider.urn,
                name=provider.name,
                properties=to_struct(provider.properties),
            )

        def analyze_one(entry: _Entry) -> None:
            provider = provider_message(entry.provider_urn)
            remediate = analyzer_pb2.AnalyzeRequest(
                type=entry.type,
                properties=to_struct(entry.properties),
                urn=entry.urn,
                name=entry.name,
                options=entry.options,
                provider=provider,
            )
            response = _call(log, "Remediate", stub.Remediate, remediate, optional=True)
            for remediation in response.remediations if response is not None else []:
                if remediation.diagnostic:
                    remediations.append(
                        {
                            "policy": remediation.policyName,
                            "urn": entry.urn,
                            "diagnostic": remediation.diagnostic,
                        }
                    )
                if remediation.HasField("properties"):
                    entry.properties = json_format.MessageToDict(remediation.properties)
                    remediations.append({"policy": remediation.policyName, "urn": entry.urn})
            request = analyzer_pb2.AnalyzeRequest(
                type=entry.type,
                properties=to_struct(entry.properties),
                urn=entry.urn,
                name=entry.name,
                options=entry.options,
                provider=provider,
            )
            entries[entry.urn] = entry
            result = _call(log, "Analyze", stub.Analyze, request)
            diagnostics.extend(
                _diagnostic(d, "Analyze", entry.urn, entries, stack_urn) for d in result.diagnostics
            )

        for record in resources:
            provider_urn = record.provider.rsplit("::", 1)[0] if record.provider else ""
            is_provider = record.type.startswith("pulumi:providers:")
            if record.custom and not provider_urn and not is_provider:
                package = record.type.split(":", 1)[0]
                default = _default_provider(package, record.version, context, stack_urn)
                if default.urn not in providers:
                    synthesized = _Entry(
                        type=default.record_type,
                        name=default.name,
                        urn=default.urn,
                        parent="",
                        properties=default.properties,
                        options=analyzer_pb2.AnalyzerResourceOptions(),
                        provider_urn="",
                        dependencies=[],
                        property_dependencies={},
                    )
                    providers[default.urn] = synthesized
                    analyze_one(synthesized)
                provider_urn = default.urn
            entry = _Entry(
                type=record.type,
                name=record.name,
                urn=record.urn,
                parent=record.parent,
                properties=marshal_properties(record.inputs),
                options=_options(record),
                provider_urn=provider_urn,
                dependencies=list(record.dependencies),
                property_dependencies={k: list(v) for k, v in record.property_dependencies.items()},
            )
            if is_provider:
                providers[entry.urn] = entry
            analyze_one(entry)

        stack_request = analyzer_pb2.AnalyzeStackRequest()
        for entry in entries.values():
            resource = stack_request.resources.add()
            resource.type = entry.type
            resource.urn = entry.urn
            resource.name = entry.name
            # Preview outputs: the mocks echo inputs, so outputs are the (remediated) inputs.
            resource.properties.CopyFrom(to_struct(entry.properties))
            resource.options.CopyFrom(entry.options)
            provider = provider_message(entry.provider_urn)
            if provider is not None:
                resource.provider.CopyFrom(provider)
            resource.parent = entry.parent
            resource.dependencies.extend(entry.dependencies)
            for key, urns in entry.property_dependencies.items():
                if urns:  # the engine omits properties without dependencies
                    resource.propertyDependencies[key].urns.extend(urns)
        started = time.perf_counter()
        stack_result = _call(log, "AnalyzeStack", stub.AnalyzeStack, stack_request, optional=True)
        if stack_result is not None:
            diagnostics.extend(
                _diagnostic(d, "AnalyzeStack", "", entries, stack_urn)
                for d in stack_result.diagnostics
            )
        log.append(
            f"Remediate+Analyze: {len(entries)} resources; AnalyzeStack: 1 call "
            f"({(time.perf_counter() - started) * 1000:.0f} ms)"
        )
    return AnalysisResult(
        pack_name=info.name,
        pack_version=process.pack.version,
        pack_dir=process.pack.directory,
        policies=metas,
        config=config,
        diagnostics=diagnostics,
        remediations=remediations,
        analyzed=len(entries),
        rpc_log=log,
    )


__all__ = [
    "AnalysisResult",
    "Diagnostic",
    "PackInfo",
    "PackProcess",
    "PolicyRunError",
    "ResourceRecord",
    "StackContext",
    "analyze",
    "read_pack",
]
