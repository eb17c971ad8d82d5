"""The `inferstack` command and the import boundaries its extras rely on."""

from __future__ import annotations

import subprocess
import sys

from inferstack.cli import SUBCOMMANDS


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)


def test_help_lists_every_subcommand() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "inferstack.cli", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0
    for name in SUBCOMMANDS:
        assert name in result.stdout


def test_unknown_subcommand_is_refused_with_the_choices() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "inferstack.cli", "deploy"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "invalid choice" in result.stderr


def test_components_spec_and_sizing_import_neither_pulumi_nor_torch() -> None:
    result = run_python(
        "import sys, inferstack.cli, inferstack.components.planning.sizing,"
        " inferstack.components.planning.cost;"
        "print(sorted(m for m in ('pulumi', 'torch') if m in sys.modules))"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_runtime_package_does_not_import_pulumi() -> None:
    result = run_python(
        "import sys, inferstack.runtime, inferstack.contract.metrics;print('pulumi' in sys.modules)"
    )
    assert result.stdout.strip() == "False", result.stderr


def test_kubernetes_manifests_import_no_runtime_dependencies() -> None:
    # A Pulumi repo installs inferstack[infra]: no numpy, torch or prometheus_client.
    result = run_python(
        "import sys, inferstack.components.kubernetes.workloads,"
        " inferstack.components.kubernetes.scaling;"
        "print(sorted(m for m in ('numpy', 'torch', 'prometheus_client') if m in sys.modules))"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
