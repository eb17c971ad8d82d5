"""The runtime's package boundaries: the server and the worker share only what sits beside them.

`runtime/server/` (`inferstack serve`) and `runtime/worker/` (`inferstack work`) never import
each other; `runtime/grpc/` is serve's second front end (its gRPC port) and `runtime/frontdoor/`
runs serve's acceptor processes, so both are on the server's side and may use the HTTP routes;
the shared modules (batcher, models, metrics, protocol,
settings, queue and result backends) import neither, so each command loads only its own side.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

RUNTIME = Path(__file__).resolve().parents[2] / "runtime"
SIDES = ("server", "worker")
# Packages that belong to one command's side without being its top package.
FRONT_ENDS = {"grpc": "server", "frontdoor": "server"}


def imported(path: Path) -> set[str]:
    """Every `inferstack.runtime...` module a file imports, at any depth (lazy imports too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {name for name in names if name.startswith("inferstack.runtime")}


def side_of(path: Path) -> str | None:
    top = path.relative_to(RUNTIME).parts[0]
    if top in FRONT_ENDS:
        return FRONT_ENDS[top]
    return top if top in SIDES else None


MODULES = sorted(RUNTIME.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(RUNTIME)))
def test_server_worker_and_shared_modules_import_only_their_own_side(path: Path) -> None:
    own = side_of(path)
    packages = {**{side: side for side in SIDES}, **FRONT_ENDS}
    forbidden = {f"inferstack.runtime.{top}" for top, side in packages.items() if side != own}
    crossing = {
        name
        for name in imported(path)
        for prefix in forbidden
        if name == prefix or name.startswith(prefix + ".")
    }
    assert crossing == set(), f"{path.relative_to(RUNTIME)} imports the other side: {crossing}"


@pytest.mark.parametrize(
    "package", ["", "server", "worker", "frontdoor", "protocol", "queues", "results"], ids=str
)
def test_every_package_declares_all_and_each_name_exists(package: str) -> None:
    name = "inferstack.runtime" + (f".{package}" if package else "")
    module = importlib.import_module(name)
    assert module.__doc__
    for item in module.__all__:
        folder = RUNTIME / package
        is_module = (folder / f"{item}.py").is_file() or (folder / item / "__init__.py").is_file()
        assert is_module or hasattr(module, item), f"{name}.__all__ names {item!r}"
