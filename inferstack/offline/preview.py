"""`inferstack preview`: what `pulumi up` would create, the derived sizing and the cost, offline.

Runs the stack program under the Pulumi SDK's mock monitor (no CLI, no credentials, no cloud)
and prints every resource `pulumi up` would create (the registered ones and the default providers
the engine adds), in the same order on every run, with its key properties; then, for every
inferstack component in the program, the sizing and cost that component registered, each number
with its reason. The program need not export anything. It finds the program and its config as
`inferstack check` does (`add_program_arguments`), and counts resources the same way.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from typing import Any

from inferstack.components.planning.sizing import BatchSizing, RealtimeSizing
from inferstack.contract.labels import TIER_LABEL
from inferstack.contract.pods import GPU_RESOURCE
from inferstack.offline.capture import (
    STACK_TYPE,
    Capture,
    CapturedResource,
    ServiceOutputs,
    capture_program,
    default_providers,
    integral_floats_to_int,
    service_outputs,
)
from inferstack.offline.discovery import CaptureError, add_program_arguments, locate_program
from inferstack.offline.simulate import SimulateError
from inferstack.offline.slo import Day, declared_day


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of `inferstack preview`: the program and its config as for `inferstack check`."""
    add_program_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON document")


def _name_of(urn: str) -> str | None:
    return urn.rsplit("::", 1)[-1] if urn else None


def resource_document(resource: CapturedResource) -> dict[str, Any]:
    """One resource as the JSON preview shows it."""
    return {
        "type": resource.type,
        "name": resource.name,
        "parent": _name_of(resource.parent),
        "inputs": resource.inputs,
    }


def _provider_document(kind: str, name: str) -> dict[str, Any]:
    return {"type": kind, "name": name, "parent": None, "inputs": {}}


def resource_documents(capture: Capture) -> list[dict[str, Any]]:
    """Every resource `pulumi up` would create: the stack, the engine's default providers, then
    the registered resources in dependency order."""
    documents = [resource_document(r) for r in capture.resources]
    providers = [_provider_document(*p) for p in default_providers(capture.resources)]
    stack = 1 if documents and documents[0]["type"] == STACK_TYPE else 0
    return documents[:stack] + providers + documents[stack:]


def _service_document(service: ServiceOutputs) -> dict[str, Any]:
    return {
        "name": service.name,
        "type": service.type,
        "sizing": service.sizing,
        "cost": service.cost,
    }


def preview_document(capture: Capture, day: Day | None = None) -> dict[str, Any]:
    """The JSON preview: resources, then every inferstack component's sizing and cost.

    `sizing` and `cost` at the top are the one service's, when the program declares one;
    `simulation` is the service on its declared day (see `inferstack.offline.slo`): the stack
    config's or the program's, a warning when the program's cannot be simulated, null when
    neither declares one.
    """
    services = service_outputs(capture)
    only = services[0] if len(services) == 1 else None
    return {
        "project": capture.project,
        "stack": capture.stack,
        "resources": resource_documents(capture),
        "services": [_service_document(service) for service in services],
        "sizing": only.sizing if only else None,
        "cost": only.cost if only else None,
        "data_sources": capture.data_sources,
        "simulation": day.document() if day else None,
    }


def _dig(value: Any, *path: str | int) -> Any:
    for key in path:
        if isinstance(value, dict) and isinstance(key, str):
            value = value.get(key)
        elif isinstance(value, list) and isinstance(key, int) and key < len(value):
            value = value[key]
        else:
            return None
    return value


def key_properties(resource: CapturedResource) -> str:
    """A short summary of what matters about a resource, for the text preview."""
    inputs = resource.inputs
    parts: list[str] = []
    tier = _dig(inputs, "metadata", "labels", TIER_LABEL)
    if tier:
        parts.append(f"tier={tier}")
    spec = inputs.get("spec") if isinstance(inputs.get("spec"), dict) else {}
    for key in ("replicas", "minReplicaCount", "maxReplicaCount", "type"):
        if isinstance(spec, dict) and key in spec:
            parts.append(f"{key}={integral_floats_to_int(spec[key])}")
    triggers = _dig(inputs, "spec", "triggers")
    if isinstance(triggers, list):
        parts.append("triggers=" + ",".join(str(t.get("type")) for t in triggers))
    containers = _dig(inputs, "spec", "template", "spec", "containers")
    if isinstance(containers, list):
        for container in containers:
            gpus = _dig(container, "resources", "limits", GPU_RESOURCE)
            gpu = f" gpu={integral_floats_to_int(gpus)}" if gpus else ""
            parts.append(f"image={container.get('image')}{gpu}")
    return " ".join(parts)


def _print_resources(capture: Capture) -> None:
    rows = [
        (r.type, r.name, _name_of(r.parent) or "-", key_properties(r)) for r in capture.resources
    ]
    stack = 1 if rows and rows[0][0] == STACK_TYPE else 0
    providers = [
        (kind, name, "-", "default provider (the engine creates it)")
        for kind, name in default_providers(capture.resources)
    ]
    rows = rows[:stack] + providers + rows[stack:]
    print(f"Resources ({len(rows)}), as `pulumi up` would create them:")
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print(f"  {row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:<{widths[2]}}  {row[3]}")
    if len(rows) == 1:
        print("  (only the stack: this target's components declare no resources yet)")


def _print_data_sources(capture: Capture) -> None:
    if not capture.data_sources:
        return
    print("\nData sources, answered offline with placeholders (not your account's values):")
    for call in capture.data_sources:
        args = ", ".join(f"{key}={value}" for key, value in sorted(call["args"].items()))
        answer = call["answer"]
        shown = {key: answer[key] for key in ("accountId", "arn", "name") if key in answer}
        summary = " ".join(f"{key}={value}" for key, value in shown.items()) or "(empty)"
        print(f"  {call['token']}({args}) -> {summary}")


def _show_value(value: Any) -> str:
    """A derived value as one short cell: a structured one (the scale-up rule) as key=value."""
    if isinstance(value, dict):
        return " ".join(f"{key}={integral_floats_to_int(value[key])}" for key in sorted(value))
    return str(value)


def _print_derived(prefix: str, values: dict[str, Any], order: list[str]) -> None:
    for key in order:
        item = values.get(key)
        if isinstance(item, dict) and set(item) == {"value", "reason"}:
            print(f"  {prefix + key:<36} {_show_value(item['value']):>9}  {item['reason']}")


def _print_sizing(sizing: dict[str, Any]) -> None:
    print(f"\nSizing (profile measured on {sizing['profile_hardware']}):")
    _print_derived("", sizing, ["cold_start_seconds"])
    for pool, section in (("realtime", RealtimeSizing), ("batch", BatchSizing)):
        if sizing.get(pool):
            _print_derived(f"{pool}.", sizing[pool], [f.name for f in fields(section)])
    windows = (sizing.get("realtime") or {}).get("prewarm") or []
    if windows:
        print("\nPre-warm windows (KEDA cron triggers):")
        for window in windows:
            print(
                f"  {window['start_cron']!r} -> {window['end_cron']!r} {window['timezone']}: "
                f"{window['desired_replicas']} replicas, next start {window['next_start_utc']}"
            )
            print(f"    {window['reason']}")
    for warning in sizing.get("warnings") or []:
        print(f"  warning: {warning}")


def _print_platform(sizing: dict[str, Any]) -> None:
    """A target's own scaling derived from the sizing (SageMaker's), each value with its reason."""
    for target, pools in (sizing.get("platform") or {}).items():
        for pool, values in sorted(pools.items()):
            print(f"\n{target} {pool}:")
            for key, item in sorted(values.items()):
                if isinstance(item, dict) and set(item) == {"value", "reason"}:
                    print(f"  {key:<36} {_show_value(item['value']):>9}  {item['reason']}")
                elif not isinstance(item, (dict, list)) or item:
                    print(f"  {key:<36} {_show_value(item) if not isinstance(item, list) else ''}")
                    for entry in item if isinstance(item, list) else []:
                        print(f"    {_show_value(entry)}")


def _print_cost(cost: dict[str, Any]) -> None:
    print(f"\nMonthly cost ({cost['currency']}, {cost['price_source']}):")
    print(f"  {'lever':<14} {'monthly':>12} {'saves':>12}  why")
    for row in cost["rows"]:
        saves = f"{row['saves_usd']:,.0f}" if row["lever"] != "naive" else ""
        print(f"  {row['lever']:<14} {row['monthly_usd']:>12,.0f} {saves:>12}  {row['reason']}")
    print(
        f"  configured {cost['configured_monthly_usd']:,.0f} vs naive "
        f"{cost['naive_monthly_usd']:,.0f}: saves {cost['savings_ratio']:.0%}"
    )
    for note in cost.get("notes") or []:
        print(f"  note: {note}")


def print_preview(capture: Capture, day: Day | None = None) -> None:
    """The human-readable preview, ending with the declared day's SLO verdict and cost."""
    print(f"Stack {capture.stack} of project {capture.project} (offline preview, no cloud calls)\n")
    _print_resources(capture)
    _print_data_sources(capture)
    services = service_outputs(capture)
    for service in services:
        if len(services) > 1:
            print(f"\n== {service.name} ({service.type})")
        if service.sizing:
            _print_sizing(service.sizing)
            _print_platform(service.sizing)
        if service.cost:
            _print_cost(service.cost)
    if day is not None:
        print()
        print("\n".join(day.preview_lines()))


def run(args: argparse.Namespace) -> int:
    """Run the stack program under mocks and print the preview; non-zero on any error."""
    try:
        location = locate_program(args)
        capture = capture_program(
            location.program_dir,
            stack=location.stack,
            config=location.config,
            project_dir=location.project_dir,
        )
        day = declared_day(location, args, capture)
    except (CaptureError, SimulateError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.json:
        # Sorted keys: the inputs arrive as protobuf maps, whose order is not the program's.
        json.dump(preview_document(capture, day), sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
    else:
        print_preview(capture, day)
    return 0
