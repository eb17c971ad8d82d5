"""`--device cuda` where this torch cannot give it: one line from every command, before any
fetch or load (not a traceback, not "not a TorchScript archive").

Runs where torch is a CPU build or sees no GPU (the development machines and CI); on a GPU
machine the same commands serve on the GPU instead, which the image test covers.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.integration.conftest import free_port

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    torch.cuda.is_available(), reason="a GPU is visible: --device cuda is valid here"
)


@pytest.mark.parametrize(
    ("command", "flags"),
    [
        ("profile", ["--out", "unused.json", "--model-process", "false"]),
        ("serve", ["--port", str(free_port())]),
        ("work", ["--queue", "redis://127.0.0.1:1/0?stream=s", "--results", "file:///tmp/r"]),
    ],
)
def test_device_cuda_without_a_gpu_is_one_line(
    command: str, flags: list[str], tmp_path: Path
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "inferstack.cli", command, "--model", "builtin://mlp",
         "--device", "cuda", *flags],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.stderr
    expected = (
        f"this torch ({torch.__version__}) is a CPU build"
        if torch.version.cuda is None
        else "no GPU is visible"
    )
    assert expected in lines[-1], result.stderr
    assert lines[-1].startswith(f"inferstack {command}: ")
    assert "--device cpu / auto" in lines[-1]
