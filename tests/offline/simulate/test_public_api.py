"""The simulator's public names resolve, and it runs without Pulumi, torch or matplotlib."""

from __future__ import annotations

import subprocess
import sys

import inferstack.offline.simulate as simulate


def test_every_exported_name_resolves():
    for name in simulate.__all__:
        assert getattr(simulate, name) is not None, name


def test_simulate_imports_neither_pulumi_nor_torch_nor_matplotlib():
    code = (
        "import sys, inferstack.offline.simulate.cli, inferstack.offline.simulate.fast;"
        "print(*('pulumi' in sys.modules, 'torch' in sys.modules, 'matplotlib' in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.stdout.split() == ["False", "False", "False"], result.stderr
