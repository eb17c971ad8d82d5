"""Run a Pulumi program under the SDK's mock monitor and record every resource it registers.

This is what `inferstack preview` and `inferstack check` see instead of a Pulumi engine: the exact
`RegisterResourceRequest`s the Python SDK sends when the real program runs, in preview mode. The
Pulumi runtime is process-global, so each capture runs the program in a fresh interpreter
(`python -m inferstack.offline.mock_monitor`) and reads back its JSON; this side imports neither
Pulumi nor the components nor the policies. The records come back in one dependency order on
every run, with the default providers the engine would add computed beside them.
"""

from __future__ import annotations

import heapq
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from inferstack.offline.discovery import CaptureError, engine_config, read_project

STACK_TYPE: Final = "pulumi:pulumi:Stack"
COMPONENT_TYPE_PREFIX: Final = "inferstack:"
"""Type tokens of inferstack's own components (`inferstack:<target>:<Type>`)."""


@dataclass(frozen=True)
class CapturedResource:
    """One `RegisterResource` call, as the engine would have received it."""

    type: str
    name: str
    urn: str
    parent: str
    custom: bool
    provider: str
    inputs: dict[str, Any]
    dependencies: list[str] = field(default_factory=list)
    property_dependencies: dict[str, list[str]] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    version: str = ""
    outputs: dict[str, Any] = field(default_factory=dict)
    """What a component registered with `register_outputs` (e.g. its sizing and cost)."""


@dataclass(frozen=True)
class Capture:
    """Everything a program registered, plus the stack outputs it exported."""

    project: str
    stack: str
    config: dict[str, str]
    resources: list[CapturedResource]
    stack_outputs: dict[str, Any]
    data_sources: list[dict[str, Any]] = field(default_factory=list)
    """Each data-source call the program made: `token`, `args`, and the placeholder `answer`."""


@dataclass(frozen=True)
class ServiceOutputs:
    """What one inferstack component in the program registered about itself."""

    name: str
    type: str
    sizing: dict[str, Any] | None
    cost: dict[str, Any] | None


def service_outputs(capture: Capture) -> list[ServiceOutputs]:
    """Sizing and cost of every inferstack component in the program, from the components.

    Read from the outputs each component registered, so a program that exports nothing (or
    declares several services) is previewed and checked as completely as the stack program.
    """
    return [
        ServiceOutputs(
            resource.name,
            resource.type,
            resource.outputs.get("sizing"),
            resource.outputs.get("cost"),
        )
        for resource in capture.resources
        if resource.type.startswith(COMPONENT_TYPE_PREFIX)
        and not resource.custom
        and ("sizing" in resource.outputs or "cost" in resource.outputs)
    ]


def capture_program(
    program_dir: Path,
    *,
    stack: str,
    config: dict[str, str] | None = None,
    project_dir: Path | None = None,
) -> Capture:
    """Run the program in a fresh interpreter under the mock monitor and return what it registered.

    `config` (engine form) is merged over the stack's config file, when the project has one.
    """
    project = read_project(project_dir or program_dir)
    merged = {}
    if project.stack_file(stack).exists() or config is None:
        merged = engine_config(project, stack)
    merged.update(config or {})
    request = {"program": str(program_dir), "project": project.name, "stack": stack}
    result = subprocess.run(
        [sys.executable, "-m", "inferstack.offline.mock_monitor"],
        input=json.dumps({**request, "config": merged}),
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        check=False,
    )
    if result.returncode != 0:
        raise CaptureError(result.stderr.strip() or f"program exited with {result.returncode}")
    document = json.loads(result.stdout)
    resources = [
        CapturedResource(**{**item, "outputs": integral_floats_to_int(item.get("outputs", {}))})
        for item in document["resources"]
    ]
    return Capture(
        project=project.name,
        stack=stack,
        config=merged,
        resources=tree_order(resources),
        stack_outputs=integral_floats_to_int(document["stack_outputs"]),
        # Invokes resolve in an order that varies with the hash seed: sort them, as resources are.
        data_sources=sorted(
            document.get("data_sources", []),
            key=lambda call: (call["token"], json.dumps(call["args"], sort_keys=True)),
        ),
    )


def tree_order(resources: list[CapturedResource]) -> list[CapturedResource]:
    """Every resource after its parent, its provider and its dependencies; ties by type and name.

    The SDK registers resources as their inputs resolve, which varies from run to run; CI diffs
    of a preview, and the order the pack sees resources in, must not.
    """
    by_urn = {resource.urn: resource for resource in resources}
    waiting_on: dict[str, set[str]] = {}
    dependents: dict[str, list[str]] = {}
    for resource in resources:
        before = {resource.parent, resource.provider.rsplit("::", 1)[0], *resource.dependencies}
        waiting_on[resource.urn] = {urn for urn in before if urn in by_urn and urn != resource.urn}
        for urn in waiting_on[resource.urn]:
            dependents.setdefault(urn, []).append(resource.urn)
    ready = [_order_key(r) for r in resources if not waiting_on[r.urn]]
    heapq.heapify(ready)
    ordered: list[CapturedResource] = []
    while ready:
        urn = heapq.heappop(ready)[-1]
        ordered.append(by_urn[urn])
        for dependent in dependents.get(urn, []):
            waiting_on[dependent].discard(urn)
            if not waiting_on[dependent]:
                heapq.heappush(ready, _order_key(by_urn[dependent]))
    placed = {resource.urn for resource in ordered}  # a cycle cannot happen; keep all anyway
    return ordered + [resource for resource in resources if resource.urn not in placed]


def _order_key(resource: CapturedResource) -> tuple[bool, str, str, str]:
    return (resource.type != STACK_TYPE, resource.type, resource.name, resource.urn)


def default_provider_name(version: str) -> str:
    """The name the engine gives the default provider of a plugin version: `default_X_Y_Z`."""
    return "default" + (f"_{version.replace('.', '_').replace('-', '_')}" if version else "")


def default_providers(resources: list[CapturedResource]) -> list[tuple[str, str]]:
    """(type, name) of each provider the engine creates for resources that name none.

    `pulumi up` registers these too: preview lists and counts them, and check analyses them.
    """
    found: dict[tuple[str, str], None] = {}
    for resource in resources:
        if (
            resource.custom
            and not resource.provider
            and not resource.type.startswith("pulumi:providers:")
        ):
            package = resource.type.split(":", 1)[0]
            found[(f"pulumi:providers:{package}", default_provider_name(resource.version))] = None
    return list(found)


def integral_floats_to_int(value: Any) -> Any:
    """Undo the wire's doubles-only numbers (counts registered as 3 come back as 3.0)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: integral_floats_to_int(item) for key, item in value.items()}
    if isinstance(value, list):
        return [integral_floats_to_int(item) for item in value]
    return value


__all__ = [
    "COMPONENT_TYPE_PREFIX",
    "STACK_TYPE",
    "Capture",
    "CaptureError",
    "CapturedResource",
    "ServiceOutputs",
    "capture_program",
    "default_provider_name",
    "default_providers",
    "integral_floats_to_int",
    "service_outputs",
    "tree_order",
]
