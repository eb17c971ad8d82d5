"""The public API of inferstack.components: every exported name resolves, and lazily."""

from __future__ import annotations

import subprocess
import sys

import pytest

import inferstack.components as components


def test_every_exported_name_resolves() -> None:
    for name in components.__all__:
        assert getattr(components, name) is not None, name


def test_unknown_names_raise_attribute_error() -> None:
    with pytest.raises(AttributeError, match="NoSuchThing"):
        components.NoSuchThing  # type: ignore[attr-defined]  # noqa: B018


def test_pulumi_loads_only_when_a_component_is_asked_for() -> None:
    code = (
        "import sys, inferstack.components as c;"
        "before = 'pulumi' in sys.modules;"
        "c.KubernetesInferenceService;"
        "print(before, 'pulumi' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.stdout.split() == ["False", "True"], result.stderr
