"""Cron shifting for pre-warm windows."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from inferstack.components.planning.schedule import (
    CronShiftError,
    occurrences_per_week,
    real_lead_minutes,
    shift_cron,
    skipped_dates,
)
from inferstack.components.planning.sizing import size_service
from tests.components.factories import make_profile, make_spec


@pytest.mark.parametrize(
    ("cron", "minutes", "expected"),
    [
        ("0 9 * * 1-5", -15, "45 8 * * 1-5"),
        ("30 0 * * 1-5", -45, "45 23 * * 0-4"),
        ("30 0 * * 0", -45, "45 23 * * 6"),
        ("30 0 * * sun,wed", -45, "45 23 * * 2,6"),
        ("0 23 * * 5", 120, "0 1 * * 6"),
        ("0 23 * * 6", 120, "0 1 * * 0"),
        ("0 22 * * 5-6", 180, "0 1 * * 0,6"),
        ("0 12 * * *", -720, "0 0 * * *"),
        ("0 0 * * *", -1, "59 23 * * *"),
        ("0 9 15 * *", 30, "30 9 15 * *"),
    ],
)
def test_shift(cron: str, minutes: int, expected: str) -> None:
    assert shift_cron(cron, minutes) == expected


@pytest.mark.parametrize("cron", ["5 0 15 * *", "5 0 * 6 *"])
def test_shift_across_midnight_with_pinned_calendar_days_is_refused(cron: str) -> None:
    with pytest.raises(CronShiftError, match="pin days of the week"):
        shift_cron(cron, -10)


def test_shift_of_a_stepped_day_of_week_across_midnight_is_refused() -> None:
    with pytest.raises(CronShiftError, match="list the days"):
        shift_cron("5 0 * * */2", -10)


def test_real_lead_over_a_year_sees_spring_forward_and_fall_back() -> None:
    check = real_lead_minutes(
        "0 3 * * *", "America/New_York", 90, start=datetime(2026, 11, 29, tzinfo=UTC)
    )
    assert check.shortest_real_minutes == 30  # 2027-03-14: 01:30 EST -> 03:00 EDT
    assert check.first_short_occurrence is not None
    assert check.first_short_occurrence.date().isoformat() == "2027-03-14"
    assert check.longest_real_minutes == 90


def test_real_lead_in_a_zone_without_dst_is_constant() -> None:
    check = real_lead_minutes("0 3 * * *", "Asia/Tokyo", 90, start=datetime(2026, 1, 1, tzinfo=UTC))
    assert check.shortest_real_minutes == check.longest_real_minutes == 90
    assert check.first_short_occurrence is None


def test_occurrences_per_week() -> None:
    monday = datetime(2026, 1, 5, tzinfo=UTC)
    assert occurrences_per_week("0 9 * * 1-5", "America/New_York", monday) == 5
    assert occurrences_per_week("0 9 * * *", "UTC", monday) == 7
    assert occurrences_per_week("0 9 1 * *", "UTC", monday) == 0


def test_skipped_dates_find_the_spring_forward_gap_only_for_matching_days() -> None:
    start = datetime(2026, 11, 29, tzinfo=UTC)
    assert skipped_dates("30 1 * * *", "Europe/London", start=start) == [date(2027, 3, 28)]
    assert skipped_dates("30 1 * * 1-5", "Europe/London", start=start) == []  # that is a Sunday
    assert skipped_dates("30 3 * * *", "Europe/London", start=start) == []
    assert skipped_dates("30 1 * * *", "Asia/Tokyo", start=start) == []


def test_a_prewarm_window_no_higher_than_the_floor_is_dropped_with_a_note() -> None:
    now = datetime(2026, 1, 5, tzinfo=UTC)
    # The case: a spike that needs no more replicas than min_replicas keeps up anyway.
    quiet = size_service(
        make_spec(traffic__spikes__0__rps=5000, realtime__scaling__min_replicas=50),
        make_profile(),
        now=now,
    )
    assert quiet.realtime is not None
    assert quiet.realtime.prewarm == []
    (note,) = [w for w in quiet.warnings if w.startswith("traffic.spikes[0]: no pre-warm")]
    assert "no more than min_replicas (50)" in note
    # A spike above the floor keeps its window.
    busy = size_service(make_spec(), make_profile(), now=now)
    assert busy.realtime is not None
    assert len(busy.realtime.prewarm) == 1
    assert busy.realtime.prewarm[0].desired_replicas > busy.realtime.min_replicas.value
