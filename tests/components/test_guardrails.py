"""The spec refuses what the pack would block, with the pack's numbers and words.

Each case renders the objects the components would create and runs the real rule on them, so
the two cannot drift: what the spec accepts, the pack passes under the same limits; what the
spec refuses, the pack blocks; a team that relaxes one without the other hears it from `check`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from inferstack.components.kubernetes.bindings import KubernetesBindings
from inferstack.components.kubernetes.options import KubernetesOptions, QueueBinding
from inferstack.components.kubernetes.scaling import scaled_object
from inferstack.components.kubernetes.workloads import deployment
from inferstack.components.planning.plan import plan_service
from inferstack.components.planning.spec import parse_spec
from inferstack.contract import resource_types
from inferstack.errors import SpecError
from inferstack.policies.resources import Resource
from inferstack.policies.rules import bounded_gpu_capacity, queue_delay_within_budget
from tests.components.factories import make_profile, spec_data
from tests.policies.builders import resource

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
OPTIONS = KubernetesOptions(queue=QueueBinding(aws_region="us-east-1", results_uri="file:///r"))


def _rendered(data: dict[str, Any]) -> list[Resource]:
    plan = plan_service(parse_spec(data), make_profile(), now=NOW)
    bindings = KubernetesBindings.from_options(OPTIONS)
    realtime = plan.pool("realtime")
    workload = deployment(plan.spec, plan.sizing, realtime, OPTIONS, bindings)
    scaler = scaled_object(plan.spec, plan.sizing, realtime, OPTIONS, bindings)
    return [
        resource(resource_types.DEPLOYMENT, "rt", workload),
        resource(resource_types.SCALED_OBJECT, "rt-scaler", scaler),
    ]


def _pack(resources: list[Resource], config: dict[str, Any]) -> list[str]:
    messages = [
        message for item in resources for message in queue_delay_within_budget.check(item, config)
    ]
    findings = bounded_gpu_capacity.check(resources, config)
    return messages + [finding.message for finding in findings]


def _refusal(data: dict[str, Any]) -> str:
    with pytest.raises(SpecError) as caught:
        plan_service(parse_spec(data), make_profile(), now=NOW)
    (problem,) = caught.value.problems
    return problem.message


# A 50 ms budget and the pack's default guardrails: the factory's 5 ms wait is 10% of it.
BASE = {"latency_budget_ms": 50, "guardrails": {}}
QUEUE_DELAY = {**BASE, "batching__max_queue_delay_ms": 15}
"""The issue's case: 15 ms of batching wait on a 50 ms budget, 30% against the default 20%."""
REPLICAS = {**BASE, "realtime__scaling__max_replicas": 100}
DERIVED_REPLICAS = {**BASE, "traffic__peak_rps": 400_000, "traffic__spikes": []}
"""No explicit max: 400k rps at the sized rate derives more than 64 replicas."""
CASES = [
    pytest.param(
        QUEUE_DELAY,
        {"max_queue_delay_share": 0.3},
        {"maxQueueDelayShare": 0.3},
        "a 15 ms batching wait, more than 20% of the 50 ms p99 budget (10 ms)",
        id="queue-delay-within-budget",
    ),
    pytest.param(
        REPLICAS,
        {"max_gpu_replicas": 100},
        {"maxGpuReplicas": 100},
        "100 GPU replicas, above the ceiling of 64",
        id="bounded-gpu-capacity",
    ),
    pytest.param(
        DERIVED_REPLICAS,
        {"max_gpu_replicas": 200},
        {"maxGpuReplicas": 200},
        "GPU replicas, above the ceiling of 64",
        id="bounded-gpu-capacity-derived",
    ),
]


@pytest.mark.parametrize(("changes", "relaxed_spec", "relaxed_pack", "words"), CASES)
def test_spec_and_pack_agree(
    changes: dict[str, Any],
    relaxed_spec: dict[str, Any],
    relaxed_pack: dict[str, Any],
    words: str,
) -> None:
    # The pack's own words reach the user from the spec, before any resource exists.
    refusal = _refusal(spec_data(**changes))
    assert words in refusal
    assert "guardrails." in refusal  # names the one explicit field that goes past it

    # Relaxed on both sides: the spec plans, and the rendered objects pass the relaxed pack.
    resources = _rendered(spec_data(**{**changes, "guardrails": relaxed_spec}))
    assert _pack(resources, relaxed_pack) == []

    # Relaxed in the spec only: `check` still blocks, with the same words.
    blocked = _pack(resources, {})
    assert blocked
    assert any(words.split(",")[-1].strip() in message for message in blocked), blocked


def test_the_defaults_of_both_sides_pass_a_spec_within_them() -> None:
    resources = _rendered(spec_data())  # the factory declares share 0.25 for its 5/20 ms
    assert _pack(resources, {"maxQueueDelayShare": 0.25}) == []
