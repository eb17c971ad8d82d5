"""Cron arithmetic for pre-warm windows: shift a spike's start earlier by a lead time.

KEDA's cron scaler reads five-field cron expressions in an IANA timezone, in local wall-clock
time. Moving "09:00 Monday to Friday" 45 minutes earlier is easy; moving "00:30 Monday" 45
minutes earlier lands on Sunday, so the day-of-week field has to move with it. DST is handled by
measuring, over a year of real occurrences, the absolute time between the shifted start and the
spike, and reporting the shortest one (a transition inside the window makes wall-clock minutes
and real minutes differ).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

MINUTES_PER_DAY = 24 * 60
_DAY_NAMES = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}


class CronShiftError(ValueError):
    """The cron expression cannot be shifted across midnight without changing its meaning."""


def _expand_days_of_week(field: str) -> set[int]:
    days: set[int] = set()
    for item in field.lower().split(","):
        if "/" in item:
            raise CronShiftError(f"day-of-week step {item!r} cannot be shifted; list the days")
        first, _, last = item.partition("-")
        start = _DAY_NAMES.get(first)
        start = int(first) % 7 if start is None else start
        if not last:
            days.add(start)
            continue
        end_name = _DAY_NAMES.get(last)
        end = int(last) if end_name is None else end_name
        days.update(day % 7 for day in range(start, end + 1))
    return days


def compress_days_of_week(days: set[int]) -> str:
    """Cron day-of-week field for `days` (0 = Sunday), with runs written as ranges."""
    ordered = sorted(days)
    parts: list[str] = []
    run_start = previous = ordered[0]
    for day in [*ordered[1:], None]:
        if day is not None and day == previous + 1:
            previous = day
            continue
        parts.append(str(run_start) if run_start == previous else f"{run_start}-{previous}")
        if day is not None:
            run_start = previous = day
    return ",".join(parts)


def shift_cron(expression: str, minutes: int) -> str:
    """The cron expression that fires `minutes` later (negative: earlier), in the same timezone.

    The expression must have a single minute and hour (the spec enforces it). Crossing midnight
    moves the day-of-week field; a pinned day-of-month cannot move safely and is refused.
    """
    minute, hour, day_of_month, month, day_of_week = expression.split()
    total = int(hour) * 60 + int(minute) + minutes
    day_shift, minute_of_day = divmod(total, MINUTES_PER_DAY)
    if day_shift != 0:
        if day_of_month != "*" or month != "*":
            raise CronShiftError(
                f"{expression!r} pins a day of month or a month, and the shift by {minutes} min "
                "crosses midnight; pin days of the week instead, or move the spike"
            )
        if day_of_week != "*":
            days = {(day + day_shift) % 7 for day in _expand_days_of_week(day_of_week)}
            day_of_week = compress_days_of_week(days)
    new_hour, new_minute = divmod(minute_of_day, 60)
    return f"{new_minute} {new_hour} {day_of_month} {month} {day_of_week}"


@dataclass(frozen=True)
class LeadCheck:
    """How a wall-clock lead time behaves over a year of occurrences."""

    shortest_real_minutes: float
    longest_real_minutes: float
    first_short_occurrence: datetime | None


def offset_change_dates(timezone: str, *, start: datetime, days: int = 366) -> list[date]:
    """Local dates within `days` on which the zone's UTC offset changes (DST transitions)."""
    zone = ZoneInfo(timezone)
    first = start.astimezone(zone).date()
    changes = []
    previous = datetime(first.year, first.month, first.day, tzinfo=zone).utcoffset()
    for offset in range(1, days + 1):
        day = first + timedelta(days=offset)
        current = datetime(day.year, day.month, day.day, tzinfo=zone).utcoffset()
        if current != previous:
            changes.append(day - timedelta(days=1))  # the change happened during the day before
        previous = current
    return changes


def _candidate_days(timezone: str, start: datetime, days: int) -> list[date]:
    """One ordinary day plus every DST-change day and the day after it: the only days on which
    wall-clock arithmetic and real time can disagree."""
    first = start.astimezone(ZoneInfo(timezone)).date()
    candidates = {first}
    for change in offset_change_dates(timezone, start=start, days=days):
        candidates.update({change, change + timedelta(days=1)})
    return sorted(candidates)


def real_lead_minutes(
    spike_cron: str, timezone: str, lead_minutes: int, *, start: datetime, days: int = 366
) -> LeadCheck:
    """Shortest and longest real (absolute) lead, over `days` of the spike's occurrences.

    A lead written as wall-clock minutes is shorter in real time when a DST change falls
    between the pre-warm start and the spike (spring forward), and longer on fall back.
    """
    zone = ZoneInfo(timezone)
    prewarm_cron = shift_cron(spike_cron, -lead_minutes)
    minute, hour = (int(part) for part in spike_cron.split()[:2])
    shortest, longest = float("inf"), 0.0
    first_short: datetime | None = None
    for day in _candidate_days(timezone, start, days):
        wall = datetime(day.year, day.month, day.day, hour, minute)
        if not croniter.match(spike_cron, wall):
            continue
        spike_local = wall.replace(tzinfo=zone)
        # The pre-warm trigger that fires last before this spike, as KEDA would evaluate it.
        prewarm_local: datetime = croniter(prewarm_cron, spike_local).get_prev(datetime)
        real = spike_local.astimezone(UTC) - prewarm_local.astimezone(UTC)
        real_minutes = real.total_seconds() / 60
        if real_minutes < lead_minutes and first_short is None:
            first_short = spike_local
        shortest = min(shortest, real_minutes)
        longest = max(longest, real_minutes)
    if longest == 0.0:  # the cron never fires on a candidate day: nothing can go wrong
        shortest = longest = float(lead_minutes)
    return LeadCheck(shortest, longest, first_short)


def skipped_dates(cron: str, timezone: str, *, start: datetime, days: int = 366) -> list[date]:
    """Dates within `days` on which `cron` should fire but its wall-clock time does not exist.

    Spring-forward skips an hour of local time; a cron time inside it never fires that day
    (KEDA's scheduler skips it), so a pre-warm or a spike there silently goes missing.
    """
    zone = ZoneInfo(timezone)
    minute, hour = (int(part) for part in cron.split()[:2])
    skipped = []
    for day in _candidate_days(timezone, start, days):
        wall = datetime(day.year, day.month, day.day, hour, minute)
        if not croniter.match(cron, wall):
            continue
        round_trip = wall.replace(tzinfo=zone).astimezone(UTC).astimezone(zone).replace(tzinfo=None)
        if round_trip != wall:
            skipped.append(day)
    return skipped


def next_occurrence_utc(cron: str, timezone: str, after: datetime) -> datetime:
    """The next time `cron` fires in `timezone` after `after`, in UTC."""
    local: datetime = croniter(cron, after.astimezone(ZoneInfo(timezone))).get_next(datetime)
    return local.astimezone(ZoneInfo("UTC"))


def occurrences_per_week(cron: str, timezone: str, week_start: datetime) -> int:
    """How many times `cron` fires in the seven days from `week_start`."""
    zone = ZoneInfo(timezone)
    cursor = week_start.astimezone(zone) - timedelta(seconds=1)
    end = week_start.astimezone(zone) + timedelta(days=7)
    runs = croniter(cron, cursor)
    count = 0
    while runs.get_next(datetime) < end:
        count += 1
    return count
