"""The scale-up policy, the pre-warm lead and the spot share, set in the stack file instead of
derived: refused with the field and the fix when wrong, said as set in the preview's reason,
rendered into the ScaledObject (validated against the KEDA CRD) and into the pools' placement.

Hand-computed on the factory spec: floor 3, peak 9 replicas, derived scale-up 6 pods per 15 s,
cold start 180 s (lead 3 min before the 09:00 New York spike).
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest

from inferstack.components.aws import karpenter
from inferstack.components.kubernetes.bindings import KubernetesBindings
from inferstack.components.kubernetes.options import KubernetesOptions, QueueBinding
from inferstack.components.kubernetes.scaling import scaled_object
from inferstack.components.kubernetes.workloads import deployment
from inferstack.components.planning.plan import plan_service
from inferstack.components.planning.pools import batch_pool, realtime_pool
from inferstack.components.planning.sizing import Sizing, size_service
from inferstack.components.planning.spec import parse_spec
from inferstack.contract.labels import SERVICE_LABEL, TIER_BATCH, TIER_LABEL
from inferstack.errors import SpecError
from tests.components import schemas
from tests.components.factories import make_profile, make_spec, spec_data

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
OPTIONS = KubernetesOptions(queue=QueueBinding(aws_region="us-east-1", results_uri="file:///r"))
PREFIX = "inferstack:service"


def _sized(**changes: object) -> Sizing:
    return size_service(make_spec(**changes), make_profile(), now=NOW)


def _problems(**changes: object) -> dict[str, str]:
    with pytest.raises(SpecError) as caught:
        parse_spec(spec_data(**changes), prefix=PREFIX)
    return {problem.path: problem.message for problem in caught.value.problems}


def test_unset_fields_leave_every_derived_value_as_it_was() -> None:
    sizing = _sized()
    assert sizing.realtime is not None
    assert sizing.batch is not None
    assert sizing.realtime.scale_up.value.pods == 6
    assert "set in the stack file" not in sizing.realtime.scale_up.reason
    assert sizing.realtime.prewarm[0].lead_minutes == 3
    assert sizing.batch.spot_share.value == 1.0
    assert sizing.batch.spot_share.reason == "capacity.spot: every replica prefers spot"


@pytest.mark.parametrize(
    ("changes", "path", "fragment"),
    [
        (
            {"realtime__scaling__scale_up": {"pods": 0}},
            "realtime.scaling.scale_up.pods",
            "greater than or equal to 1",
        ),
        (
            {"realtime__scaling__scale_up": {"period_seconds": 3600}},
            "realtime.scaling.scale_up.period_seconds",
            "less than or equal to 1800",
        ),
        (
            {"realtime__scaling__scale_up": {"pod": 4}},
            "realtime.scaling.scale_up.pod",
            "unknown field",
        ),
        (
            {"realtime__prewarm_lead_minutes": -1},
            "realtime.prewarm_lead_minutes",
            "greater than or equal to 0",
        ),
        (
            {"realtime__prewarm": "off", "realtime__prewarm_lead_minutes": 5},
            "realtime.prewarm_lead_minutes",
            "prewarm is off, so no floor is raised; remove prewarm_lead_minutes or set prewarm",
        ),
        (
            {"traffic__spikes": [], "realtime__prewarm_lead_minutes": 5},
            "realtime.prewarm_lead_minutes",
            "traffic declares no spikes to pre-warm for; remove it",
        ),
        (
            {"batch__capacity__spot_share": 1.5},
            "batch.capacity.spot_share",
            "less than or equal to 1",
        ),
        (
            {"batch__capacity": {"spot": False, "spot_share": 0.5}},
            "batch.capacity.spot_share",
            "spot is false; remove spot_share or set spot: true",
        ),
    ],
)
def test_a_bad_value_names_its_field_and_the_fix(
    changes: dict[str, object], path: str, fragment: str
) -> None:
    problems = _problems(**changes)
    assert f"{PREFIX}.{path}" in problems, problems
    assert fragment in problems[f"{PREFIX}.{path}"]


def test_a_set_scale_up_policy_replaces_only_its_fields_and_says_so() -> None:
    sizing = _sized(realtime__scaling__scale_up={"pods": 2, "stabilization_seconds": 30})
    assert sizing.realtime is not None
    up = sizing.realtime.scale_up
    assert (up.value.pods, up.value.stabilization_seconds) == (2, 30)
    assert (up.value.percent, up.value.period_seconds) == (100, 15)  # still derived
    assert up.reason.startswith(
        "realtime.scaling.scale_up set in the stack file (pods 2, stabilization_seconds 30; "
        "derived: pods 6, stabilization_seconds 0)"
    )


def test_a_set_lead_moves_the_cron_start_and_a_short_one_is_warned() -> None:
    sizing = _sized(realtime__prewarm_lead_minutes=1)
    assert sizing.realtime is not None
    (window,) = sizing.realtime.prewarm
    assert (window.lead_minutes, window.start_cron) == (1, "59 8 * * 1-5")
    assert "realtime.prewarm_lead_minutes set in the stack file; derived would be 3 min" in (
        window.reason
    )
    (warning,) = [w for w in sizing.warnings if "prewarm_lead_minutes 1" in w]
    assert "shorter than the cold start (180 s)" in warning
    assert "raise it to 3 or unset it" in warning


def test_a_set_spot_share_is_said_and_zero_runs_on_demand_only() -> None:
    half = _sized(batch__capacity__spot_share=0.5)
    assert half.batch is not None
    assert half.batch.spot_share.value == 0.5
    assert half.batch.spot_share.reason.startswith(
        "batch.capacity.spot_share set in the stack file (derived: 1)"
    )
    spec = make_spec(batch__capacity__spot_share=0)
    pool = batch_pool(spec, size_service(spec, make_profile(), now=NOW))
    assert pool is not None
    assert pool.placement == "on_demand"


def test_the_set_policy_and_lead_are_rendered_and_the_scaled_object_validates() -> None:
    schemas.require_schema_dir()
    spec = make_spec(
        realtime__scaling__scale_up={"pods": 3, "percent": 50, "period_seconds": 30},
        realtime__prewarm_lead_minutes=10,
    )
    sizing = size_service(spec, make_profile(), now=NOW)
    pool = realtime_pool(spec, sizing)
    assert pool is not None
    manifest = scaled_object(spec, sizing, pool, OPTIONS, KubernetesBindings.from_options(OPTIONS))
    schemas.validate_keda(manifest)
    up = manifest["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleUp"]
    assert up == {
        "stabilizationWindowSeconds": 0,
        "selectPolicy": "Max",
        "policies": [
            {"type": "Percent", "value": 50, "periodSeconds": 30},
            {"type": "Pods", "value": 3, "periodSeconds": 30},
        ],
    }
    (cron,) = [t for t in manifest["spec"]["triggers"] if t["type"] == "cron"]
    assert cron["metadata"]["start"] == "50 8 * * 1-5"
    assert cron["metadata"]["end"] == "0 11 * * 1-5"


def _aws_split(share: float) -> tuple[Any, list[tuple[str, dict[str, Any]]]]:
    plan = plan_service(
        make_spec(batch__capacity__spot_share=share), make_profile(), target="aws", now=NOW
    )
    return plan, karpenter.node_pools(plan)


def test_a_split_share_on_aws_is_two_node_pools_and_a_hard_even_spread() -> None:
    schemas.require_schema_dir()
    plan, pools = _aws_split(0.75)
    assert [role for role, _ in pools] == ["realtime", "batch", "batch-on-demand"]
    by_role = dict(pools)
    for manifest in by_role.values():
        schemas.validate(manifest)

    def requirement(manifest: dict[str, Any], key: str) -> list[str]:
        found = manifest["spec"]["template"]["spec"]["requirements"]
        return next(r["values"] for r in found if r["key"] == key)

    spot, on_demand = by_role["batch"], by_role["batch-on-demand"]
    assert on_demand["metadata"]["name"] == "embedder-batch-on-demand"
    assert requirement(spot, karpenter.CAPACITY_TYPE_LABEL) == ["spot", "on-demand"]
    assert requirement(on_demand, karpenter.CAPACITY_TYPE_LABEL) == ["on-demand"]
    # 3 of 4 values on spot nodes, 1 on on-demand ones: pods spread evenly over the 4.
    assert requirement(spot, karpenter.SPREAD_LABEL) == ["2", "3", "4"]
    assert requirement(on_demand, karpenter.SPREAD_LABEL) == ["1"]
    assert "realtime" in by_role
    assert karpenter.SPREAD_LABEL not in str(by_role["realtime"])

    bindings = dataclasses.replace(
        KubernetesBindings.from_options(OPTIONS),
        batch_placement=karpenter.placement(plan, "batch"),
    )
    batch = plan.pool("batch")
    pod = deployment(plan.spec, plan.sizing, batch, OPTIONS, bindings)
    schemas.validate(pod)
    template = pod["spec"]["template"]["spec"]
    assert template["nodeSelector"] == {SERVICE_LABEL: "embedder", TIER_LABEL: TIER_BATCH}
    assert template["topologySpreadConstraints"] == [
        {
            "maxSkew": 1,
            "topologyKey": karpenter.SPREAD_LABEL,
            "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": pod["spec"]["selector"]["matchLabels"]},
        }
    ]


@pytest.mark.parametrize("share", [0.0, 1.0])
def test_an_unsplit_share_on_aws_keeps_one_node_pool_per_pool(share: float) -> None:
    plan, pools = _aws_split(share)
    assert [role for role, _ in pools] == ["realtime", "batch"]
    assert karpenter.placement(plan, "batch").spread_label is None


@pytest.mark.parametrize("target", ["kubernetes", "gcp"])
def test_a_split_share_where_nothing_renders_it_is_refused_with_the_fix(target: Any) -> None:
    with pytest.raises(SpecError) as caught:
        plan_service(
            make_spec(batch__capacity__spot_share=0.5), make_profile(), target=target, now=NOW
        )
    (problem,) = caught.value.problems
    assert problem.path == "batch.capacity.spot_share"
    assert "only the aws target renders" in problem.message
    assert "use 0 (on-demand only) or 1 (spot first)" in problem.message
