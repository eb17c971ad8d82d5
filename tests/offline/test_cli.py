"""The `inferstack` command and the import boundaries its extras rely on."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from inferstack.cli import EXTRA_INCLUDES, EXTRA_MODULES, SUBCOMMANDS

REPO = Path(__file__).resolve().parents[2]


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


def without_modules(*names: str) -> str:
    """Python that makes `names` unimportable, as in an install without their extra."""
    return f"import sys; sys.modules.update(dict.fromkeys({names!r}));"


@pytest.mark.parametrize(
    ("argv", "missing", "extra"),
    [
        (["serve", "--model", "builtin://mlp"], ("torch", "numpy"), "runtime"),
        (["profile", "--model", "builtin://mlp", "--out", "p.json"], ("torch", "numpy"), "runtime"),
        (["work", "--help"], ("torch", "numpy"), "worker"),
    ],
)
def test_a_subcommand_without_its_extra_names_the_extra(
    argv: list[str], missing: tuple[str, ...], extra: str
) -> None:
    result = run_python(
        without_modules(*missing) + f"from inferstack.cli import main; sys.exit(main({argv!r}))"
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert f"pip install 'inferstack[{extra}]'" in result.stderr
    assert "Traceback" not in result.stderr


def test_extras_named_by_the_cli_exist_in_pyproject() -> None:
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    named = {sub.extra for sub in SUBCOMMANDS.values() if sub.extra} | set(EXTRA_MODULES)
    assert named <= set(extras)
    for extra, included in EXTRA_INCLUDES.items():
        assert all(f"inferstack[{name}]" in extras[extra] for name in included)


def test_a_closed_output_pipe_is_one_line_and_exit_2() -> None:
    # `inferstack preview | head -0`: the reader is gone before the first line is written
    # (the preview runs the program first, for a second or more).
    script = (
        f"{sys.executable} -m inferstack.cli preview 2>err.txt | head -0; echo ${{PIPESTATUS[0]}}"
    )
    result = subprocess.run(
        ["bash", "-c", script], cwd=REPO, capture_output=True, text=True, check=False
    )
    err = (REPO / "err.txt").read_text()
    (REPO / "err.txt").unlink()
    assert result.stdout.strip() == "2", err
    assert err == "inferstack preview: output closed before it was all written\n"


def test_version_is_the_one_in_pyproject() -> None:
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    result = subprocess.run(
        [sys.executable, "-m", "inferstack.cli", "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"inferstack {version}"


def test_each_cloud_target_has_its_extra() -> None:
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    for extra, sdk in (("aws", "pulumi-aws"), ("gcp", "pulumi-gcp")):
        assert "inferstack[infra]" in extras[extra]
        assert any(requirement.startswith(sdk) for requirement in extras[extra]), extra
    assert "inferstack[runtime,worker,infra,simulate,aws,gcp]" in extras["dev"]


def test_make_demo_installs_only_what_preview_needs() -> None:
    # The demo previews a stack: the infra extra (Pulumi with its Kubernetes SDK, and the
    # declared day's simulation). Not the dev set (moto, parliament, pulumi-gcp) nor torch.
    result = subprocess.run(
        ["make", "-n", "-B", "demo", "VENV=/nonexistent"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    installs = [line for line in result.stdout.splitlines() if "pip install" in line]
    assert installs[-1].endswith("pip install -q -e '.[infra]'"), installs
    assert not any("torch" in line or "[dev]" in line for line in installs), installs


def test_preview_without_numpy_names_the_infra_extra() -> None:
    # preview simulates the declared day: the infra extra brings numpy and numba with it.
    result = run_python(
        without_modules("numpy", "numba")
        + "from inferstack.cli import main; sys.exit(main(['preview', '--stack', 'dev']))"
    )
    assert result.returncode == 2, result.stderr
    assert "pip install 'inferstack[infra]'" in result.stderr
