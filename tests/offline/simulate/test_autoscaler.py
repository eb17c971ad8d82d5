"""The HPA and KEDA arithmetic, against the Kubernetes documentation's worked examples."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from inferstack.offline.simulate.autoscaler import (
    DEFAULT_BEHAVIOR,
    Behavior,
    CronSchedule,
    CronTrigger,
    HorizontalPodAutoscaler,
    KedaScaler,
    ScaledObjectParams,
    ScalingPolicy,
    ScalingRules,
    external_average_value_replicas,
    utilisation_ratio_replicas,
)


def test_docs_ratio_examples_double_halve_and_tolerate():
    # "if the current metric value is 200m, and the desired value is 100m, the number of
    # replicas will be doubled ... If the current value is instead 50m, you'll halve".
    assert utilisation_ratio_replicas(4, 200, 100) == 8
    assert utilisation_ratio_replicas(4, 50, 100) == 2
    # Within the 0.1 tolerance nothing happens.
    assert utilisation_ratio_replicas(4, 109, 100) == 4
    # 50 replicas at 90 % against a 75 % target: 60 (the v1.33 tolerance post's example).
    assert utilisation_ratio_replicas(50, 90, 75) == 60


def test_external_average_value_divides_the_total_by_the_target():
    assert external_average_value_replicas(4, usage=100, target=10) == 10
    assert external_average_value_replicas(4, usage=42, target=10) == 4  # ratio 1.05: tolerated
    assert external_average_value_replicas(4, usage=45, target=10) == 5
    assert external_average_value_replicas(0, usage=45, target=10) == 0


def _down_policies_example() -> Behavior:
    # The docs' scaleDown example: 4 pods or 10 % per minute, whichever removes more.
    return Behavior(
        DEFAULT_BEHAVIOR.scale_up,
        ScalingRules(0, "Max", (ScalingPolicy("Pods", 4, 60), ScalingPolicy("Percent", 10, 60))),
    )


def test_docs_scale_down_policy_example_80_72_64():
    hpa = HorizontalPodAutoscaler(1, 100, _down_policies_example())
    low = [(1.0, 1.0)]
    assert hpa.sync(0, 80, low) == 72  # 10 % of 80 = 8 > 4 pods
    assert hpa.sync(15, 72, low) == 72  # the period's budget is spent
    assert hpa.sync(61, 72, low) == 64  # 10 % of 72 = 7.2: the code truncates 64.8 to 64
    # At 40 or fewer pods the Pods policy removes more.
    hpa = HorizontalPodAutoscaler(1, 100, _down_policies_example())
    assert hpa.sync(0, 30, low) == 26


def test_default_scale_up_is_the_larger_of_double_and_plus_four_per_15s():
    hpa = HorizontalPodAutoscaler(1, 100)
    high = [(1000.0, 10.0)]  # wants 100
    assert hpa.sync(0, 1, high) == 5  # max(2, 1 + 4)
    assert hpa.sync(5, 5, high) == 5  # inside the same 15 s period
    assert hpa.sync(16, 5, high) == 10  # max(10, 9)
    assert hpa.sync(32, 10, high) == 20


def test_scale_down_stabilization_keeps_the_highest_recent_recommendation():
    hpa = HorizontalPodAutoscaler(1, 100)  # default: 300 s window, -100 % per 15 s
    assert hpa.sync(0, 10, [(100.0, 10.0)]) == 10
    for t in range(15, 300, 15):
        assert hpa.sync(t, 10, [(20.0, 10.0)]) == 10, t
    assert hpa.sync(315, 10, [(20.0, 10.0)]) == 2


def test_min_and_max_bound_the_result():
    hpa = HorizontalPodAutoscaler(2, 6)
    assert hpa.sync(0, 4, [(1000.0, 1.0)]) == 6
    assert hpa.sync(0, 8, [(1000.0, 1.0)]) == 6
    hpa = HorizontalPodAutoscaler(2, 6)
    assert hpa.sync(0, 1, [(0.0, 1.0)]) == 2


def test_cron_floor_follows_local_time_across_the_dst_change():
    # US clocks go forward on Sunday 2026-03-08: a 08:15 New York pre-warm is 13:15 UTC on
    # Friday and 12:15 UTC on Monday.
    trigger = CronTrigger("prewarm-0", "America/New_York", "15 8 * * 1-5", "0 11 * * 1-5", 6)
    begin = datetime(2026, 3, 6, tzinfo=UTC)
    schedule = CronSchedule(trigger, begin, 4 * 86400)
    friday = (13 * 3600 + 15 * 60, 16 * 3600)
    monday = (3 * 86400 + 12 * 3600 + 15 * 60, 3 * 86400 + 15 * 3600)
    assert friday in schedule.windows
    assert monday in schedule.windows
    assert schedule.metric(friday[0]) == 6
    # Outside a window the metric is 0 since KEDA 2.18 (kedacore/keda#6888), 1 before.
    assert schedule.metric(friday[0] - 1) == 0
    assert schedule.metric(monday[0] - 1) == 0  # 13:15 UTC would be an hour late on Monday
    # KEDA's own rule (next end before next start), evaluated directly, agrees.
    assert trigger.is_active(datetime(2026, 3, 9, 12, 16, tzinfo=UTC))
    assert not trigger.is_active(datetime(2026, 3, 9, 12, 14, tzinfo=UTC))
    assert trigger.is_active(datetime(2026, 3, 6, 13, 16, tzinfo=UTC))


def test_cron_floor_through_the_hpa_respects_the_tolerance():
    params = ScaledObjectParams(
        10,
        300,
        1,
        30,
        DEFAULT_BEHAVIOR,
        32.0,
        0.0,
        crons=(CronTrigger("p", "UTC", "0 9 * * *", "0 10 * * *", 21),),
    )
    begin = datetime(2026, 1, 5, tzinfo=UTC)
    keda = KedaScaler(params, [CronSchedule(params.crons[0], begin, 86400)])
    # 21 against 20 current replicas is a ratio of 1.05: inside the tolerance, no change.
    assert keda.hpa_sync(9 * 3600 + 30, 20, 0.0, 0.0) == 20
    assert keda.hpa_sync(9 * 3600 + 45, 2, 0.0, 0.0) == 6  # floor 21, +4 pods at most
    assert keda.hpa_sync(8 * 3600, 2, 0.0, 0.0) == 2  # outside the window the metric is 0


def _zero_params(**changes) -> ScaledObjectParams:
    base: dict[str, Any] = {
        "polling_seconds": 10,
        "cooldown_seconds": 300,
        "min_replicas": 0,
        "max_replicas": 4,
        "behavior": DEFAULT_BEHAVIOR,
        "demand_threshold": 8.0,
        "activation_threshold": 0.0,
        "http_wake": True,
    }
    base.update(changes)
    return ScaledObjectParams(**base)


def test_keda_wakes_on_held_requests_and_sleeps_after_the_cooldown():
    keda = KedaScaler(_zero_params(), [])
    assert keda.poll(0, 0, demand=0.0, held=0) == 0
    assert keda.poll(10, 0, demand=0.0, held=3) == 1  # the HTTP add-on holds requests
    assert keda.poll(20, 1, demand=2.0, held=0) == 1
    assert keda.poll(310, 1, demand=0.0, held=0) == 1  # 290 s since active
    assert keda.poll(320, 1, demand=0.0, held=0) == 0


def test_keda_never_goes_to_zero_with_a_floor():
    keda = KedaScaler(_zero_params(min_replicas=2, http_wake=False), [])
    assert keda.poll(1000, 2, demand=0.0, held=0) == 2
    assert keda.poll(0, 0, demand=1.0, held=0) == 2
