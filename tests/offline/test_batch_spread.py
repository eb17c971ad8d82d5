"""Queue work with no `batch.schedule`: the preview's cost formula and the simulator agree.

Both spread `expected_items_per_day` evenly over the day (a Poisson stream). The pool cannot
go to zero while items keep coming within KEDA's cooldown plus the node's removal, so at any
volume worth a GPU it is up all day, whatever share of that time it is busy; only items rarer
than that tail let it go to zero between them. On-demand capacity keeps the comparison free of
spot interruptions, which the formula averages and a short simulation draws or not.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from inferstack.cli import main

REPO = Path(__file__).resolve().parents[2]


def project(tmp_path: Path, items_per_day: int) -> str:
    (tmp_path / "Pulumi.yaml").write_text(
        f"name: spread\nruntime: python\nmain: {REPO / 'stacks'}\n", encoding="utf-8"
    )
    (tmp_path / "Pulumi.spread.yaml").write_text(
        f"""config:
  inferstack:kubernetes:
    queue: {{aws_region: us-east-1, results_uri: s3://jobs-results/out}}
  inferstack:service:
    name: spread
    model: {{uri: builtin://mlp}}
    latency_budget_ms: 100
    traffic: {{baseline_rps: 0, peak_rps: 1}}
    batch:
      gpu: {{type: nvidia-l4}}
      queue: {{kind: sqs, name: jobs}}
      capacity: {{spot: false}}
      scaling: {{max_replicas: 20}}
      expected_items_per_day: {items_per_day}
""",
        encoding="utf-8",
    )
    return str(tmp_path)


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    code = main(list(argv))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    document: dict[str, Any] = json.loads(captured.out)
    return document


def formula_and_simulation(
    capsys: pytest.CaptureFixture[str], folder: str, days: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    common = ("--project-dir", folder, "--stack", "spread", "--json")
    preview = run_json(capsys, "preview", *common)["cost"]
    simulated = run_json(capsys, "simulate", *common, "--mode", "fast", "--days", str(days))
    return preview, simulated["scenarios"][0]


def test_items_spread_over_the_day_hold_the_pool_all_day_in_both(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # 20 M items a day keep one L4 busy 7% of the time, but one arrives every few milliseconds.
    preview, configured = formula_and_simulation(capsys, project(tmp_path, 20_000_000), 1)
    assert configured["monthly_usd"] == pytest.approx(preview["configured_monthly_usd"], rel=0.10)
    assert configured["pools"][0]["gpu_hours_on_demand"] == pytest.approx(24.0, abs=0.1)
    note = " ".join(preview["notes"])
    assert "arrive spread over the day (no batch.schedule)" in note
    assert "keep 1 replica(s) up all day" in note
    assert "declare batch.schedule" in note


def test_rare_items_let_the_pool_go_to_zero_between_them_in_both(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # 96 items a day, one every 15 min on average: about a third of the gaps outlast the 900 s
    # tail, so the node is gone about a third of the time and wakes some 35 times a day.
    preview, configured = formula_and_simulation(capsys, project(tmp_path, 96), 2)
    formula = preview["configured_monthly_usd"]
    assert configured["monthly_usd"] == pytest.approx(formula, rel=0.10)
    hours = configured["pools"][0]["gpu_hours_on_demand"]
    assert 0.5 * 48 < hours < 0.8 * 48
    assert configured["batch"]["processed"] == configured["batch"]["items"]
    assert "the pool goes to zero only after 900 s" in " ".join(preview["notes"])


def test_the_formulas_cooldown_is_the_rendered_one() -> None:
    from inferstack.components.kubernetes import scaling
    from inferstack.components.planning import cost

    assert cost.IDLE_BEFORE_ZERO_SECONDS == scaling.IDLE_BEFORE_ZERO_SECONDS
