"""The realtime pool's scale-up behaviour follows the cold start and the declared ramp.

Hand-computed on the factory spec: baseline 5000, peak 20000 rps, 2240 rps per replica (70% of
batch-32 throughput), floor 3, peak 9 replicas, cold start 180 s; the pool reacts in 15 s scrape +
15 s sync + the cold start.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from inferstack.components.kubernetes.bindings import KubernetesBindings
from inferstack.components.kubernetes.options import KubernetesOptions, QueueBinding
from inferstack.components.kubernetes.scaling import BATCH_SCALE_UP, scaled_object
from inferstack.components.planning.pools import batch_pool, realtime_pool
from inferstack.components.planning.sizing import RealtimeSizing, Sizing, size_service
from inferstack.errors import SpecError
from tests.components.factories import make_profile, make_spec

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
OPTIONS = KubernetesOptions(queue=QueueBinding(aws_region="us-east-1", results_uri="file:///r"))


def _sized(profile_changes: dict[str, float] | None = None, **changes: object) -> Sizing:
    return size_service(make_spec(**changes), make_profile(**(profile_changes or {})), now=NOW)


def _realtime(sizing: Sizing) -> RealtimeSizing:
    assert sizing.realtime is not None
    return sizing.realtime


def test_without_a_ramp_one_sync_may_add_every_replica_up_to_the_peak() -> None:
    up = _realtime(_sized()).scale_up
    assert up.value.pods == 6  # peak 9 - floor 3
    assert up.value.percent == 100
    assert up.value.stabilization_seconds == 0
    assert up.value.period_seconds == 15
    assert up.value.polling_seconds == 9  # 180 s / 20
    assert "a step from baseline to peak" in up.reason
    assert "floor (3) and the peak (9): 6 pods" in up.reason


def test_a_slow_ramp_needs_one_pod_per_sync_and_no_warning() -> None:
    # 15000 rps in 30 min = 8.3 rps/s; x 210 s = 1750 rps = 0.78 replicas -> 1 pod.
    sizing = _sized(traffic__ramp_minutes=30)
    up = _realtime(sizing).scale_up
    assert up.value.pods == 1
    assert "(8.3 rps/s) adds 1,750 rps while the pool reacts (210 s" in up.reason
    assert not any("ramp_minutes" in w for w in sizing.warnings)


def test_a_fast_ramp_outruns_the_floors_headroom_and_says_the_floor_that_holds() -> None:
    # 15000 rps in 5 min = 50 rps/s; x 210 s = 10500 rps = 4.7 replicas -> 5 pods. Headroom of
    # 3 replicas: 3 x 2240 x (1/0.7 - 1) = 2880 rps; the floor that holds: 10500 / 960 -> 11.
    sizing = _sized(traffic__ramp_minutes=5)
    assert _realtime(sizing).scale_up.value.pods == 5
    (warning,) = [w for w in sizing.warnings if "ramp_minutes" in w]
    assert "adds 10,500 rps during the 210 s" in warning
    assert "headroom of 3 replica(s) (2,880 rps)" in warning
    assert "min_replicas to 11" in warning


def test_a_longer_cold_start_needs_more_pods_per_sync_and_polls_less_often() -> None:
    # Node provision 900 s: cold start 990 s, reaction 1020 s: 8.33 x 1020 = 8500 rps = 3.8 -> 4.
    sizing = _sized({"node_provision": 900}, traffic__ramp_minutes=30)
    up = _realtime(sizing).scale_up.value
    assert up.pods == 4
    assert up.polling_seconds == 30  # 990 / 20 = 49.5, capped at 30


def test_ramp_must_be_positive() -> None:
    with pytest.raises(SpecError) as caught:
        make_spec(traffic__ramp_minutes=0)
    assert caught.value.problems[0].path == "traffic.ramp_minutes"


def test_the_scaled_object_renders_the_derived_behaviour() -> None:
    spec = make_spec(traffic__ramp_minutes=5)
    sizing = size_service(spec, make_profile(), now=NOW)
    bindings = KubernetesBindings.from_options(OPTIONS)
    realtime, batch_of = realtime_pool(spec, sizing), batch_pool(spec, sizing)
    assert realtime is not None
    assert batch_of is not None
    scaled = scaled_object(spec, sizing, realtime, OPTIONS, bindings)["spec"]
    assert scaled["pollingInterval"] == 9
    up = scaled["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleUp"]
    assert up == {
        "stabilizationWindowSeconds": 0,
        "selectPolicy": "Max",
        "policies": [
            {"type": "Percent", "value": 100, "periodSeconds": 15},
            {"type": "Pods", "value": 5, "periodSeconds": 15},
        ],
    }
    batch = scaled_object(spec, sizing, batch_of, OPTIONS, bindings)["spec"]
    assert batch["pollingInterval"] == BATCH_SCALE_UP.polling_seconds
    batch_up = batch["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleUp"]
    assert batch_up["policies"][1] == {"type": "Pods", "value": 4, "periodSeconds": 15}
