"""Run a Pulumi program under the SDK's mock monitor and record every resource it registers.

This is what `inferstack preview` and `inferstack check` see instead of a Pulumi engine: the exact
`RegisterResourceRequest`s the Python SDK sends when the real program runs, in preview mode (the
mocks return no ID and echo the inputs, so computed outputs stay unknown, as in a first
`pulumi preview`). The Pulumi runtime is process-global, so each capture runs the program in a
fresh interpreter (`python -m inferstack.offline.capture`) and hands back JSON.
"""

from __future__ import annotations

import argparse
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
    return Capture(
        project=project.name,
        stack=stack,
        config=merged,
        resources=[CapturedResource(**item) for item in document["resources"]],
        stack_outputs=_integral_floats_to_int(document["stack_outputs"]),
        data_sources=document.get("data_sources", []),
    )


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
            if request.urn.split("::")[2] == "pulumi:pulumi:Stack":
                stack_outputs.update(json_format.MessageToDict(request.outputs))
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
        unique.append(record)
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
    "engine_config",
    "load_yaml_mapping",
    "read_project",
]
