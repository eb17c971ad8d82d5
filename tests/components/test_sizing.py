"""Sizing against hand-computed cases, and the profile-based refusals."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from inferstack.components.planning.replica_model import steady_state
from inferstack.components.planning.sizing import (
    TARGET_UTILISATION,
    batcher_rules,
    compute_law,
    size_service,
)
from inferstack.errors import SpecError
from tests.components.factories import make_profile, make_spec

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def size(**changes: object):  # type: ignore[no-untyped-def]
    return size_service(make_spec(**changes), make_profile(), now=NOW)


def test_largest_batch_that_fits_the_budget_sets_replica_throughput() -> None:
    # Budget 20 ms, delay 5 ms: batch 32 (p99 14 ms) fits exactly 19 <= 20.
    realtime = size().realtime
    assert realtime is not None
    assert realtime.batch_size.value == 32
    assert realtime.replica_rps.value == pytest.approx(3200 * TARGET_UTILISATION)  # 2240
    assert "fits the 20 ms budget" in realtime.batch_size.reason


def test_min_replicas_from_baseline_hand_computed() -> None:
    # 5000 rps / 2240 rps per replica = 2.23 -> 3 replicas.
    realtime = size().realtime
    assert realtime is not None
    assert realtime.min_replicas.value == 3
    assert "baseline 5000 rps" in realtime.min_replicas.reason
    # 20000 / 2240 = 8.9 -> 9 at peak.
    assert realtime.max_replicas.value == 9


def test_tighter_budget_picks_a_smaller_batch_and_needs_more_replicas() -> None:
    # Budget 15 ms: batch 32 needs 19 ms, batch 8 needs 11 ms -> 2000 x 0.7 = 1400 rps/replica.
    realtime = size(latency_budget_ms=15, guardrails={"max_queue_delay_share": 0.34}).realtime
    assert realtime is not None
    assert realtime.batch_size.value == 8
    assert realtime.min_replicas.value == 4  # 5000 / 1400 = 3.57
    assert realtime.max_replicas.value == 15  # 20000 / 1400 = 14.3


def test_two_gpus_per_replica_double_its_throughput() -> None:
    realtime = size(realtime__gpu__count=2).realtime
    assert realtime is not None
    assert realtime.replica_rps.value == pytest.approx(4480)
    assert realtime.min_replicas.value == 2  # 5000 / 4480


def test_zero_baseline_keeps_one_warm_replica_without_scale_to_zero() -> None:
    realtime = size(traffic__baseline_rps=0, traffic__spikes=[]).realtime
    assert realtime is not None
    assert realtime.min_replicas.value == 1
    assert "baseline is 0 rps" in realtime.min_replicas.reason


def test_zero_baseline_with_scale_to_zero_goes_to_zero() -> None:
    realtime = size(
        traffic__baseline_rps=0,
        realtime__scale_to_zero=True,
        realtime__allow_cold_start_over_budget=True,
    ).realtime
    assert realtime is not None
    assert realtime.min_replicas.value == 0
    # Hold timeout: 1.5 x the full 180 s cold start.
    assert realtime.request_hold_timeout_seconds is not None
    assert realtime.request_hold_timeout_seconds.value == 270


def test_budget_that_cannot_hold_even_batch_one_is_refused() -> None:
    with pytest.raises(SpecError) as caught:
        size(
            latency_budget_ms=7,
            batching__max_queue_delay_ms=5,
            guardrails={"max_queue_delay_share": 0.75},
        )
    (problem,) = caught.value.problems
    assert problem.path == "latency_budget_ms"
    assert "raise the budget" in problem.message


def test_sync_scale_to_zero_with_a_cold_start_over_budget_is_refused_unless_allowed() -> None:
    with pytest.raises(SpecError) as caught:
        size(realtime__scale_to_zero=True)
    (problem,) = caught.value.problems
    assert problem.path == "realtime.scale_to_zero"
    assert "allow_cold_start_over_budget: true" in problem.message


def test_hold_timeout_shorter_than_the_cold_start_is_refused() -> None:
    with pytest.raises(SpecError) as caught:
        size(
            realtime__scale_to_zero=True,
            realtime__allow_cold_start_over_budget=True,
            realtime__request_hold_timeout_s=60,
        )
    (problem,) = caught.value.problems
    assert problem.path == "realtime.request_hold_timeout_s"
    assert "at least 180" in problem.message


def test_targets_per_metric() -> None:
    # Each auto target is what the replica's gauge reads at the sized 2240 rps (70% of batch-32
    # throughput), from the batcher model (preferred sizes 8 and 32, 5 ms delay, one instance):
    # the HPA then holds the pool at the sized load. The old targets (one full batch, 32; Little's
    # law on delay + p50, 33.6) held it at 80-97% of capacity.
    queue = size().realtime
    assert queue is not None
    assert queue.target_per_replica.value == pytest.approx(17.8, abs=0.05)
    assert queue.target_per_replica.reason == (
        "mean queue depth 17.8 at 2,240 rps per replica (70% of batch-32 throughput), "
        "from the batcher model"
    )
    in_flight = size(realtime__scaling__metric="in_flight").realtime
    assert in_flight is not None
    assert in_flight.target_per_replica.value == pytest.approx(31.2, abs=0.05)
    assert "mean in flight 31.2 (waiting + computing) at 2,240 rps" in (
        in_flight.target_per_replica.reason
    )
    rps = size(realtime__scaling__metric="rps").realtime
    assert rps is not None
    assert rps.target_per_replica.value == pytest.approx(2240)
    assert "the sized rate: 2,240 rps per replica" in rps.target_per_replica.reason
    fixed = size(realtime__scaling__target_per_replica=12).realtime
    assert fixed is not None
    assert fixed.target_per_replica.value == 12
    assert fixed.target_per_replica.reason == "set in the spec"


def test_auto_targets_are_the_batcher_models_steady_state_at_the_sized_rate() -> None:
    spec, profile = make_spec(), make_profile()
    state = steady_state(batcher_rules(spec, 1), compute_law(profile), 2240.0)
    queue = size().realtime
    in_flight = size(realtime__scaling__metric="in_flight").realtime
    assert queue is not None
    assert in_flight is not None
    assert queue.target_per_replica.value == round(state.queue_depth, 1)
    assert in_flight.target_per_replica.value == round(state.in_flight, 1)
    # Two GPUs: two batches compute at once, so fewer requests wait at twice the rate's share.
    two = size(realtime__gpu__count=2).realtime
    assert two is not None
    doubled = steady_state(batcher_rules(spec, 2), compute_law(profile), 4480.0)
    assert two.target_per_replica.value == round(doubled.queue_depth, 1)


def test_explicit_max_below_peak_warns_and_below_min_is_refused() -> None:
    sizing = size(realtime__scaling__max_replicas=5)
    assert any("cannot carry peak" in warning for warning in sizing.warnings)
    with pytest.raises(SpecError) as caught:
        size(realtime__scaling__max_replicas=2)
    assert caught.value.problems[0].path == "realtime.scaling.max_replicas"


def test_prewarm_window_starts_a_cold_start_early_and_ends_with_the_spike() -> None:
    realtime = size().realtime
    assert realtime is not None
    (window,) = realtime.prewarm
    assert window.lead_minutes == 3  # 180 s cold start
    assert window.start_cron == "57 8 * * 1-5"
    assert window.end_cron == "0 11 * * 1-5"
    assert window.desired_replicas == 5  # 9000 rps / 2240 = 4.02 -> 5
    assert window.timezone == "America/New_York"
    # 2026-11-30 is a Monday; New York is on EST (UTC-5) then.
    assert window.next_start_utc == "2026-11-30T13:57:00+00:00"


def test_spike_crossing_midnight_in_another_timezone_moves_the_day() -> None:
    spike = {"cron": "1 0 * * 1", "timezone": "Asia/Tokyo", "duration_minutes": 90, "rps": 9000}
    realtime = size(traffic__spikes=[spike]).realtime
    assert realtime is not None
    (window,) = realtime.prewarm
    assert window.start_cron == "58 23 * * 0"  # Sunday 23:58 Tokyo
    assert window.end_cron == "31 1 * * 1"
    # Sunday 23:58 in Tokyo (UTC+9) is Sunday 14:58 UTC.
    assert window.next_start_utc == "2026-11-29T14:58:00+00:00"


def test_spike_ending_after_midnight_moves_the_end_day() -> None:
    spike = {
        "cron": "0 23 * * 5",
        "timezone": "Europe/Berlin",
        "duration_minutes": 120,
        "rps": 9000,
    }
    realtime = size(traffic__spikes=[spike]).realtime
    assert realtime is not None
    assert realtime.prewarm[0].end_cron == "0 1 * * 6"


def test_dst_change_inside_the_window_lengthens_the_lead() -> None:
    # 01:30 -> 03:00 local is 90 wall-clock minutes but only 30 real minutes on the night New
    # York springs forward (2027-03-14), so the lead grows by an hour.
    spike = {
        "cron": "0 3 * * *",
        "timezone": "America/New_York",
        "duration_minutes": 60,
        "rps": 9000,
    }
    sizing = size_service(
        make_spec(traffic__spikes=[spike]), make_profile(node_provision=5310), now=NOW
    )
    assert sizing.realtime is not None
    (window,) = sizing.realtime.prewarm
    assert window.lead_minutes == 90 + 60
    assert window.start_cron == "30 0 * * *"  # 03:00 - 150 min
    assert "DST change" in window.reason
    assert "2027-03-14" in window.reason


def test_spike_without_a_dst_change_in_its_window_keeps_the_measured_lead() -> None:
    spike = {
        "cron": "0 12 * * *",
        "timezone": "America/New_York",
        "duration_minutes": 60,
        "rps": 9000,
    }
    sizing = size_service(
        make_spec(traffic__spikes=[spike]), make_profile(node_provision=5310), now=NOW
    )
    assert sizing.realtime is not None
    assert sizing.realtime.prewarm[0].lead_minutes == 90


def test_prewarm_crossing_midnight_with_a_pinned_day_of_month_is_refused() -> None:
    spike = {"cron": "1 0 1 * *", "timezone": "UTC", "duration_minutes": 30, "rps": 9000}
    with pytest.raises(SpecError) as caught:
        size(traffic__spikes=[spike])
    (problem,) = caught.value.problems
    assert problem.path == "traffic.spikes[0].cron"
    assert "pin days of the week" in problem.message


def test_prewarm_off_declares_no_windows() -> None:
    realtime = size(realtime__prewarm="off").realtime
    assert realtime is not None
    assert realtime.prewarm == []


def test_batch_pool_backlog_target_and_spot_grace() -> None:
    batch = size().batch
    assert batch is not None
    assert batch.batch_size.value == 32
    assert batch.target_per_replica.value == 3200 * 60
    assert batch.termination_grace_seconds.value == 15  # GKE's 30 s notice minus 15 s
    aws = size_service(make_spec(), make_profile(), target="aws", now=NOW).batch
    assert aws is not None
    assert aws.termination_grace_seconds.value == 105


def test_startup_and_drain_times() -> None:
    realtime = size().realtime
    assert realtime is not None
    assert realtime.startup_seconds.value == 90  # 3 x (20 s load + 10 s warm-up)
    # 5 s prestop + ceil(1024 / 3200 + 0.02) + 5 s.
    assert realtime.termination_grace_seconds.value == 11


def test_profile_from_other_hardware_is_flagged() -> None:
    sizing = size(realtime__gpu__type="nvidia-a10g", batch__gpu__type="nvidia-a10g")
    assert any("measured on gpu: NVIDIA L4" in warning for warning in sizing.warnings)
    assert not size().warnings


def test_sizing_serialises_every_reason() -> None:
    document = size().to_dict()
    assert document["realtime"]["min_replicas"] == {
        "value": 3,
        "reason": "baseline 5000 rps / 2240.0 rps per replica, rounded up",
    }
    assert document["batch"]["termination_grace_seconds"]["reason"]


def test_spike_inside_the_skipped_hour_is_refused() -> None:
    spike = {"cron": "30 1 * * *", "timezone": "Europe/London", "duration_minutes": 60, "rps": 9000}
    with pytest.raises(SpecError) as caught:
        size(traffic__spikes=[spike])
    (problem,) = caught.value.problems
    assert problem.path == "traffic.spikes[0].cron"
    assert "2027-03-28" in problem.message
    assert "move the start outside the DST change" in problem.message


def test_prewarm_start_inside_the_skipped_hour_starts_an_hour_earlier() -> None:
    # 03:00 - 90 min = 01:30, which London skips on 2027-03-28: start at 00:30 instead.
    spike = {"cron": "0 3 * * *", "timezone": "Europe/London", "duration_minutes": 60, "rps": 9000}
    sizing = size_service(
        make_spec(traffic__spikes=[spike]), make_profile(node_provision=5310), now=NOW
    )
    assert sizing.realtime is not None
    (window,) = sizing.realtime.prewarm
    assert window.start_cron == "30 0 * * *"
    assert window.lead_minutes == 150
    assert "2027-03-28" in window.reason
