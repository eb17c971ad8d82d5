"""`inferstack check` and `preview` judge the simulated declared day against `slo.attainment`."""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from inferstack.offline.capture import Capture, CapturedResource, capture_program
from inferstack.offline.discovery import ProgramLocation, add_program_arguments, locate_program
from inferstack.offline.simulate import inputs as simulate_inputs
from inferstack.offline.slo import DeclaredDay, UncheckedDay, declared_day
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


# ---------------------------------------------------------------------------------------------
# Services a team's own program declares (the spec built in code, none in the stack config)

SPEC_CODE = """{
    "name": NAME,
    "model": {"uri": "builtin://mlp"},
    "latency_budget_ms": 50,
    "traffic": {"baseline_rps": 40, "peak_rps": 400},
    "realtime": {"gpu": {"type": "nvidia-l4"}, "scaling": {"max_replicas": 12}},
}"""
KUBERNETES_PROGRAM = f"""
import pulumi

from inferstack.components.kubernetes.component import KubernetesInferenceService
from inferstack.components.planning.plan import plan_service
from inferstack.components.planning.spec import parse_spec
from inferstack.profile import resolve_profile

for NAME in pulumi.Config("team").require("services").split(","):
    spec = parse_spec({SPEC_CODE})
    plan = plan_service(spec, resolve_profile(spec.model.uri, spec.model.profile))
    KubernetesInferenceService(NAME, plan)
"""
CLOUDRUN_PROGRAM = f"""
from inferstack.components.cloudrun.component import CloudRunInferenceStack
from inferstack.components.cloudrun.options import parse_cloudrun_options
from inferstack.components.planning.plan import plan_service
from inferstack.components.planning.spec import parse_spec
from inferstack.profile import resolve_profile

NAME = "ranker"
spec = parse_spec({SPEC_CODE})
options = parse_cloudrun_options(
    {{
        "project": "acme-inference",
        "project_number": "123456789012",
        "region": "us-central1",
        "image": "us-central1-docker.pkg.dev/acme-inference/r/runtime:0.1.0-cuda@sha256:"
        + "ab" * 32,
        "invokers": ["serviceAccount:gateway@acme-inference.iam.gserviceaccount.com"],
    }},
    source="team",
    spec=spec,
)
plan = plan_service(spec, resolve_profile(spec.model.uri, spec.model.profile), target="cloudrun")
CloudRunInferenceStack(NAME, plan, options)
"""


def team_project(tmp_path: Path, program: str, services: str = "ranker") -> Path:
    (tmp_path / "Pulumi.yaml").write_text("name: team\nruntime: python\n", encoding="utf-8")
    (tmp_path / "__main__.py").write_text(program, encoding="utf-8")
    (tmp_path / "Pulumi.prod.yaml").write_text(
        f"config:\n  team:services: {services}\n", encoding="utf-8"
    )
    return tmp_path


def located_in(project: Path) -> tuple[argparse.Namespace, ProgramLocation]:
    parser = argparse.ArgumentParser()
    add_program_arguments(parser)
    args = parser.parse_args(["--project-dir", str(project), "--stack", "prod"])
    return args, locate_program(args)


def test_a_service_the_program_declares_is_simulated_on_its_declared_day(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It used to be skipped in silence: the check returned None for a config without a spec.
    The program runs under mocks once: the run that found the service is the one planned again
    (it used to run a second time for the simulator's inputs)."""
    runs: list[Path] = []

    def counted(program_dir: Path, **kwargs: Any) -> Capture:
        runs.append(program_dir)
        return capture_program(program_dir, **kwargs)

    # The one place a program is run for the check (`inputs.program_capture`).
    monkeypatch.setattr(simulate_inputs, "capture_program", counted)
    project = team_project(tmp_path, KUBERNETES_PROGRAM)
    args, location = located_in(project)
    day = declared_day(location, args)
    assert runs == [location.program_dir]
    assert isinstance(day, DeclaredDay)
    assert day.service == "ranker"
    assert day.met is True, day.slo_line()
    assert day.untunable is None  # tune searches a Kubernetes service a program declares
    text = cli("check", "--stack", "prod", "--project-dir", str(project))
    assert text.returncode == 0, text.stdout + text.stderr
    assert "slo.attainment met" in text.stdout


def test_a_cloud_run_service_the_program_declares_is_simulated_and_tune_is_not_offered(
    tmp_path: Path,
) -> None:
    args, location = located_in(team_project(tmp_path, CLOUDRUN_PROGRAM))
    day = declared_day(location, args)
    assert isinstance(day, DeclaredDay)
    assert day.service == "ranker"
    assert day.attainment_percent is not None
    assert day.untunable is not None
    assert "cannot search a cloudrun service its program declares" in day.untunable
    assert day.untunable in day.miss_message()


def test_several_program_services_are_named_in_a_warning(tmp_path: Path) -> None:
    project = team_project(tmp_path, KUBERNETES_PROGRAM, services="ranker,scorer")
    args, location = located_in(project)
    day = declared_day(location, args)
    assert isinstance(day, UncheckedDay)
    assert day.met is None
    assert day.services == ("ranker", "scorer")
    assert "runs one service per stack" in day.why
    text = cli("check", "--stack", "prod", "--project-dir", str(project))
    assert text.returncode == 0, text.stdout + text.stderr
    assert (
        "warning: slo.attainment is not checked on the declared day for ranker, scorer "
        "(stack prod): the program declares 2 inferstack services"
    ) in text.stdout
    preview = cli("preview", "--stack", "prod", "--project-dir", str(project), "--json")
    assert json.loads(preview.stdout)["simulation"]["checked"] is False


def test_a_component_without_a_declaration_is_named_with_the_fix(tmp_path: Path) -> None:
    """A component that registers a sizing but no declaration cannot be planned again."""
    args, location = located_in(team_project(tmp_path, "import pulumi\n"))
    component = CapturedResource(
        type="inferstack:sagemaker:SageMakerInferenceStack",
        name="ranker",
        urn="urn:pulumi:prod::team::inferstack:sagemaker:SageMakerInferenceStack::ranker",
        parent="",
        custom=False,
        provider="",
        inputs={},
        outputs={"sizing": {}, "cost": {}},
    )
    capture = Capture("team", "prod", {}, [component], {})
    day = declared_day(location, args, capture)
    assert isinstance(day, UncheckedDay)
    assert day.services == ("ranker",)
    assert "inferstack:sagemaker:SageMakerInferenceStack" in day.why
    assert "registers no declaration" in day.why
    assert "put its spec in the stack config" in day.why
    # A program with no inferstack service has nothing to judge.
    assert declared_day(location, args, Capture("team", "prod", {}, [], {})) is None
