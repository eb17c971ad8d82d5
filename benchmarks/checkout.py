"""Another commit's source, measured in the same run: before/after timings side by side.

`export(ref, folder)` writes the commit's tracked files into `folder` (`git archive`, so the
repository and its working tree are left alone). `run_on(tree, script, args)` runs a benchmark
script in a fresh interpreter whose `inferstack` packages (the pyproject's `package-dir` mapping:
`inferstack`, `inferstack.components`, ...) are imported from `tree` instead of the installed
(editable) copy; the script itself is the current one, so both sides are measured by the same
code. Each side runs alone, one after the other, so they do not compete for the cores.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

_BOOT = """
import importlib.abc, importlib.util, runpy, sys, tomllib
from pathlib import Path

root = Path(sys.argv[1]).resolve()
with open(root / "pyproject.toml", "rb") as stream:
    dirs = tomllib.load(stream)["tool"]["setuptools"]["package-dir"]
mapping = {name: root / folder for name, folder in dirs.items()}


class _Tree(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        folder = mapping.get(name)
        if folder is None:
            return None
        return importlib.util.spec_from_file_location(
            name, folder / "__init__.py", submodule_search_locations=[str(folder)]
        )


sys.meta_path.insert(0, _Tree())
script = sys.argv[2]
sys.argv = [script, *sys.argv[3:]]
runpy.run_path(script, run_name="__main__")
"""


def export(ref: str, folder: Path) -> Path:
    """Write commit `ref`'s tracked files under `folder`; returns it."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", ref],
        capture_output=True,
        check=True,
    ).stdout
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    return folder


def describe(ref: str) -> str:
    """The commit's short hash and subject."""
    return subprocess.run(
        ["git", "-C", str(REPO), "log", "-1", "--format=%h %s", ref],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()[:90]


def run_on(
    tree: Path, script: Path, args: list[str], env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run `script args` with the `inferstack` packages from `tree`; its last stdout line is
    a JSON document (the measurement), returned. Its stderr passes through."""
    result = subprocess.run(
        [sys.executable, "-c", _BOOT, str(tree), str(script), *args],
        stdout=subprocess.PIPE,
        text=True,
        check=True,
        cwd=tree,
        env={**os.environ, **(env or {})},
    )
    lines = result.stdout.strip().splitlines()
    return dict(json.loads(lines[-1]))
