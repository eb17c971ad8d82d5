"""scripts/scan.py reads checkov's report as CI needs: failures and unexplained skips fail."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "scan.py"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("scan", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["scan"] = module
    spec.loader.exec_module(module)
    return module


def check(check_id: str, comment: str | None = None) -> dict:  # type: ignore[type-arg]
    result: dict = {"result": "SKIPPED" if comment is not None else "FAILED"}  # type: ignore[type-arg]
    if comment is not None:
        result["suppress_comment"] = comment
    return {
        "check_id": check_id,
        "check_name": "a check",
        "resource": "Deployment.ns.x",
        "check_result": result,
    }


def test_failures_and_skips_without_a_reason_are_counted() -> None:
    scan = load()
    report = {
        "check_type": "kubernetes",
        "results": {
            "passed_checks": [check("CKV_K8S_1"), check("CKV_K8S_2")],
            "failed_checks": [check("CKV_K8S_9")],
            "skipped_checks": [check("CKV_K8S_11", "throttling"), check("CKV_K8S_15", " ")],
        },
    }
    verdict = scan.judge("dev", report)
    assert verdict.passed == 2
    assert verdict.failed == ["CKV_K8S_9 Deployment.ns.x: a check"]
    assert verdict.skipped == [
        "CKV_K8S_11 Deployment.ns.x: throttling",
        "CKV_K8S_15 Deployment.ns.x: (no reason)",
    ]
    assert verdict.unexplained == ["CKV_K8S_15 Deployment.ns.x: (no reason)"]


def test_a_report_list_and_integral_floats() -> None:
    scan = load()
    assert scan.judge("x", [{"check_type": "kubernetes", "results": {}}]).passed == 0
    assert scan.integral_floats_to_int({"a": [1.0, 1.5, {"b": 65532.0}]}) == {
        "a": [1, 1.5, {"b": 65532}]
    }


def test_every_stack_is_scanned() -> None:
    stacks = load().stacks()
    assert {"dev", "scale-to-zero"} <= set(stacks)
