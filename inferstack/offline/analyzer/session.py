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

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import grpc
from google.protobuf import empty_pb2, json_format
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

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
from inferstack.offline.analyzer.wire import (
    LEVEL_CODES,
    Diagnostic,
    Entry,
    ResourceRecord,
    default_provider,
    diagnostic,
    initial_config,
    policy_metas,
    resource_options,
    stack_urn,
)

_MAX_MESSAGE: Final = 400 * 1024 * 1024
_RPC_TIMEOUT_S: Final = 120.0


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


class AnalyzerSession:
    """One replay of the engine's RPC sequence against a started pack, step by step.

    `configure` runs the handshake and the config steps, `analyze_resource` runs Remediate and
    Analyze for one registration (after the default provider it needs, synthesized once), and
    `analyze_stack` runs AnalyzeStack over everything analysed; `result` is the verdict.
    """

    def __init__(self, stub: Any, process: PackProcess, context: StackContext) -> None:
        self._stub = stub
        self._process = process
        self._context = context
        self.log: list[str] = []
        self._entries: dict[str, Entry] = {}
        self._providers: dict[str, Entry] = {}
        self._diagnostics: list[Diagnostic] = []
        self._remediations: list[dict[str, Any]] = []
        self.stack_urn = ""
        self._pack_name = ""
        self._metas: list[PolicyMeta] = []
        self._config: dict[str, PolicyConfig] = {}

    def _call(self, name: str, request: Any, *, optional: bool = False) -> Any:
        """One RPC; an optional one the pack does not implement is skipped, as by the engine."""
        try:
            return getattr(self._stub, name)(request, timeout=_RPC_TIMEOUT_S)
        except grpc.RpcError as error:
            code = error.code() if hasattr(error, "code") else None
            if optional and code == grpc.StatusCode.UNIMPLEMENTED:
                self.log.append(f"{name}: UNIMPLEMENTED (tolerated, as by the engine)")
                return None
            details = error.details() if hasattr(error, "details") else str(error)
            raise PolicyRunError(f"{name} failed: {details}") from None

    def configure(self, user_config: Mapping[str, ConfigEntry], *, user_config_source: str) -> None:
        """Handshake, ConfigureStack, GetPluginInfo, GetAnalyzerInfo, then Configure."""
        pack_dir = str(self._process.pack.directory)
        context = self._context
        self._call(
            "Handshake",
            analyzer_pb2.AnalyzerHandshakeRequest(
                engine_address="127.0.0.1:0", root_directory=pack_dir, program_directory=pack_dir
            ),
            optional=True,
        )
        self._call(
            "ConfigureStack",
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
        plugin = self._call("GetPluginInfo", empty_pb2.Empty())
        self.log.append(f"GetPluginInfo: version={plugin.version}")
        info = self._call("GetAnalyzerInfo", empty_pb2.Empty())
        self._pack_name = info.name
        self._metas = policy_metas(info)
        self.log.append(f"GetAnalyzerInfo: {info.name}, {len(self._metas)} policies")
        self._config = reconcile(
            self._metas, initial_config(info), user_config, user_source=user_config_source
        )
        request = analyzer_pb2.ConfigureAnalyzerRequest()
        for name, policy_config in self._config.items():
            entry = request.policyConfig[name]
            entry.enforcementLevel = LEVEL_CODES[policy_config.enforcement]
            entry.properties.update(policy_config.properties)
        self._call("Configure", request)
        self.log.append(
            "Configure: "
            + ", ".join(f"{n}={c.enforcement}" for n, c in sorted(self._config.items()))
        )

    def _provider_message(self, urn: str) -> analyzer_pb2.AnalyzerProviderResource | None:
        provider = self._providers.get(urn)
        if provider is None:
            return None
        return analyzer_pb2.AnalyzerProviderResource(
            type=provider.type,
            urn=provider.urn,
            name=provider.name,
            properties=to_struct(provider.properties),
        )

    def _remediate(self, entry: Entry, request: analyzer_pb2.AnalyzeRequest) -> None:
        """Remediate: note each remediation, and analyse the properties it returns instead."""
        response = self._call("Remediate", request, optional=True)
        for remediation in response.remediations if response is not None else []:
            if remediation.diagnostic:
                self._remediations.append(
                    {
                        "policy": remediation.policyName,
                        "urn": entry.urn,
                        "diagnostic": remediation.diagnostic,
                    }
                )
            if remediation.HasField("properties"):
                entry.properties = json_format.MessageToDict(remediation.properties)
                request.properties.CopyFrom(to_struct(entry.properties))
                self._remediations.append({"policy": remediation.policyName, "urn": entry.urn})

    def _analyze_entry(self, entry: Entry) -> None:
        # One request for both calls: Analyze sees what Remediate left of the properties.
        request = analyzer_pb2.AnalyzeRequest(
            type=entry.type,
            properties=to_struct(entry.properties),
            urn=entry.urn,
            name=entry.name,
            options=entry.options,
            provider=self._provider_message(entry.provider_urn),
        )
        self._remediate(entry, request)
        self._entries[entry.urn] = entry
        result = self._call("Analyze", request)
        self._diagnostics.extend(
            diagnostic(d, "Analyze", entry.urn, self._entries, self.stack_urn)
            for d in result.diagnostics
        )

    def _default_provider_urn(self, record: ResourceRecord) -> str:
        """The engine's default provider of `record`'s package, analysed the first time."""
        package = record.type.split(":", 1)[0]
        default = default_provider(package, record.version, self._context, self.stack_urn)
        if default.urn not in self._providers:
            synthesized = Entry(
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
            self._providers[default.urn] = synthesized
            self._analyze_entry(synthesized)
        return default.urn

    def analyze_resources(self, resources: Sequence[ResourceRecord]) -> None:
        """Remediate and Analyze each registration in order, default providers first."""
        self.stack_urn = stack_urn(resources, self._context)
        for record in resources:
            provider_urn = record.provider.rsplit("::", 1)[0] if record.provider else ""
            is_provider = record.type.startswith("pulumi:providers:")
            if record.custom and not provider_urn and not is_provider:
                provider_urn = self._default_provider_urn(record)
            entry = Entry(
                type=record.type,
                name=record.name,
                urn=record.urn,
                parent=record.parent,
                properties=marshal_properties(record.inputs),
                options=resource_options(record),
                provider_urn=provider_urn,
                dependencies=list(record.dependencies),
                property_dependencies={k: list(v) for k, v in record.property_dependencies.items()},
            )
            if is_provider:
                self._providers[entry.urn] = entry
            self._analyze_entry(entry)

    def _stack_resource(self, entry: Entry) -> analyzer_pb2.AnalyzerResource:
        resource = analyzer_pb2.AnalyzerResource(
            type=entry.type,
            urn=entry.urn,
            name=entry.name,
            # Preview outputs: the mocks echo inputs, so outputs are the (remediated) inputs.
            properties=to_struct(entry.properties),
            options=entry.options,
            provider=self._provider_message(entry.provider_urn),
            parent=entry.parent,
            dependencies=entry.dependencies,
        )
        for key, urns in entry.property_dependencies.items():
            if urns:  # the engine omits properties without dependencies
                resource.propertyDependencies[key].urns.extend(urns)
        return resource

    def analyze_stack(self) -> None:
        """AnalyzeStack once, over every resource analysed so far."""
        request = analyzer_pb2.AnalyzeStackRequest(
            resources=[self._stack_resource(entry) for entry in self._entries.values()]
        )
        started = time.perf_counter()
        result = self._call("AnalyzeStack", request, optional=True)
        if result is not None:
            self._diagnostics.extend(
                diagnostic(d, "AnalyzeStack", "", self._entries, self.stack_urn)
                for d in result.diagnostics
            )
        self.log.append(
            f"Remediate+Analyze: {len(self._entries)} resources; AnalyzeStack: 1 call "
            f"({(time.perf_counter() - started) * 1000:.0f} ms)"
        )

    def result(self) -> AnalysisResult:
        """The verdict of the steps run so far."""
        return AnalysisResult(
            pack_name=self._pack_name,
            pack_version=self._process.pack.version,
            pack_dir=self._process.pack.directory,
            policies=self._metas,
            config=self._config,
            diagnostics=self._diagnostics,
            remediations=self._remediations,
            analyzed=len(self._entries),
            rpc_log=self.log,
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
    options = [
        ("grpc.max_receive_message_length", _MAX_MESSAGE),
        ("grpc.max_send_message_length", _MAX_MESSAGE),
    ]
    address = f"127.0.0.1:{process.port()}"
    with grpc.insecure_channel(address, options=options) as channel:
        grpc.channel_ready_future(channel).result(timeout=BOOT_TIMEOUT_S)
        session = AnalyzerSession(analyzer_pb2_grpc.AnalyzerStub(channel), process, context)
        session.configure(user_config or {}, user_config_source=user_config_source)
        session.analyze_resources(resources)
        session.analyze_stack()
    return session.result()


__all__ = [
    "AnalysisResult",
    "AnalyzerSession",
    "Diagnostic",
    "PackInfo",
    "PackProcess",
    "PolicyRunError",
    "ResourceRecord",
    "StackContext",
    "analyze",
    "read_pack",
]
