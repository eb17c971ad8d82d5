"""Fixture programs through the whole offline check: program under mocks, real pack over gRPC.

`programs/cases` holds one compliant case per policy; `policy-cases:violate` flips the one change
that makes a named policy's case violate it. So each policy has a compliant and a violating
fixture that differ in one change, and the runs below name exactly the policies asked for.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from inferstack.cli import main
from inferstack.policies.rules import ALL_RULES

PROGRAM = Path(__file__).parent / "programs" / "cases"
EXPECTED_RESOURCE = {
    "no-spot-for-realtime": ("kubernetes:apps/v1:Deployment", "spot-case"),
    "scale-to-zero-needs-wake-path": ("kubernetes:keda.sh/v1alpha1:ScaledObject", "zero-case"),
    "demand-signal-autoscaling": ("kubernetes:keda.sh/v1alpha1:ScaledObject", "demand-case"),
    "bounded-gpu-capacity": ("aws:eks/nodeGroup:NodeGroup", "bounded-case"),
    "queue-delay-within-budget": ("kubernetes:apps/v1:Deployment", "delay-case"),
    "async-spot-durability": ("aws:sqs/queue:Queue", "durable-case"),
    "cold-start-within-hold-timeout": (
        "kubernetes:http.keda.sh/v1alpha1:HTTPScaledObject",
        "cold-case",
    ),
    "inference-security": ("kubernetes:core/v1:Service", "secure-case"),
    "pubsub-dead-letter-bindings": ("gcp:pubsub/subscription:Subscription", "durable-case-workers"),
    "bucket-public-access-prevention": ("gcp:storage/bucket:Bucket", "private-case"),
    "spot-interruption-handling": ("kubernetes:karpenter.sh/v1:NodePool", "interruption-case"),
    "scoped-inference-identities": ("aws:iam/rolePolicy:RolePolicy", "scoped-case"),
    "private-results-bucket": ("aws:s3/bucket:Bucket", "results-case"),
    "image-pinned-by-digest": ("kubernetes:apps/v1:Deployment", "digest-case"),
    "gpu-capacity-follows-demand": ("kubernetes:apps/v1:Deployment", "fixed-case"),
    "sagemaker-bounded-capacity": (
        "aws:sagemaker/endpointConfiguration:EndpointConfiguration",
        "sm-bounded-case",
    ),
    "sagemaker-realtime-zero": (
        "aws:sagemaker/endpointConfiguration:EndpointConfiguration",
        "sm-zero-case",
    ),
    "sagemaker-demand-scaling": ("aws:appautoscaling/target:Target", "sm-demand-case-copies"),
    "sagemaker-async-error-destination": (
        "aws:sagemaker/endpointConfiguration:EndpointConfiguration",
        "sm-async-case",
    ),
    "sagemaker-async-wake": ("aws:appautoscaling/target:Target", "sm-wake-case-instances"),
    "cloudrun-bounded-gpu-service": ("gcp:cloudrunv2/service:Service", "cr-bounded-case"),
    "cloudrun-private-gpu-service": (
        "gcp:cloudrunv2/serviceIamMember:ServiceIamMember",
        "cr-private-case-invoker",
    ),
    "cloudrun-concurrency-fills-batch": ("gcp:cloudrunv2/service:Service", "cr-concurrency-case"),
}
LEVEL = {rule.name: rule.enforcement for rule in ALL_RULES}


def check(capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, list[dict[str, Any]]]:
    code = main(["check", "--program", str(PROGRAM), "--stack", "ci", "--json", *extra])
    return code, json.loads(capsys.readouterr().out)


def test_every_policy_has_a_case() -> None:
    assert set(EXPECTED_RESOURCE) == {rule.name for rule in ALL_RULES}


def test_compliant_program_passes(capsys: pytest.CaptureFixture[str]) -> None:
    code, violations = check(capsys)
    assert violations == []
    assert code == 0


@pytest.mark.parametrize("policy", sorted(EXPECTED_RESOURCE))
def test_one_change_violates_exactly_that_policy(
    capsys: pytest.CaptureFixture[str], policy: str
) -> None:
    code, violations = check(capsys, "--config", f"violate={policy}")
    assert all(
        set(v) >= {"policy", "level", "resource_type", "resource_name", "message"}
        for v in violations
    )
    assert [
        (v["policy"], v["resource_type"], v["resource_name"], v["level"]) for v in violations
    ] == [(policy, *EXPECTED_RESOURCE[policy], LEVEL[policy])]
    # Advisory violations are reported but do not fail the check.
    assert code == (1 if LEVEL[policy] == "mandatory" else 0)


def test_one_violation_per_policy_fails_with_exactly_those(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, violations = check(capsys, "--config", "violate=all")
    found = sorted((v["policy"], v["resource_type"], v["resource_name"]) for v in violations)
    assert found == sorted((policy, *where) for policy, where in EXPECTED_RESOURCE.items())
    assert code == 1


def test_text_output_and_advisory_config(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = tmp_path / "policy.json"
    config.write_text(json.dumps({"all": "advisory"}))
    code = main(
        [
            "check",
            "--program",
            str(PROGRAM),
            "--stack",
            "ci",
            "--config",
            "violate=inference-security",
            "--policy-pack-config",
            str(config),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0  # advisory violations are reported but do not fail
    assert "Policies:\n    ✅ inferstack@v0.1.0" in out
    assert "- [advisory]  inference-security  (kubernetes:core/v1:Service: secure-case)" in out
    assert "0 mandatory and 1 advisory violation(s)" in out


def test_bad_policy_pack_config_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = tmp_path / "policy.json"
    config.write_text(json.dumps({"bounded-gpu-capacity": {"maxGpuNodes": 0}}))
    code = main(
        ["check", "--program", str(PROGRAM), "--stack", "ci", "--policy-pack-config", str(config)]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "bounded-gpu-capacity.maxGpuNodes: 0 is less than the minimum of 1" in err


def test_failing_program_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "Pulumi.yaml").write_text("name: broken\nruntime: python\n")
    (tmp_path / "__main__.py").write_text("raise ValueError('the program is broken')\n")
    code = main(["check", "--program", str(tmp_path), "--stack", "ci"])
    err = capsys.readouterr().err
    assert code == 2
    assert "the program failed under the mock monitor" in err
    assert "the program is broken" in err


def test_dev_stack_passes(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`make check`: the project's own program with stacks/Pulumi.dev.yaml violates nothing."""
    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    code = main(["check", "--stack", "dev", "--json"])
    assert json.loads(capsys.readouterr().out) == []
    assert code == 0
