"""The package layout: the boundaries between the parts, no cycle, a dependency-free contract.

Reads every module's imports with `ast` (deferred imports inside functions included), so a
cycle cannot hide behind a lazy import.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FOLDERS = {
    "inferstack.components": REPO / "components",
    "inferstack.runtime": REPO / "runtime",
    "inferstack.policies": REPO / "policies",
    "inferstack": REPO / "inferstack",
}
PARTS = (
    "inferstack.contract",
    "inferstack.errors",
    "inferstack.profile",
    "inferstack.offline",
    "inferstack.components",
    "inferstack.runtime",
    "inferstack.policies",
    "inferstack.cli",
)
"""The units whose imports are checked, most specific first (a module belongs to the first
part its name starts with)."""
CAPTURE_SIDE = (
    "inferstack.offline.capture",
    "inferstack.offline.discovery",
    "inferstack.offline.mock_monitor",
    "inferstack.offline.placeholders",
)
"""The offline modules that find and run any Pulumi program: they know no inferstack part."""


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package, folder in FOLDERS.items():
        for path in folder.rglob("*.py"):
            relative = path.relative_to(folder).with_suffix("")
            parts = [p for p in relative.parts if p != "__init__"]
            name = ".".join([package, *parts])
            if package == "inferstack" and parts and parts[0] in {"components", "runtime"}:
                continue
            found[name] = path
    return found


def _part(module: str) -> str | None:
    for part in PARTS:
        if module == part or module.startswith(part + "."):
            return part
    return None


def _imports(path: Path, module: str) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base if is_package else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            names.add(target)
            names.update(f"{target}.{alias.name}" for alias in node.names)
    return names


def _part_edges() -> dict[str, dict[str, list[str]]]:
    edges: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for module, path in _modules().items():
        source = _part(module)
        if source is None:
            continue
        for target_module in _imports(path, module):
            target = _part(target_module)
            if target is not None and target != source:
                edges[source][target].append(module)
    return edges


def test_every_module_belongs_to_a_part() -> None:
    # The root package holds only the version.
    unplaced = [m for m in _modules() if _part(m) is None and m != "inferstack"]
    assert unplaced == [], "add these modules' package to PARTS"


@pytest.mark.parametrize(
    ("source", "forbidden"),
    [
        # The image carries the runtime alone: no Pulumi, no pack, no offline engine.
        (
            "inferstack.runtime",
            {"inferstack.components", "inferstack.policies", "inferstack.offline"},
        ),
        # A team's Pulumi program imports the components: they carry no engine and no pack.
        (
            "inferstack.components",
            {"inferstack.runtime", "inferstack.policies", "inferstack.offline"},
        ),
        # The pack is the rule model, the rules and the adapter: the engine replay is offline's.
        (
            "inferstack.policies",
            {"inferstack.components", "inferstack.runtime", "inferstack.offline"},
        ),
    ],
)
def test_the_packages_do_not_import_each_other(source: str, forbidden: set[str]) -> None:
    edges = _part_edges()[source]
    offending = {target: sorted(set(edges[target])) for target in forbidden if target in edges}
    assert offending == {}, f"{source} imports {offending}; share constants via inferstack.contract"


def test_the_offline_engine_lives_in_one_package() -> None:
    """No analyzer replay beside the rules, no simulator beside the components."""
    modules = _modules()
    for engine_part in ("engine", "pack_process", "pack_config", "marshal", "check", "report"):
        assert f"inferstack.policies.{engine_part}" not in modules
    assert not any(m.startswith("inferstack.components.simulate") for m in modules)
    assert "inferstack.components.stack_config" not in modules
    for part in ("analyzer.session", "simulate.engine", "stack_config", "discovery", "capture"):
        assert f"inferstack.offline.{part}" in modules


def test_the_capture_side_knows_no_inferstack_part() -> None:
    """Finding and running a program works for any program, with or without the components."""
    modules = _modules()
    allowed = {"inferstack.errors", "inferstack.offline"}
    for module in CAPTURE_SIDE:
        imported = {_part(name) for name in _imports(modules[module], module)}
        assert imported - {None} <= allowed, (module, imported)
        offline = {
            name
            for name in _imports(modules[module], module)
            if _part(name) == "inferstack.offline" and not name.startswith(CAPTURE_SIDE)
        }
        assert offline == set(), (module, offline)


def test_no_cycle_between_parts() -> None:
    edges = {source: set(targets) for source, targets in _part_edges().items()}
    # Tarjan-free: a cycle exists iff some part reaches itself.
    for start in edges:
        seen: set[str] = set()
        stack = list(edges[start])
        while stack:
            node = stack.pop()
            assert node != start, f"import cycle through {start}: {edges}"
            if node not in seen:
                seen.add(node)
                stack.extend(edges.get(node, ()))


def test_contract_and_errors_use_the_standard_library_only() -> None:
    allowed_roots = set(sys.stdlib_module_names) | {"__future__"}
    for module, path in _modules().items():
        if _part(module) not in {"inferstack.contract", "inferstack.errors"}:
            continue
        for name in _imports(path, module):
            root = name.split(".")[0]
            if name.startswith("inferstack."):
                assert _part(name) in {"inferstack.contract", "inferstack.errors"}, (module, name)
            else:
                assert root in allowed_roots, (
                    f"{module} imports {name}: the contract is stdlib-only"
                )
