"""The child-process side of a capture: run a Pulumi program under the SDK's mock monitor.

`python -m inferstack.offline.mock_monitor` reads one JSON request on stdin (program folder,
project, stack, engine-form config), runs the program in preview mode with a monitor that records
every `RegisterResource` and `RegisterResourceOutputs` call and every invoke, and writes the
records as JSON on stdout. The Pulumi runtime is process-global, so each capture gets a fresh
interpreter; `inferstack.offline.capture` starts it and reads the answer. The mocks return no ID
and echo the inputs, so computed outputs stay unknown, as in a first `pulumi preview`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import runpy
import sys
from pathlib import Path
from typing import Any, Final

from google.protobuf import json_format
from pulumi.runtime import mocks, settings, stack
from pulumi.runtime.config import set_all_config

from inferstack.errors import SpecError
from inferstack.offline.capture import STACK_TYPE
from inferstack.offline.placeholders import answer

SPEC_ERROR_EXIT: Final = 3
"""Exit status of a program that raised `SpecError`: its message is the whole report."""


def _options(request: Any) -> dict[str, Any]:
    """The resource options an analyzer sees, from a `RegisterResourceRequest`."""
    return {
        "protect": request.protect,
        "ignoreChanges": list(request.ignoreChanges),
        "deleteBeforeReplace": request.deleteBeforeReplace,
        "deleteBeforeReplaceDefined": request.deleteBeforeReplaceDefined,
        "additionalSecretOutputs": list(request.additionalSecretOutputs),
        "aliases": [json_format.MessageToDict(alias) for alias in request.aliases],
        "customTimeouts": json_format.MessageToDict(request.customTimeouts),
    }


def _record(request: Any, urn: str) -> dict[str, Any]:
    """One registration in the JSON form `CapturedResource` is built from."""
    return {
        "type": request.type,
        "name": request.name,
        "urn": urn,
        "parent": request.parent,
        "custom": bool(request.custom),
        "provider": request.provider,
        "inputs": json_format.MessageToDict(request.object),
        "dependencies": list(request.dependencies),
        "property_dependencies": {
            key: list(deps.urns) for key, deps in request.propertyDependencies.items()
        },
        "options": _options(request),
        "version": request.version,
    }


def _plain_args(args: Any) -> dict[str, Any]:
    """Invoke arguments as JSON-ready data (unknowns and resources become their text)."""
    plain: dict[str, Any] = json.loads(json.dumps(dict(args), default=str))
    return plain


class _EchoInputs(mocks.Mocks):
    """Mocks that create nothing: no ID, outputs = inputs; invokes get their placeholder."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def new_resource(self, args: mocks.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        return None, dict(args.inputs)

    def call(self, args: mocks.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        reply = answer(args.token, dict(args.args))
        self.calls.append({"token": args.token, "args": _plain_args(args.args), "answer": reply})
        return reply, []


class _CapturingMonitor(mocks.MockMonitor):
    """The SDK's mock monitor, recording what the program registers."""

    def __init__(self, echo: _EchoInputs) -> None:
        super().__init__(echo)
        self.records: list[dict[str, Any]] = []
        self.stack_outputs: dict[str, Any] = {}
        self.outputs_by_urn: dict[str, dict[str, Any]] = {}

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 (gRPC method name)
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        self.records.append(_record(request, response.urn))
        return response

    def RegisterResourceOutputs(self, request: Any) -> Any:  # noqa: N802
        outputs = json_format.MessageToDict(request.outputs)
        if request.urn.split("::")[2] == STACK_TYPE:
            self.stack_outputs.update(outputs)
        else:
            self.outputs_by_urn.setdefault(request.urn, {}).update(outputs)
        return super().RegisterResourceOutputs(request)  # type: ignore[no-untyped-call]

    def registered(self) -> list[dict[str, Any]]:
        """Every registration once, with the outputs its component registered.

        The program's stack resource is registered once by `set_mocks` and once by
        `run_in_stack`; the engine sees one, so the first is kept.
        """
        seen_stack = False
        unique: list[dict[str, Any]] = []
        for record in self.records:
            if record["type"] == STACK_TYPE:
                if seen_stack:
                    continue
                seen_stack = True
            unique.append({**record, "outputs": self.outputs_by_urn.get(record["urn"], {})})
        return unique


def run_program(request: dict[str, Any]) -> dict[str, Any]:
    """Install the capturing monitor, run the program, return the records."""
    echo = _EchoInputs()
    monitor = _CapturingMonitor(echo)
    mocks.set_mocks(
        echo, project=request["project"], stack=request["stack"], preview=True, monitor=monitor
    )
    set_all_config(request["config"], [])
    program = Path(request["program"]).resolve()
    os.chdir(program)
    sys.path.insert(0, str(program))
    # set_mocks registers and finishes a root stack of its own; forget it so that run_in_stack
    # creates the stack that owns the program's exports, as the language host does.
    settings.ROOT.set(None)

    def main() -> None:
        runpy.run_path(str(program / "__main__.py"), run_name="__main__")

    asyncio.get_event_loop().run_until_complete(stack.run_in_stack(main))
    return {
        "resources": monitor.registered(),
        "stack_outputs": monitor.stack_outputs,
        "data_sources": echo.calls,
    }


def _main() -> int:
    parser = argparse.ArgumentParser(description="internal: capture a program under mocks")
    parser.parse_args()
    request = json.loads(sys.stdin.read())
    try:
        document = run_program(request)
    except SpecError as error:
        sys.stderr.write(f"{error}\n")
        return SPEC_ERROR_EXIT
    json.dump(document, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(_main())
