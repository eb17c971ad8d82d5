"""The Horizontal Pod Autoscaler's own unit tests, turned into tests of the simulator's HPA.

Sources, kubernetes/kubernetes `pkg/controller/podautoscaler/`:
- `replica_calculator_test.go` (commit 0006726): the external per-pod metric cases
  (`externalPerPodMetric`, the `AverageValue` path KEDA registers), quantities in milli-units as
  upstream writes them; the two overflow cases are from its later version that caps a proposal
  at int32 (`GetExternalPerPodMetricReplicas` with `Tolerances`);
- `horizontal_test.go` (commit 003e862): the rows of `TestScalingWithRules`
  (`convertDesiredReplicasWithBehaviorRate`: policies, limits, previous scale events) and of
  `TestNormalizeDesiredReplicasWithBehaviors` (`stabilizeRecommendationWithBehaviors`: the
  stabilization windows).

Upstream calls those functions with a "prenormalized" desired count; here the same count is
the proposal of an external per-pod metric (`usage = desired x target`, outside the tolerance),
through `HorizontalPodAutoscaler.sync`, so each row also checks that the simulator's controller
chains proposal, stabilization and rate limits as upstream does. Previous scale events and
recommendations are set as upstream's tests set them (`generateEventsUniformDistribution`:
events spread over the last 120 s, at the centre of equal segments).
"""

from __future__ import annotations

from typing import NamedTuple

import pytest

from inferstack.offline.simulate.autoscaler import (
    DEFAULT_BEHAVIOR,
    MAX_INT32,
    Behavior,
    HorizontalPodAutoscaler,
    ScalingPolicy,
    ScalingRules,
    external_average_value_replicas,
)

NOW = 10_000.0
MAX_INT64 = 2**63 - 1


# replica_calculator_test.go --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("upstream", "current", "usage_milli", "target_milli", "expected"),
    [
        ("TestReplicaCalcScaleUpPerPodCMExternal", 3, 8600, 2150, 4),
        ("TestReplicaCalcScaleDownPerPodCMExternal", 5, 8600, 2867, 3),
        ("TestReplicaCalcTolerancePerPodCMExternal", 3, 8600, 2900, 3),
        ("TestExternalPerPodMetricReplicaOverflow", 1, MAX_INT64, 1, MAX_INT32),
        ("TestExternalPerPodMetricUsageOverflow", 1, MAX_INT64, MAX_INT64, 1),
    ],
)
def test_replica_calculator_external_per_pod(
    upstream, current, usage_milli, target_milli, expected
):
    usage, target = usage_milli / 1000, target_milli / 1000
    assert external_average_value_replicas(current, usage, target) == expected, upstream


# horizontal_test.go ----------------------------------------------------------------------------


def rules(
    pods: int, pods_period: int, percent: int, percent_period: int, window: int
) -> ScalingRules:
    """`generateScalingRules`: a Pods and a Percent policy (when non-zero), selectPolicy Max."""
    policies = []
    if pods:
        policies.append(ScalingPolicy("Pods", pods, pods_period))
    if percent:
        policies.append(ScalingPolicy("Percent", percent, percent_period))
    return ScalingRules(window, "Max", tuple(policies))


def uniform(changes: tuple[int, ...], period: int = 120) -> list[tuple[float, int]]:
    """`generateEventsUniformDistribution`: (seconds before now, change) per event."""
    segment = period / len(changes)
    return [
        (period - segment * (index + 1) + segment / 2, change)
        for index, change in enumerate(changes)
    ]


class Row(NamedTuple):
    name: str
    current: int
    desired: int
    minimum: int
    maximum: int
    expected: int
    up: ScalingRules | None = None
    down: ScalingRules | None = None
    up_events: tuple[int, ...] = ()
    down_events: tuple[int, ...] = ()


SCALING_WITH_RULES = [
    Row("prenormalized desired replicas within range", 5, 7, 3, 8, 7),
    Row("prenormalized desired replicas < minReplicas", 3, 1, 2, 8, 2),
    Row("prenormalized desired replicas within range when minReplicas is 0", 1, 0, 0, 10, 0),
    Row("maxReplicas is the limit because maxReplicas < scaleUpLimit", 20, 1000, 1, 10, 10),
    Row("desired replica count is more than the maximum replica count", 100, 1000, 100, 150, 150),
    Row(
        "scaleUpLimit is the limit because scaleUpLimit < maxReplicas with user policies",
        3,
        1000,
        1,
        2000,
        4,
        up=rules(0, 0, 1, 60, 0),
    ),
    Row("scaleUp with default behavior", 10, 50, 1, 1000, 20),
    Row(
        "scaleUp with pods policy larger than percent policy",
        10,
        500,
        1,
        1000,
        110,
        up=rules(100, 60, 100, 60, 0),
    ),
    Row(
        "scaleUp with percent policy larger than pods policy",
        10,
        500,
        1,
        1000,
        20,
        up=rules(2, 60, 100, 60, 0),
    ),
    Row(
        "scaleUp with spec MaxReplicas limitation with large pod policy",
        10,
        50,
        1,
        1000,
        50,
        up=rules(100, 60, 0, 0, 0),
    ),
    Row(
        "scaleUp with spec MaxReplicas limitation with large percent policy",
        10,
        50,
        1,
        1000,
        50,
        up=rules(10000, 60, 0, 0, 0),
    ),
    Row("scaleUp with pod policy limitation", 10, 50, 1, 1000, 40, up=rules(30, 60, 0, 0, 0)),
    Row("scaleUp with percent policy limitation", 10, 50, 1, 1000, 30, up=rules(0, 0, 200, 60, 0)),
    Row(
        "scaleDown with percent policy larger than pod policy",
        100,
        2,
        1,
        1000,
        80,
        down=rules(20, 60, 1, 60, 300),
    ),
    Row(
        "scaleDown with pod policy larger than percent policy",
        100,
        2,
        1,
        1000,
        98,
        down=rules(2, 60, 1, 60, 300),
    ),
    Row(
        "scaleDown with spec MinReplicas=nil limitation with large pod policy",
        10,
        0,
        1,
        1000,
        1,
        down=rules(100, 60, 0, 0, 300),
    ),
    Row(
        "scaleDown with spec MinReplicas limitation with large percent policy",
        10,
        2,
        5,
        1000,
        5,
        down=rules(0, 0, 100, 60, 300),
    ),
    Row("scaleDown with pod policy limitation", 10, 2, 1, 1000, 5, down=rules(5, 60, 0, 0, 300)),
    Row(
        "scaleDown with percent policy limitation",
        10,
        5,
        1,
        1000,
        5,
        down=rules(0, 0, 50, 60, 300),
    ),
    Row(
        "scaleUp with spec MaxReplicas limitation with large pod policy and events",
        100,
        500,
        1,
        200,
        200,
        up=rules(300, 60, 0, 0, 0),
        up_events=(1, 5, 9),
    ),
    Row(
        "scaleUp with spec MaxReplicas limitation with large percent policy and events",
        100,
        500,
        1,
        200,
        200,
        up=rules(0, 0, 10000, 60, 0),
        up_events=(1, 5, 9),
    ),
    Row(
        "scaleUp with currentReplicas limitation with rate.PeriodSeconds with a lot of recent "
        "scale up events",
        100,
        500,
        1,
        1000,
        100,
        up=rules(5, 120, 0, 0, 0),
        up_events=(1, 5, 9),
    ),
    Row(
        "scaleUp with pod policy and previous scale up events",
        100,
        500,
        1,
        1000,
        235,
        up=rules(150, 120, 0, 0, 0),
        up_events=(1, 5, 9),
    ),
    Row(
        "scaleUp with percent policy and previous scale up events",
        100,
        500,
        1,
        1000,
        255,
        up=rules(0, 0, 200, 120, 0),
        up_events=(1, 5, 9),
    ),
    Row(
        "scaleUp with percent policy and previous scale up and down events",
        6,
        24,
        1,
        1000,
        16,
        up=rules(0, 0, 300, 300, 0),
        up_events=(4,),
        down_events=(2,),
    ),
    Row(
        "scaleDown with default policy and previous events",
        10,
        5,
        1,
        1000,
        5,
        down_events=(1, 5, 9),
    ),
    Row(
        "scaleDown with spec MinReplicas=nil limitation with large pod policy and previous events",
        100,
        0,
        1,
        1000,
        1,
        down=rules(115, 120, 0, 0, 300),
        down_events=(1, 5, 9),
    ),
    Row(
        "scaleDown with spec MinReplicas limitation with large pod policy and previous events",
        100,
        0,
        5,
        1000,
        5,
        down=rules(130, 120, 0, 0, 300),
        down_events=(1, 5, 9),
    ),
    Row(
        "scaleDown with spec MinReplicas limitation with large percent policy and previous events",
        100,
        2,
        5,
        1000,
        5,
        down=rules(0, 0, 100, 120, 300),
        down_events=(1, 5, 9),
    ),
    Row(
        "scaleDown with pod policy limitation and previous events",
        100,
        2,
        1,
        1000,
        100,
        down=rules(5, 120, 0, 0, 300),
        down_events=(1, 5, 9),
    ),
    Row(
        "scaleDown with percent policy limitation and previous events",
        100,
        0,
        1,
        1000,
        56,
        down=rules(0, 0, 50, 120, 300),
        down_events=(2, 4, 6),
    ),
    Row(
        "scaleDown with percent policy and previous scale up and down events",
        10,
        1,
        1,
        1000,
        6,
        down=rules(0, 0, 50, 180, 0),
        up_events=(2,),
        down_events=(4,),
    ),
    Row(
        "scaleDown with previous events preventing further scale down",
        100,
        0,
        1,
        1000,
        100,
        down=rules(0, 0, 10, 120, 300),
        down_events=(10, 10, 10),
    ),
    Row(
        "scaleDown with with previous events still allowing more scale down",
        10,
        5,
        1,
        1000,
        5,
        down=rules(0, 0, 1000, 120, 300),
        down_events=(10, 10, 10),
    ),
    Row(
        "check 'outdated' flag for events for one behavior for up",
        100,
        200,
        1,
        1000,
        200,
        up=rules(1000, 60, 0, 0, 0),
        up_events=(8, 12, 9, 11),
    ),
    Row(
        "check that events were not marked 'outdated' for two different policies in the "
        "behavior for up",
        100,
        200,
        1,
        1000,
        200,
        up=rules(1000, 120, 100, 60, 0),
        up_events=(8, 12, 9, 11),
    ),
    Row(
        "check that events were marked 'outdated' for two different policies in the behavior "
        "for up",
        100,
        200,
        1,
        1000,
        200,
        up=rules(1000, 30, 100, 60, 0),
        up_events=(8, 12, 9, 11),
    ),
    Row(
        "check 'outdated' flag for events for one behavior for down",
        100,
        5,
        1,
        1000,
        5,
        down=rules(1000, 60, 0, 0, 300),
        down_events=(8, 12, 9, 11),
    ),
    Row(
        "check that events were not marked 'outdated' for two different policies in the "
        "behavior for down",
        100,
        5,
        1,
        1000,
        5,
        down=rules(1000, 120, 100, 60, 300),
        down_events=(8, 12, 9, 11),
    ),
    Row(
        "check that events were marked 'outdated' for two different policies in the behavior "
        "for down",
        100,
        5,
        1,
        1000,
        5,
        down=rules(1000, 30, 100, 60, 300),
        down_events=(8, 12, 9, 11),
    ),
]
"""Every row of `TestScalingWithRules` but the one upstream skips (`testThis: true`)."""


@pytest.mark.parametrize("row", SCALING_WITH_RULES, ids=lambda row: row.name)
def test_scaling_with_rules(row: Row):
    behavior = Behavior(
        row.up or DEFAULT_BEHAVIOR.scale_up, row.down or DEFAULT_BEHAVIOR.scale_down
    )
    hpa = HorizontalPodAutoscaler(row.minimum, row.maximum, behavior)
    for before, change in uniform(row.up_events) if row.up_events else []:
        hpa.remember_scale(NOW - before, change)
    for before, change in uniform(row.down_events) if row.down_events else []:
        hpa.remember_scale(NOW - before, -change)
    assert hpa.sync(NOW, row.current, [(float(row.desired), 1.0)]) == row.expected


class Stabilization(NamedTuple):
    name: str
    recommendations: tuple[tuple[int, float], ...]
    """(replicas, minutes before now)"""
    current: int
    desired: int
    expected: int
    up_window: int = 0
    down_window: int = 0


STABILIZATION = [
    Stabilization("simple scale down stabilization", ((4, 2), (5, 1)), 100, 3, 5, down_window=180),
    Stabilization("simple scale up stabilization", ((4, 2), (5, 1)), 1, 7, 4, up_window=300),
    Stabilization("no scale down stabilization", ((1, 2), (2, 1)), 100, 3, 3, up_window=300),
    Stabilization("no scale up stabilization", ((4, 2), (5, 1)), 1, 3, 3, down_window=300),
    Stabilization(
        "no scale down stabilization, reuse recommendation element", ((10, 10), (9, 9)), 100, 3, 3
    ),
    Stabilization(
        "no scale up stabilization, reuse recommendation element", ((10, 10), (9, 9)), 1, 100, 100
    ),
    Stabilization(
        "scale down stabilization, reuse one of obsolete recommendation element",
        ((10, 10), (4, 1), (5, 2), (9, 9)),
        100,
        3,
        5,
        down_window=180,
    ),
    Stabilization(
        "scale up stabilization, reuse one of obsolete recommendation element",
        ((10, 100), (6, 1), (5, 2), (9, 3)),
        1,
        100,
        5,
        up_window=300,
    ),
    Stabilization(
        "scale up and down stabilization, do not scale up when prenormalized rec goes down",
        ((2, 100), (3, 3)),
        2,
        1,
        2,
        up_window=300,
        down_window=300,
    ),
    Stabilization(
        "scale up and down stabilization, do not scale down when prenormalized rec goes up",
        ((2, 100), (1, 3)),
        2,
        3,
        2,
        up_window=300,
        down_window=300,
    ),
]
"""Rows of `TestNormalizeDesiredReplicasWithBehaviors` (windows unset upstream are 0 there)."""

_UNLIMITED = Behavior(
    ScalingRules(0, "Max", (ScalingPolicy("Pods", 10_000, 15),)),
    ScalingRules(0, "Max", (ScalingPolicy("Percent", 100, 15),)),
)
"""Policies that never bind, so a sync returns the stabilized count alone."""


@pytest.mark.parametrize("row", STABILIZATION, ids=lambda row: row.name)
def test_normalize_desired_replicas_with_behaviors(row: Stabilization):
    behavior = Behavior(
        ScalingRules(row.up_window, "Max", _UNLIMITED.scale_up.policies),
        ScalingRules(row.down_window, "Max", _UNLIMITED.scale_down.policies),
    )
    hpa = HorizontalPodAutoscaler(1, 1000, behavior)
    for replicas, minutes in row.recommendations:
        hpa.remember(NOW - 60 * minutes, replicas)
    assert hpa.sync(NOW, row.current, [(float(row.desired), 1.0)]) == row.expected
