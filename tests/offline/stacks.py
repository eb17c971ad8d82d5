"""Test helpers for the shipped stacks: run `inferstack preview`, read a stack file, write a
project that runs the real stack program with a stack config of the test's own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
STACKS = REPO / "stacks"


def preview(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """`inferstack preview ARGS` in a fresh interpreter, from `cwd`."""
    return subprocess.run(
        [sys.executable, "-m", "inferstack.cli", "preview", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )


def stack_document(stack: str) -> dict[str, Any]:
    """The parsed `stacks/Pulumi.<stack>.yaml`, to change and write elsewhere."""
    document: dict[str, Any] = yaml.safe_load((STACKS / f"Pulumi.{stack}.yaml").read_text())
    return document


def project_with(tmp_path: Path, document: dict[str, Any], stack: str = "broken") -> Path:
    """A project in `tmp_path` that runs the real stacks/ program with `document` as `stack`."""
    (tmp_path / "Pulumi.yaml").write_text(
        yaml.safe_dump({"name": "inferstack", "runtime": "python", "main": str(STACKS)})
    )
    (tmp_path / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump(document))
    return tmp_path
