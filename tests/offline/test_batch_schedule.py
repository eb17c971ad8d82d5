"""A batch declared to run nightly: the preview's cost formula and the simulator assume the same
arrivals (`batch.schedule`), so their monthly costs agree.

The issue's case: the simulator spread a day's items over 24 h while the formula assumed
otherwise ($384 against $563 a month). On-demand capacity keeps the comparison free of spot
interruptions, which the formula averages and one simulated day draws or not.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from inferstack.cli import main
from inferstack.errors import SpecError
from tests.components.factories import make_spec

REPO = Path(__file__).resolve().parents[2]
NIGHTLY = """config:
  inferstack:kubernetes:
    queue: {aws_region: us-east-1, results_uri: s3://jobs-results/out}
  inferstack:service:
    name: nightly
    model: {uri: builtin://mlp}
    latency_budget_ms: 100
    traffic: {baseline_rps: 0, peak_rps: 1}
    batch:
      gpu: {type: nvidia-l4}
      queue: {kind: sqs, name: jobs}
      capacity: {spot: false}
      scaling: {max_replicas: 20}
      expected_items_per_day: 20000000
      schedule: {cron: "0 1 * * *", timezone: UTC, duration_minutes: 240}
"""


def project(tmp_path: Path) -> Path:
    (tmp_path / "Pulumi.yaml").write_text(
        f"name: nightly\nruntime: python\nmain: {REPO / 'stacks'}\n", encoding="utf-8"
    )
    (tmp_path / "Pulumi.nightly.yaml").write_text(NIGHTLY, encoding="utf-8")
    return tmp_path


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    code = main(list(argv))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    document: dict[str, Any] = json.loads(captured.out)
    return document


def test_a_nightly_batch_costs_the_same_in_preview_and_simulate(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    folder = str(project(tmp_path))
    preview = run_json(capsys, "preview", "--project-dir", folder, "--stack", "nightly", "--json")
    formula = preview["cost"]["configured_monthly_usd"]
    note = " ".join(preview["cost"]["notes"])
    assert "items per run ('0 1 * * *' UTC" in note
    simulated = run_json(
        capsys,
        "simulate",
        "--project-dir",
        folder,
        "--stack",
        "nightly",
        "--mode",
        "fast",
        "--json",
    )
    configured = simulated["scenarios"][0]
    assert configured["monthly_usd"] == pytest.approx(formula, rel=0.10)
    # The items arrive in the four-hour window: the pool is up about that long, not all day.
    hours = configured["pools"][0]["gpu_hours_on_demand"]
    assert 4.0 < hours < 5.0
    assert configured["batch"]["processed"] == configured["batch"]["items"]


def test_a_schedule_needs_a_fixed_start_and_a_known_timezone() -> None:
    with pytest.raises(SpecError) as caught:
        make_spec(
            batch__schedule={"cron": "*/30 1 * * *", "timezone": "Mars/Base", "duration_minutes": 0}
        )
    paths = {problem.path: problem.message for problem in caught.value.problems}
    assert "one fixed start time" in paths["batch.schedule.cron"]
    assert "IANA" in paths["batch.schedule.timezone"]
    assert "greater than 0" in paths["batch.schedule.duration_minutes"]


def test_the_formulas_run_tail_is_the_rendered_cooldown_plus_the_simulated_node_removal() -> None:
    from inferstack.components.kubernetes.scaling import IDLE_BEFORE_ZERO_SECONDS
    from inferstack.components.planning.cost import RUN_TAIL_SECONDS
    from inferstack.offline.simulate.config import CONSOLIDATION_SECONDS

    assert RUN_TAIL_SECONDS == IDLE_BEFORE_ZERO_SECONDS + CONSOLIDATION_SECONDS
