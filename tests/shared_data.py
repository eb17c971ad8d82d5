"""Data the tests read from beside the checkout (`../shared/`), and what a missing piece means.

The public traces and the CRD schemas are not in the repository (their licences and sizes), so
a laptop checkout may lack them. Every test that needs one goes through `require` or
`shared_path`: elsewhere it skips with the reason; under `CI=true` it fails, because CI must run
every test.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
"""The folder beside the checkout that holds the traces and schemas."""

TRACES = SHARED / "traces"
AZURE_TRACE = TRACES / "azure-llm-2023-code.csv"
"""Azure LLM inference trace (code, 2023), Microsoft Azure Public Dataset, CC-BY 4.0."""

SCHEMAS = SHARED / "schemas"
KEDA_SCHEMAS = SCHEMAS / "keda"
KARPENTER_SCHEMAS = SCHEMAS / "karpenter"


def in_ci() -> bool:
    """Whether this run is CI's (`CI=true`), where no test may skip."""
    return os.environ.get("CI") == "true"


def require(condition: bool, reason: str) -> None:
    """Skip with `reason` unless `condition` holds; under CI=true, fail instead."""
    if condition:
        return
    if in_ci():
        pytest.fail(f"{reason} (CI=true: no test may skip)")
    pytest.skip(reason)


def shared_path(path: Path) -> Path:
    """`path` under ../shared/ when it is there; otherwise skip, or fail under CI=true."""
    try:
        shown = f"../shared/{path.relative_to(SHARED)}"
    except ValueError:
        shown = str(path)
    require(path.exists(), f"{shown} not present beside the checkout ({path})")
    return path


def azure_trace() -> Path:
    """The Azure LLM code trace the README's and the simulator's transcripts run on."""
    return shared_path(AZURE_TRACE)
