"""Run a Pulumi program under the SDK's mock monitor and record every resource it registers.

This is what `inferstack preview` and `inferstack check` see instead of a Pulumi engine: the exact
`RegisterResourceRequest`s the Python SDK sends when the real program runs, in preview mode (the
mocks return no ID and echo the inputs, so computed outputs stay unknown, as in a first
`pulumi preview`). The Pulumi runtime is process-global, so each capture runs the program in a
fresh interpreter (`python -m inferstack.offline.capture`) and hands back JSON.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from inferstack.errors import SpecError

_SPEC_ERROR_EXIT = 3
PLACEHOLDER_ACCOUNT = "000000000000"
"""The account ID offline data sources answer with: no real account has it."""
PLACEHOLDER_REGION = "placeholder"


def _cluster_placeholder(args: dict[str, Any]) -> dict[str, Any]:
    name = str(args.get("name", "cluster"))
    return {
        "id": name,
        "name": name,
        "arn": f"arn:aws:eks:{PLACEHOLDER_REGION}:{PLACEHOLDER_ACCOUNT}:cluster/{name}",
        "endpoint": f"https://{name}.eks.placeholder.invalid",
        "version": "1.33",
        "status": "ACTIVE",
        "identities": [
            {"oidcs": [{"issuer": f"https://oidc.eks.placeholder.invalid/id/{name.upper()}"}]}
        ],
        "vpcConfig": {"clusterSecurityGroupId": "sg-00000000000000000"},
    }


DATA_SOURCE_PLACEHOLDERS: dict[str, Any] = {
    "aws:index/getCallerIdentity:getCallerIdentity": lambda args: {
        "accountId": PLACEHOLDER_ACCOUNT,
        "arn": f"arn:aws:iam::{PLACEHOLDER_ACCOUNT}:user/placeholder",
        "id": PLACEHOLDER_ACCOUNT,
        "userId": "PLACEHOLDER",
    },
    "aws:index/getPartition:getPartition": lambda args: {
        "id": "aws",
        "partition": "aws",
        "dnsSuffix": "amazonaws.com",
    },
    "aws:eks/getCluster:getCluster": _cluster_placeholder,
}
"""What an offline run answers for the data sources the components read, by invoke token.

Offline there is no cloud to ask, so every answer is a placeholder; the capture lists each call
with its answer, and the preview prints them as placeholders. A token missing here answers `{}`.
"""


class CaptureError(RuntimeError):
    """The program could not run: bad config, a spec error, or an exception in the program."""


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


COMPONENT_TYPE_PREFIX = "inferstack:"
"""Type tokens of inferstack's own components (`inferstack:<target>:<Type>`)."""


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


@dataclass(frozen=True)
class ProjectSettings:
    """What `Pulumi.yaml` says about where the program and its stack configs live."""

    name: str
    program_dir: Path
    stack_config_dir: Path


def load_yaml_mapping(path: Path) -> dict[str, Any]:
    """A YAML file that must hold a mapping; `CaptureError` (one line, with the place) if not."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise CaptureError(f"cannot read {path}: {error}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise CaptureError(f"{where}: not valid YAML ({problem}); fix the file") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise CaptureError(
            f"{path}: expected a mapping of keys at the top, got {type(document).__name__}"
        )
    return document


def read_project(project_dir: Path) -> ProjectSettings:
    """Read `Pulumi.yaml` in `project_dir`: project name, `main` and `stackConfigDir`."""
    path = project_dir / "Pulumi.yaml"
    document = load_yaml_mapping(path)
    if "name" not in document:
        raise CaptureError(f"{path}: no `name`; add the project name (e.g. `name: inferstack`)")
    return ProjectSettings(
        name=str(document["name"]),
        program_dir=project_dir / str(document.get("main", ".")),
        stack_config_dir=project_dir / str(document.get("stackConfigDir", ".")),
    )


def engine_config(project: ProjectSettings, stack: str) -> dict[str, str]:
    """Stack config as the engine hands it to a program: `{"ns:key": "string"}`.

    Keys without a namespace belong to the project; objects and lists travel JSON-encoded.
    """
    path = project.stack_config_dir / f"Pulumi.{stack}.yaml"
    if not path.exists():
        known = sorted(
            p.name[len("Pulumi.") : -len(".yaml")] for p in path.parent.glob("Pulumi.*.yaml")
        )
        raise CaptureError(f"no stack {stack!r}: {path} does not exist (stacks here: {known})")
    section = load_yaml_mapping(path).get("config") or {}
    if not isinstance(section, dict):
        raise CaptureError(f"{path}: `config` must be a mapping of keys to values")
    config: dict[str, str] = {}
    for key, value in section.items():
        full_key = key if ":" in key else f"{project.name}:{key}"
        if isinstance(value, dict) and "secure" in value:
            raise CaptureError(
                f"{path}: {full_key} is an encrypted secret; offline runs cannot decrypt it, "
                "set a plain placeholder in a separate stack file for previews"
            )
        config[full_key] = value if isinstance(value, str) else json.dumps(value)
    return config


def find_project_dir(start: Path) -> Path:
    """The nearest folder from `start` up that holds Pulumi.yaml, as the Pulumi CLI finds it."""
    for directory in (start, *start.parents):
        if (directory / "Pulumi.yaml").is_file():
            return directory
    raise CaptureError(
        f"no Pulumi.yaml in {start} or any parent; run from the project, or pass --project-dir "
        "or --program"
    )


def config_overrides(pairs: list[str], project: str) -> dict[str, str]:
    """`--config KEY=VALUE` pairs in engine form; a key without `ns:` belongs to the project."""
    overrides = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator or not key:
            raise CaptureError(f"--config {pair!r}: write KEY=VALUE, e.g. --config {project}:x=1")
        overrides[key if ":" in key else f"{project}:{key}"] = value
    return overrides


@dataclass(frozen=True)
class ProgramLocation:
    """Which program runs, in which project, with which config: what `preview` and `check`
    both resolve from the same flags."""

    project: ProjectSettings
    project_dir: Path
    program_dir: Path
    config: dict[str, str]


def add_program_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags `preview` and `check` share to find the program and its config."""
    parser.add_argument(
        "--stack",
        default="dev",
        help="stack whose config (Pulumi.<stack>.yaml in stackConfigDir) the program runs with "
        "(default: dev)",
    )
    parser.add_argument(
        "--project-dir",
        type=Path,
        default=None,
        help="where to look for Pulumi.yaml, then in its parents (default: the current folder)",
    )
    parser.add_argument(
        "--program",
        type=Path,
        help="Pulumi program directory to run instead of the project's own (its Pulumi.yaml is "
        "the one in it or in the nearest parent)",
    )
    parser.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a config value over the stack's (repeatable; a key without `ns:` belongs to "
        "the project), as `pulumi preview --config` does",
    )


def locate_program(args: argparse.Namespace) -> ProgramLocation:
    """Resolve the flags of `add_program_arguments`; `CaptureError` names what is missing."""
    if args.program is not None:
        program_dir = args.program.resolve()
        if not (program_dir / "__main__.py").is_file():
            raise CaptureError(f"--program {args.program}: no __main__.py in it")
        project_dir = find_project_dir(program_dir)
    else:
        project_dir = find_project_dir((args.project_dir or Path.cwd()).resolve())
    project = read_project(project_dir)
    if args.program is None:
        program_dir = project.program_dir.resolve()
    has_stack_file = (project.stack_config_dir / f"Pulumi.{args.stack}.yaml").is_file()
    config = engine_config(project, args.stack) if has_stack_file or not args.program else {}
    config.update(config_overrides(args.config, project.name))
    return ProgramLocation(project, project_dir, program_dir, config)


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
    project_dir = project_dir or program_dir
    project = read_project(project_dir)
    merged = {}
    if (project.stack_config_dir / f"Pulumi.{stack}.yaml").exists() or config is None:
        merged = engine_config(project, stack)
    merged.update(config or {})
    request = {
        "program": str(program_dir),
        "project": project.name,
        "stack": stack,
        "config": merged,
    }
    result = subprocess.run(
        [sys.executable, "-m", "inferstack.offline.capture"],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        check=False,
    )
    if result.returncode != 0:
        raise CaptureError(result.stderr.strip() or f"program exited with {result.returncode}")
    document = json.loads(result.stdout)
    resources = [
        CapturedResource(**{**item, "outputs": _integral_floats_to_int(item.get("outputs", {}))})
        for item in document["resources"]
    ]
    return Capture(
        project=project.name,
        stack=stack,
        config=merged,
        resources=tree_order(resources),
        stack_outputs=_integral_floats_to_int(document["stack_outputs"]),
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


STACK_TYPE = "pulumi:pulumi:Stack"


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


def _integral_floats_to_int(value: Any) -> Any:
    """Undo the wire's doubles-only numbers in values the program exported (counts stay ints)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _integral_floats_to_int(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_integral_floats_to_int(item) for item in value]
    return value


def _run_program_under_mocks(request: dict[str, Any]) -> dict[str, Any]:
    """Child-process side: install the capturing monitor, run the program, return the records."""
    import asyncio
    import runpy

    from google.protobuf import json_format
    from pulumi.runtime import mocks, settings, stack
    from pulumi.runtime.config import set_all_config

    records: list[dict[str, Any]] = []
    stack_outputs: dict[str, Any] = {}
    calls: list[dict[str, Any]] = []
    outputs_by_urn: dict[str, dict[str, Any]] = {}

    class _EchoInputs(mocks.Mocks):
        def new_resource(self, args: mocks.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
            return None, dict(args.inputs)

        def call(
            self, args: mocks.MockCallArgs
        ) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
            placeholder = DATA_SOURCE_PLACEHOLDERS.get(args.token)
            answer: dict[str, Any] = placeholder(dict(args.args)) if placeholder else {}
            calls.append({"token": args.token, "args": _plain_args(args.args), "answer": answer})
            return answer, []

    class _CapturingMonitor(mocks.MockMonitor):
        def RegisterResource(self, request: Any) -> Any:  # noqa: N802 (gRPC method name)
            response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
            records.append(
                {
                    "type": request.type,
                    "name": request.name,
                    "urn": response.urn,
                    "parent": request.parent,
                    "custom": bool(request.custom),
                    "provider": request.provider,
                    "inputs": json_format.MessageToDict(request.object),
                    "dependencies": list(request.dependencies),
                    "property_dependencies": {
                        key: list(deps.urns) for key, deps in request.propertyDependencies.items()
                    },
                    "options": {
                        "protect": request.protect,
                        "ignoreChanges": list(request.ignoreChanges),
                        "deleteBeforeReplace": request.deleteBeforeReplace,
                        "deleteBeforeReplaceDefined": request.deleteBeforeReplaceDefined,
                        "additionalSecretOutputs": list(request.additionalSecretOutputs),
                        "aliases": [json_format.MessageToDict(alias) for alias in request.aliases],
                        "customTimeouts": json_format.MessageToDict(request.customTimeouts),
                    },
                    "version": request.version,
                }
            )
            return response

        def RegisterResourceOutputs(self, request: Any) -> Any:  # noqa: N802
            outputs = json_format.MessageToDict(request.outputs)
            if request.urn.split("::")[2] == "pulumi:pulumi:Stack":
                stack_outputs.update(outputs)
            else:
                outputs_by_urn.setdefault(request.urn, {}).update(outputs)
            return super().RegisterResourceOutputs(request)  # type: ignore[no-untyped-call]

    monitor = _CapturingMonitor(_EchoInputs())
    mocks.set_mocks(
        _EchoInputs(),
        project=request["project"],
        stack=request["stack"],
        preview=True,
        monitor=monitor,
    )
    set_all_config(request["config"], [])
    program = Path(request["program"]).resolve()
    os.chdir(program)
    sys.path.insert(0, str(program))
    # set_mocks registers and finishes a root stack of its own; forget it so that run_in_stack
    # creates the stack that owns the program's exports, as the language host does.
    settings.ROOT.set(None)

    def run_program() -> None:
        runpy.run_path(str(program / "__main__.py"), run_name="__main__")

    asyncio.get_event_loop().run_until_complete(stack.run_in_stack(run_program))
    # The program's stack resource is registered once by set_mocks and once by run_in_stack;
    # the engine sees one. Keep the first and drop the duplicate.
    seen_stack = False
    unique: list[dict[str, Any]] = []
    for record in records:
        if record["type"] == "pulumi:pulumi:Stack":
            if seen_stack:
                continue
            seen_stack = True
        unique.append({**record, "outputs": outputs_by_urn.get(record["urn"], {})})
    return {"resources": unique, "stack_outputs": stack_outputs, "data_sources": calls}


def _plain_args(args: Any) -> dict[str, Any]:
    """Invoke arguments as JSON-ready data (unknowns and resources become their text)."""
    plain: dict[str, Any] = json.loads(json.dumps(dict(args), default=str))
    return plain


def _main() -> int:
    parser = argparse.ArgumentParser(description="internal: capture a program under mocks")
    parser.parse_args()
    request = json.loads(sys.stdin.read())
    try:
        document = _run_program_under_mocks(request)
    except SpecError as error:
        sys.stderr.write(f"{error}\n")
        return _SPEC_ERROR_EXIT
    json.dump(document, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(_main())

__all__ = [
    "Capture",
    "CaptureError",
    "CapturedResource",
    "ProjectSettings",
    "capture_program",
    "ProgramLocation",
    "ServiceOutputs",
    "add_program_arguments",
    "config_overrides",
    "default_provider_name",
    "default_providers",
    "engine_config",
    "find_project_dir",
    "load_yaml_mapping",
    "locate_program",
    "read_project",
    "service_outputs",
    "tree_order",
]
