"""simulate and tune on a team's own Pulumi program: the spec built in code, none in config.

The issue's user had their own program and a `prod` stack; simulate refused it ("stack 'prod'
has no inferstack:service"). Now both read the service as preview does: the program runs under
mocks and its component's registered declaration (target, spec, options) is planned again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from inferstack.cli import main

PROGRAM = '''"""A team's program: its own config keys, the spec written in Python."""

import pulumi

from inferstack.components.kubernetes.component import KubernetesInferenceService
from inferstack.components.planning.plan import plan_service
from inferstack.components.planning.spec import parse_spec
from inferstack.profile import resolve_profile

team = pulumi.Config("team")
spec = parse_spec(
    {
        "name": "ranker",
        "model": {"uri": "builtin://mlp"},
        "latency_budget_ms": 50,
        "traffic": {"baseline_rps": float(team.require("baseline_rps")), "peak_rps": 400},
        "realtime": {"gpu": {"type": "nvidia-l4"}, "scaling": {"max_replicas": 12}},
    }
)
plan = plan_service(spec, resolve_profile(spec.model.uri, spec.model.profile))
KubernetesInferenceService("ranker", plan)
'''


def team_project(tmp_path: Path) -> Path:
    (tmp_path / "Pulumi.yaml").write_text("name: team\nruntime: python\n", encoding="utf-8")
    (tmp_path / "__main__.py").write_text(PROGRAM, encoding="utf-8")
    (tmp_path / "Pulumi.prod.yaml").write_text(
        "config:\n  team:baseline_rps: '40'\n", encoding="utf-8"
    )
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_simulate_and_tune_read_the_programs_own_service(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    flags = ("--project-dir", str(team_project(tmp_path)), "--stack", "prod")
    code, out, err = run(capsys, "simulate", *flags, "--days", "0.002", "--json")
    assert code == 0, err
    document: dict[str, Any] = json.loads(out)
    assert document["service"] == "ranker"
    assert document["scenarios"][0]["requests"] > 0

    code, out, err = run(
        capsys, "tune", *flags, "--days", "0.002", "--seeds", "1", "--knobs", "min_replicas"
    )
    assert code in (0, 1), err  # 1: nothing met the SLO, still a full report
    assert "Stack prod" in out

    code, _, err = run(capsys, "tune", *flags, "--days", "0.002", "--write")
    assert code == 2
    assert "builds its spec in its program" in err


def test_a_program_without_a_service_is_named_as_such(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    project = team_project(tmp_path)
    (project / "__main__.py").write_text("import pulumi\n", encoding="utf-8")
    code, _, err = run(capsys, "simulate", "--project-dir", str(project), "--stack", "prod")
    assert code == 2
    assert "declares no inferstack service" in err
