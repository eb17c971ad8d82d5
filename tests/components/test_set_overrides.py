"""The scale-up policy, the pre-warm lead and the spot share, set in the stack file instead of
derived: refused with the field and the fix when wrong, said as set in the preview's reason,
rendered into the ScaledObject (validated against the KEDA CRD) and into the pools' placement.

Hand-computed on the factory spec: floor 3, peak 9 replicas, derived scale-up 6 pods per 15 s,
cold start 180 s (lead 3 min before the 09:00 New York spike).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from inferstack.components.kubernetes.bindings import KubernetesBindings
from inferstack.components.kubernetes.options import KubernetesOptions, QueueBinding
from inferstack.components.kubernetes.scaling import scaled_object
from inferstack.components.planning.pools import batch_pool, realtime_pool
from inferstack.components.planning.sizing import Sizing, size_service
from inferstack.components.planning.spec import parse_spec
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
