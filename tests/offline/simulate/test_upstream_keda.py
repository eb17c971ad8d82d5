"""KEDA's own unit tests, turned into tests of the simulator's model of KEDA.

Each test cites the upstream test it transcribes, from kedacore/keda at commit 8b4f083ca (after
v2.18.0). Upstream evaluates the cron tests at `time.Now()` and branches on the weekday or hour;
here each branch is a fixed instant. Only what the simulator models is transcribed: the cron
scaler's activity and metric, and the scale executor's 0 <-> 1 and minimum cases (not idle
replicas, fallback, pause annotations or HPA health).
"""

from __future__ import annotations

from datetime import UTC, datetime

from inferstack.offline.simulate.autoscaler import (
    CRON_METRIC_OUTSIDE_WINDOW,
    DEFAULT_BEHAVIOR,
    KEDA_VERSION,
    CronSchedule,
    CronTrigger,
    KedaScaler,
    ScaledObjectParams,
)

THURSDAY = datetime(2026, 1, 8, 12, 0, tzinfo=UTC)
FRIDAY = datetime(2026, 1, 9, 12, 0, tzinfo=UTC)

# pkg/scalers/cron_scaler_test.go, validCronMetadata and validCronMetadata2.
THURSDAYS = CronTrigger("s0-cron", "Etc/UTC", "0 0 * * Thu", "59 23 * * Thu", 10)
EVEN_HOURS = CronTrigger("s1-cron", "Etc/UTC", "0 */2 * * *", "0 1-23/2 * * *", 10)


def test_cron_metric_outside_a_window_is_zero_as_in_keda_2_18():
    # kedacore/keda#6888 (commit c2f562f, in v2.18.0), "cron_scaler returns zero metric value by
    # default": `metricValue := float64(0)` where it was 1. TestGetMetrics expects 0 off Thursday.
    assert KEDA_VERSION == "2.18"
    assert CRON_METRIC_OUTSIDE_WINDOW == 0
    assert THURSDAYS.metric(FRIDAY) == 0
    schedule = CronSchedule(THURSDAYS, datetime(2026, 1, 5, tzinfo=UTC), 7 * 86400)
    assert schedule.metric((FRIDAY - schedule.begin).total_seconds()) == 0


def test_keda_cron_is_active_and_reports_desired_replicas_on_thursday():
    # cron_scaler_test.go TestIsActive and TestGetMetrics: active and 10 on a Thursday only.
    assert THURSDAYS.is_active(THURSDAY)
    assert THURSDAYS.metric(THURSDAY) == 10
    assert not THURSDAYS.is_active(FRIDAY)


def test_keda_cron_range_is_active_in_even_hours():
    # cron_scaler_test.go TestIsActiveRange and TestGetMetricsRange: "0 */2 * * *" to
    # "0 1-23/2 * * *": active with metric 10 in even hours, inactive with metric 0 in odd ones.
    for hour in range(24):
        when = datetime(2026, 1, 8, hour, 30, tzinfo=UTC)
        assert EVEN_HOURS.is_active(when) == (hour % 2 == 0), hour
        assert EVEN_HOURS.metric(when) == (10 if hour % 2 == 0 else 0), hour


def _params(minimum: int) -> ScaledObjectParams:
    return ScaledObjectParams(30, 300, minimum, 100, DEFAULT_BEHAVIOR, 1.0, 0.0)


def test_keda_scales_to_min_replicas_when_not_active():
    # pkg/scaling/executor/scale_scaledobjects_test.go TestScaleToMinReplicasWhenNotActive:
    # minReplicaCount 0, 10 replicas, no trigger active (and no recent activity): 0.
    keda = KedaScaler(_params(0), [])
    assert keda.poll(1000.0, 10, demand=0.0, held=0) == 0


def test_keda_scales_to_min_replicas_from_a_lower_count():
    # TestScaleToMinReplicasFromLowerInitialReplicaCount: minReplicaCount 5, 1 replica, not
    # active: KEDA itself sets 5 (it does not wait for the HPA).
    keda = KedaScaler(_params(5), [])
    assert keda.poll(1000.0, 1, demand=0.0, held=0) == 5


def test_keda_scales_from_zero_to_one_when_active():
    # TestScaleFromMinReplicasWhenActive: minReplicaCount 0, 0 replicas, a trigger active: 1.
    keda = KedaScaler(_params(0), [])
    assert keda.poll(1000.0, 0, demand=5.0, held=0) == 1
    # scaleFromZeroOrIdle: to minReplicaCount when it is above 1.
    assert KedaScaler(_params(3), []).poll(1000.0, 0, demand=5.0, held=0) == 3


def test_keda_keeps_the_pool_through_the_cooldown():
    # scale_scaledobjects.go scaleToZeroOrIdle: to zero only once LastActiveTime + cooldown has
    # passed; until then "ScalerCooldown" and no change.
    keda = KedaScaler(_params(0), [])
    assert keda.poll(0.0, 2, demand=5.0, held=0) == 2
    assert keda.poll(299.0, 2, demand=0.0, held=0) == 2
    assert keda.poll(301.0, 2, demand=0.0, held=0) == 0
