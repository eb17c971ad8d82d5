"""`inferstack preview` end to end: the real stack program under the SDK's mock monitor."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.offline.stacks import REPO, preview, project_with, stack_document


def bad_project(tmp_path: Path, service: object) -> Path:
    """A project that runs the real stacks/ program with a stack config of our own."""
    return project_with(tmp_path, {"config": {"inferstack:service": service}})


def dev_service() -> dict[str, object]:
    service: dict[str, object] = stack_document("dev")["config"]["inferstack:service"]
    return service


def test_json_preview_of_the_dev_stack() -> None:
    result = preview("--stack", "dev", "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert {"resources", "sizing", "cost"} <= set(document)
    stack = document["resources"][0]
    assert stack["type"] == "pulumi:pulumi:Stack"
    assert stack["parent"] is None
    for resource in document["resources"]:
        assert set(resource) == {"type", "name", "parent", "inputs"}
    realtime = document["sizing"]["realtime"]
    assert realtime["min_replicas"]["reason"]
    assert isinstance(realtime["min_replicas"]["value"], int)
    assert realtime["prewarm"][0]["start_cron"]
    assert [row["lever"] for row in document["cost"]["rows"]] == [
        "naive",
        "batching",
        "autoscaling",
        "scale-to-zero",
        "spot",
    ]
    simulation = document["simulation"]
    assert simulation["command"] == "inferstack simulate --stack dev --mode fast --seed 0"
    assert simulation["slo"]["field"] == "slo.attainment"
    assert simulation["slo"]["attainment_percent"] == 99.0
    assert simulation["slo"]["met"] is True
    assert simulation["slo"]["simulated_attainment_percent"] >= 99.0
    assert simulation["cost"]["trusted"] == "simulated"
    assert simulation["cost"]["formula_monthly_usd"] == document["cost"]["configured_monthly_usd"]


def test_text_preview_shows_reasons_and_the_cost_table() -> None:
    result = preview("--stack", "dev")
    assert result.returncode == 0, result.stderr
    assert "realtime.min_replicas" in result.stdout
    assert "rounded up" in result.stdout
    assert "Pre-warm windows" in result.stdout
    assert "Monthly cost" in result.stdout
    assert "configured" in result.stdout
    # A structured derived value reads like the others: value, then reason, no Python dict.
    scale_up = next(line for line in result.stdout.splitlines() if "realtime.scale_up" in line)
    assert "pods=7 " in scale_up
    assert "period_seconds=15" in scale_up
    assert "{" not in scale_up
    assert "no traffic.ramp_minutes" in scale_up
    assert "slo.attainment          met: " in result.stdout
    assert "reproduce: inferstack simulate --stack dev --mode fast --seed 0" in result.stdout


def test_bad_field_fails_with_its_path_and_creates_nothing(tmp_path: Path) -> None:
    service = dev_service()
    service["batching"] = {**service["batching"], "preferred_batch_sizes": [64]}  # type: ignore[dict-item]
    result = preview("--stack", "broken", "--project-dir", str(bad_project(tmp_path, service)))
    assert result.returncode == 2
    assert "inferstack:service.batching.preferred_batch_sizes: " in result.stderr
    assert "exceed max_batch_size" in result.stderr
    assert result.stdout == ""


def test_profile_based_refusal_fails_with_its_path(tmp_path: Path) -> None:
    service = dev_service()
    service["latency_budget_ms"] = 6  # the CPU profile cannot fit 5 ms delay + a batch in 6 ms
    result = preview("--stack", "broken", "--project-dir", str(bad_project(tmp_path, service)))
    assert result.returncode == 2
    assert "latency_budget_ms" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_stack_is_named(tmp_path: Path) -> None:
    result = preview("--stack", "nope")
    assert result.returncode == 2
    assert "no stack 'nope'" in result.stderr
    assert "dev" in result.stderr


def test_scale_to_zero_stack_holds_requests_through_the_http_add_on() -> None:
    result = preview("--stack", "scale-to-zero", "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    types = {resource["type"] for resource in document["resources"]}
    assert "kubernetes:http.keda.sh/v1beta1:InterceptorRoute" in types
    scaler = next(r for r in document["resources"] if r["name"] == "reranker-realtime-scaler")
    assert scaler["inputs"]["spec"]["minReplicaCount"] == 0
    hold = document["sizing"]["realtime"]["request_hold_timeout_seconds"]["value"]
    assert hold >= document["sizing"]["cold_start_seconds"]["value"]
    # The formula prices the pool at its sized hours ($19); the simulator keeps it up through
    # the cooldown and the node removal delay ($32, as exact mode bills it), and the preview
    # trusts the simulated figure. The pool does sleep between uses: a fast mode whose idle
    # gauges never reached zero kept it up all day, at over 10 times the formula.
    cost = document["simulation"]["cost"]
    assert cost["formula_monthly_usd"] < 25
    assert cost["formula_monthly_usd"] < cost["simulated_monthly_usd"]
    assert cost["simulated_monthly_usd"] < 3 * cost["formula_monthly_usd"]
    assert cost["trusted"] == "simulated"
    assert "cooldown" in cost["why"]


def test_a_yaml_syntax_error_in_a_stack_file_is_one_line_with_its_place(tmp_path: Path) -> None:
    project = bad_project(tmp_path, dev_service())
    (project / "Pulumi.broken.yaml").write_text("config:\n  inferstack:service: {name: [oops\n")
    for command in ("preview", "check"):
        result = subprocess.run(
            [sys.executable, "-m", "inferstack.cli", command, "--stack", "broken"],
            cwd=project,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr
        assert result.stderr.count("\n") == 1, result.stderr
        assert f"{project / 'Pulumi.broken.yaml'}:3:1: not valid YAML" in result.stderr


PROGRAM = REPO / "tests" / "components" / "programs" / "k8s_services"
QUEUE_OPTIONS = {"queue": {"results_uri": "s3://b/p", "aws_region": "us-east-1"}}


def test_preview_json_is_byte_identical_run_to_run() -> None:
    first, second = preview("--json"), preview("--json")
    assert first.returncode == second.returncode == 0, first.stderr
    assert first.stdout == second.stdout


def test_preview_finds_pulumi_yaml_in_a_parent_and_takes_config_like_check() -> None:
    from_subfolder = preview(cwd=REPO / "stacks")
    assert from_subfolder.returncode == 0, from_subfolder.stderr
    assert from_subfolder.stdout.startswith("Stack dev of project inferstack")
    overridden = preview("--config", "inferstack:target=nowhere", cwd=REPO / "stacks")
    assert overridden.returncode == 2
    assert "'nowhere' is not available" in overridden.stderr


def test_preview_and_check_count_the_same_resources() -> None:
    shown = preview()
    checked = subprocess.run(
        [sys.executable, "-m", "inferstack.cli", "check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert shown.returncode == checked.returncode == 0, checked.stderr
    count = shown.stdout.split("Resources (", 1)[1].split(")", 1)[0]
    assert f"over {count} resources" in checked.stdout
    assert "pulumi:providers:kubernetes" in shown.stdout  # the engine's default provider
    # The sizing warnings reach the check's reader too, one per pool.
    assert checked.stdout.count("warning: embedder: ") == 2


def test_preview_reads_every_components_sizing_and_cost_without_stack_exports() -> None:
    from tests.components.factories import PROFILE, spec_data

    other = {**PROFILE, "model": "file:///models/other.pt"}
    scenarios = [
        {"spec": spec_data(name="alpha"), "options": QUEUE_OPTIONS, "profile": PROFILE},
        {
            "spec": spec_data(name="beta", model__accept_profile_of="file:///models/other.pt"),
            "options": QUEUE_OPTIONS,
            "profile": other,
        },
    ]
    args = ["--program", str(PROGRAM), "--stack", "t"]
    args += ["--config", "k8s-services:now=2026-06-01T00:00:00+00:00"]
    args += ["--config", f"k8s-services:scenarios={json.dumps(scenarios)}"]
    result = preview(*args, "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    services = {service["name"]: service for service in document["services"]}
    assert sorted(services) == ["alpha", "beta"]
    for service in services.values():
        assert service["type"] == "inferstack:kubernetes:InferenceService"
        assert service["sizing"]["realtime"]["min_replicas"]["value"] >= 1
        assert service["cost"]["configured_monthly_usd"] > 0
    assert services["alpha"]["sizing"]["warnings"] == []
    assert services["beta"]["sizing"]["warnings"][0].startswith("model.accept_profile_of:")
    assert document["sizing"] is None  # two services: read `services`
    text = preview(*args)
    assert text.stdout.count("Monthly cost") == 2
    assert "warning: model.accept_profile_of: sized from a profile of file:///models/other.pt" in (
        text.stdout
    )
