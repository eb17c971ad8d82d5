"""What the shipped cloud stacks' end-to-end tests share: the preview document, the roles of its
resources, the policy check, the cost of the stack's machine, and a broken copy of the stack.

Resources are asserted by type and role (the name after `<service>-`), not by total counts, so
a new resource fails only the test that is about it. Identities are the exception: their sets
are compared exactly, because an extra grant must be a decision someone reviews.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from inferstack.cli import main
from inferstack.components.planning.pricing import default_price_table
from tests.offline.stacks import REPO, preview, project_with, stack_document

Document = dict[str, Any]
SERVICE = "embedder"
"""The service both cloud stacks ship."""


def preview_document(stack: str) -> Document:
    """`inferstack preview --stack STACK --json`, parsed (fails the test if preview fails)."""
    result = preview("--stack", stack, "--json")
    assert result.returncode == 0, result.stderr
    loaded: Document = json.loads(result.stdout)
    return loaded


def resources(document: Document, resource_type: str) -> list[dict[str, Any]]:
    """The captured resources of one type."""
    return [r for r in document["resources"] if r["type"] == resource_type]


def roles(document: Document) -> dict[str, set[str]]:
    """Resource type -> the roles of the service's resources of that type (`<service>-ROLE`)."""
    found: dict[str, set[str]] = defaultdict(set)
    for resource in document["resources"]:
        found[resource["type"]].add(resource["name"].removeprefix(f"{SERVICE}-"))
    return dict(found)


def assert_roles(
    document: Document,
    present: Mapping[str, set[str]],
    exactly: Mapping[str, set[str]],
) -> None:
    """Each type in `present` has at least those roles; each type in `exactly` only those."""
    found = roles(document)
    for resource_type, expected in present.items():
        missing = expected - found.get(resource_type, set())
        assert not missing, f"{resource_type}: no {sorted(missing)}"
    for resource_type, expected in exactly.items():
        assert found.get(resource_type, set()) == expected, resource_type


def assert_cost_prices(document: Document, cloud: str, instance: str) -> None:
    """The cost prices the stack's instance from the shipped table, spot as a share of it."""
    cost = document["cost"]
    assert f"{cloud} {instance}" in cost["price_source"]
    prices = default_price_table().instances[cloud][instance]
    share = f"{prices['spot'] / prices['on_demand']:.0%}"
    assert any(f"at {share} of the on-demand price" in note for note in cost["notes"])
    spot = next(row for row in cost["rows"] if row["lever"] == "spot")
    assert spot["saves_usd"] > 0


def assert_check_passes(
    stack: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`inferstack check --stack STACK --json` finds nothing."""
    monkeypatch.chdir(REPO)
    code = main(["check", "--stack", stack, "--json"])
    assert json.loads(capsys.readouterr().out) == []
    assert code == 0


def assert_broken_copy_fails(
    stack: str,
    tmp_path: Path,
    change: Callable[[dict[str, Any]], None],
    expected: tuple[str, ...],
) -> None:
    """The stack's config, changed by `change`, fails preview naming every `expected` line."""
    document = stack_document(stack)
    change(document["config"])
    result = preview("--stack", "broken", cwd=project_with(tmp_path, document))
    assert result.returncode != 0
    for line in expected:
        assert line in result.stderr, result.stderr
