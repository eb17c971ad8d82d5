"""`inferstack check` and `preview` judge the simulated declared day against `slo.attainment`."""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from inferstack.offline.discovery import ProgramLocation, add_program_arguments, locate_program
from inferstack.offline.slo import declared_day
from tests.offline.stacks import REPO, project_with, stack_document

SHIPPED = ["dev", "aws-prod", "gcp-prod", "scale-to-zero"]


def located(*argv: str) -> tuple[argparse.Namespace, ProgramLocation]:
    parser = argparse.ArgumentParser()
    add_program_arguments(parser)
    args = parser.parse_args(["--project-dir", str(REPO), *argv])
    return args, locate_program(args)


def cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "inferstack.cli", *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize("stack", SHIPPED)
def test_every_shipped_stack_meets_its_slo_on_its_declared_day(stack: str) -> None:
    args, location = located("--stack", stack)
    day = declared_day(location, args)
    assert day is not None
    assert day.met is True, day.slo_line()
    assert day.slo_percent == 99.0


def test_check_fails_on_a_stack_that_misses_its_slo(tmp_path: Path) -> None:
    # Three replicas carry 9,570 rps: the declared 15,000 rps spike overflows for two hours.
    document = stack_document("dev")
    document["config"]["inferstack:service"]["realtime"]["scaling"]["max_replicas"] = 3
    project = project_with(tmp_path, document, "short")
    text = cli("check", "--stack", "short", "--project-dir", str(project))
    assert text.returncode == 1, text.stderr
    assert "policy check passed" in text.stdout  # no policy fails it: the SLO does
    assert "slo.attainment MISSED" in text.stdout
    failure = next(line for line in text.stdout.splitlines() if line.startswith("check failed"))
    assert "slo.attainment" in failure
    assert "below the SLO of 99%" in failure
    assert f"inferstack tune --stack short --project-dir {project}" in failure
    as_json = cli("check", "--stack", "short", "--project-dir", str(project), "--json")
    assert as_json.returncode == 1, as_json.stderr
    violation = json.loads(as_json.stdout)[-1]
    assert violation["policy"] == "slo.attainment"
    assert violation["level"] == "mandatory"
    assert violation["message"] == failure.removeprefix("check failed: ")


def test_the_printed_command_reproduces_the_verdict_and_the_simulated_cost() -> None:
    args, location = located("--stack", "scale-to-zero")
    day = declared_day(location, args)
    assert day is not None
    command = shlex.split(day.command)
    assert command[:2] == ["inferstack", "simulate"]
    result = cli(*command[1:], "--json")
    assert result.returncode == 0, result.stderr
    configured = json.loads(result.stdout)["scenarios"][0]
    assert configured["scenario"] == "configured"
    assert round(100 * configured["slo_attainment"], 4) == day.attainment_percent
    assert configured["monthly_usd"] == day.simulated_monthly_usd
