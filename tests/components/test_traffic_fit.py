"""Fitting the spec's traffic block from a request trace."""

from __future__ import annotations

import csv
import random
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from inferstack.cli import main
from inferstack.components.planning.traffic_fit import (
    TraceError,
    fit_traffic,
    read_timestamps,
    read_trace,
)
from tests.components.factories import make_spec
from tests.shared_data import azure_trace

REPO = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 1, 1, 12, 0, 0)
MONDAY = datetime(2026, 1, 5, tzinfo=UTC)


def even(start: datetime, seconds: float, rps: float) -> list[datetime]:
    """Arrivals evenly spaced at `rps` for `seconds` from `start`."""
    return [start + timedelta(seconds=i / rps) for i in range(round(seconds * rps))]


def poisson(start: datetime, seconds: float, rps: float, seed: int) -> list[datetime]:
    """Poisson arrivals at `rps` for `seconds` from `start`, reproducibly."""
    rng, at, out = random.Random(seed), 0.0, []
    while (at := at + rng.expovariate(rps)) < seconds:
        out.append(start + timedelta(seconds=at))
    return out


def days_with(
    days: int, baseline_rps: float, spike_at: Iterable[tuple[int, datetime]], **spike: float
) -> list[datetime]:
    """`days` days of baseline from MONDAY, plus a spike of `spike['rps']` for
    `spike['minutes']` at each given (day, start) pair."""
    stamps = even(MONDAY, days * 86400, baseline_rps)
    for _, start in spike_at:
        stamps += even(start, spike["minutes"] * 60, spike["rps"])
    return sorted(stamps)


def write_csv(path: Path, header: str, values: Iterable[object]) -> Path:
    path.write_text(header + "\n" + "".join(f"{value}\n" for value in values))
    return path


def fit_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["fit-traffic", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_steady_traffic_with_a_burst_minute() -> None:
    # Ten minutes at 2 rps, except minute 4 at 10 rps.
    stamps = []
    for minute in range(10):
        rate = 10 if minute == 4 else 2
        stamps += [T0 + timedelta(minutes=minute, seconds=i / rate) for i in range(60 * rate)]
    fit = fit_traffic(stamps)
    assert fit.baseline_rps == pytest.approx(2.0)
    assert fit.median_rps == pytest.approx(2.0)
    assert fit.peak_rps == pytest.approx(10.0)
    assert fit.busiest_second_rps == 10
    assert fit.peak_window_start == T0 + timedelta(minutes=4)
    assert fit.traffic_block() == {"baseline_rps": 2.0, "peak_rps": 10.0, "spikes": []}


def test_one_request_is_not_a_rate() -> None:
    with pytest.raises(TraceError, match="at least two requests"):
        fit_traffic([T0])


def test_bad_column_and_bad_time_name_the_fix(tmp_path: Path) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text("when,tokens\n2026-01-01 00:00:00,3\nyesterday,4\n")
    with pytest.raises(TraceError, match="no column 'start'"):
        read_timestamps(trace, "start")
    with pytest.raises(TraceError, match=r"t.csv:3: column 'when': 'yesterday' is not ISO 8601"):
        read_timestamps(trace, "when")


def test_epoch_seconds_and_milliseconds_are_detected(tmp_path: Path) -> None:
    start = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    seconds = [start.timestamp() + i * 0.5 for i in range(240)]
    by_s = read_trace(write_csv(tmp_path / "s.csv", "TIMESTAMP", seconds))
    by_ms = read_trace(
        write_csv(tmp_path / "ms.csv", "TIMESTAMP", (int(s * 1000) for s in seconds))
    )
    assert (by_s.timestamp_format, by_ms.timestamp_format) == ("epoch-s", "epoch-ms")
    assert by_s.stamps[0] == by_ms.stamps[0] == start
    assert by_s.stamps == by_ms.stamps
    assert fit_traffic(by_ms.stamps).baseline_rps == pytest.approx(2.0)


def test_timestamp_format_can_be_named(tmp_path: Path) -> None:
    trace = write_csv(
        tmp_path / "t.csv", "TIMESTAMP", ["01/03/2026 08:00:00", "01/03/2026 08:00:30"]
    )
    with pytest.raises(TraceError, match="pass --timestamp-format"):
        read_trace(trace)
    stamps = read_timestamps(trace, timestamp_format="%d/%m/%Y %H:%M:%S", timezone="Europe/Paris")
    assert stamps[0] == datetime(2026, 3, 1, 8, 0, tzinfo=ZoneInfo("Europe/Paris"))
    # A number read as ISO is refused rather than silently taken as a year.
    numbers = write_csv(tmp_path / "n.csv", "TIMESTAMP", [1767225600, 1767225601])
    with pytest.raises(TraceError, match="not an ISO 8601 time"):
        read_trace(numbers, timestamp_format="iso")


def test_column_matches_ignoring_case(tmp_path: Path) -> None:
    trace = write_csv(tmp_path / "t.csv", "timestamp,tokens", ["2026-01-01T00:00:00,1"])
    assert read_trace(trace).column == "timestamp"
    assert read_trace(trace, "TimeStamp").column == "timestamp"
    assert "ignoring case" in read_trace(trace).column_note


def test_the_only_time_column_is_picked_and_two_are_refused(tmp_path: Path) -> None:
    one = write_csv(tmp_path / "one.csv", "tokens,arrived", ["12,1767225600123"])
    trace = read_trace(one)
    assert (trace.column, trace.timestamp_format) == ("arrived", "epoch-ms")
    assert "the only one holding times" in trace.column_note
    two = write_csv(tmp_path / "two.csv", "sent,arrived", ["1767225600,1767225601"])
    with pytest.raises(TraceError, match=r"several hold times \(\['sent', 'arrived'\]\)"):
        read_trace(two)


def test_help_shows_the_default_column(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["fit-traffic", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "default: TIMESTAMP" in text
    assert "default: auto" in text


def test_a_missing_trace_is_named_as_such(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = fit_cli(capsys, "--trace", str(tmp_path / "requests.csv"))
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert "requests.csv does not exist" in err
    assert "invalid spec" not in err


def test_comment_and_yaml_show_the_same_rounded_numbers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 545 requests in the busiest minute: 9.0833 rps, which rounds up to 9.09 in both places.
    stamps = even(MONDAY, 600, 1.0) + even(MONDAY + timedelta(minutes=12), 60, 545 / 60)
    stamps += even(MONDAY + timedelta(minutes=13), 300, 1.0)
    trace = write_csv(tmp_path / "t.csv", "TIMESTAMP", (s.isoformat() for s in sorted(stamps)))
    code, out, err = fit_cli(capsys, "--trace", str(trace))
    assert code == 0, err
    traffic = yaml.safe_load(out)["traffic"]
    assert traffic["peak_rps"] == 9.09
    for key in ("peak_rps", "baseline_rps"):
        shown = re.search(rf"^# {key} (\S+):", out, re.MULTILINE)
        assert shown is not None
        assert float(shown.group(1)) == traffic[key]


def test_a_diurnal_day_proposes_the_trough_and_prints_the_median_and_shape(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # One day: 3 rps from 20:00 to 08:00, 12 rps from 12:00 to 18:00, 7 rps in between.
    stamps: list[datetime] = []
    for hour in range(24):
        rate = 3 if hour >= 20 or hour < 8 else 12 if 12 <= hour < 18 else 7
        stamps += poisson(MONDAY + timedelta(hours=hour), 3600, rate, seed=hour)
    fit = fit_traffic(sorted(stamps))
    assert 2.5 < fit.baseline_rps < 3.1  # the night, not the 7-ish median
    assert 6 < fit.median_rps < 8
    assert fit.hourly_rps[2] == pytest.approx(3, rel=0.1)
    assert fit.hourly_rps[14] == pytest.approx(12, rel=0.1)
    assert fit.spikes == []  # a smooth daily curve is for the autoscaler, not pre-warm
    trace = write_csv(tmp_path / "t.csv", "TIMESTAMP", (s.timestamp() for s in sorted(stamps)))
    code, out, _ = fit_cli(capsys, "--trace", str(trace))
    assert code == 0
    assert f"10th percentile of the per-minute rates (median {fit.median_rps:.2f} rps)" in out
    assert re.search(r"^#   00h 3\.\d\d  01h 3\.\d\d", out, re.MULTILINE)


def test_a_daily_spike_over_two_days_is_proposed() -> None:
    # The trace: 0.5 rps, and 8 rps from 09:00 to 10:00 on both days.
    starts = [(d, MONDAY + timedelta(days=d, hours=9)) for d in range(2)]
    fit = fit_traffic(days_with(2, 0.5, starts, rps=7.5, minutes=60))
    assert fit.baseline_rps == pytest.approx(0.5)
    assert [s.entry() for s in fit.spikes] == [
        {"cron": "0 9 * * *", "timezone": "UTC", "duration_minutes": 60, "rps": 8.0}
    ]
    assert "every day: seen on 2 of the 2 matching days" in fit.spikes[0].reason
    assert "16x the baseline 0.50 rps" in fit.spikes[0].reason
    spec = make_spec(traffic=fit.traffic_block(), realtime__scaling__max_replicas=3)
    assert spec.traffic.spikes[0].cron == "0 9 * * *"


def test_weekday_spikes_in_a_local_timezone() -> None:
    # Eight days from a Monday; 10 rps from 08:30 to 09:15 New York time on weekdays only,
    # across the change to daylight saving time (8 March 2026), so the UTC hour moves.
    new_york = ZoneInfo("America/New_York")
    monday = datetime(2026, 3, 2, tzinfo=UTC)
    starts = []
    for day in range(8):
        local = datetime(2026, 3, 2 + day, 8, 30, tzinfo=new_york)
        if local.weekday() < 5:
            starts.append((day, local.astimezone(UTC)))
    stamps = even(monday, 8 * 86400, 0.2)
    for _, start in starts:
        stamps += even(start, 45 * 60, 10)
    fit = fit_traffic(sorted(stamps), timezone="America/New_York")
    assert [(s.cron, s.timezone, s.duration_minutes) for s in fit.spikes] == [
        ("30 8 * * 1-5", "America/New_York", 45)
    ]
    assert "on Mon,Tue,Wed,Thu,Fri" in fit.spikes[0].reason


def test_a_day_of_week_spike_over_two_weeks() -> None:
    # Fifteen days from a Monday; 5 rps from 14:00 to 14:30 UTC on Mondays (three of them).
    starts = [(d, MONDAY + timedelta(days=d, hours=14)) for d in (0, 7, 14)]
    fit = fit_traffic(days_with(15, 0.1, starts, rps=5, minutes=30))
    assert [(s.cron, s.duration_minutes, s.rps) for s in fit.spikes] == [
        ("0 14 * * 1", 30, 5.1)  # the spike over the baseline, as the pool sees it
    ]
    assert "seen on 3 of the 3 matching days" in fit.spikes[0].reason


def test_a_one_off_burst_is_reported_not_proposed() -> None:
    starts = [(1, MONDAY + timedelta(days=1, hours=15))]
    fit = fit_traffic(days_with(3, 0.5, starts, rps=12, minutes=20))
    assert fit.spikes == []
    assert any(
        "2026-01-06 at 15:00 UTC" in note and "did not recur" in note for note in fit.spike_notes
    )


def test_poisson_noise_is_not_a_spike() -> None:
    stamps = poisson(MONDAY, 2 * 86400, 1.0, seed=7)
    fit = fit_traffic(stamps)
    assert fit.spikes == []
    assert fit.spike_notes == [
        "spikes: none proposed; no burst of 3x the median rate recurred at the same time of "
        "day on two or more days"
    ]


def test_public_azure_trace_peak_matches_a_brute_force_count() -> None:
    trace = azure_trace()
    with trace.open(encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    stamps = read_timestamps(trace, "TIMESTAMP")
    fit = fit_traffic(stamps)
    assert fit.requests == len(rows)
    seconds = [(s - stamps[0]).total_seconds() for s in stamps]
    brute = max(sum(1 for t in seconds if a <= t < a + 60) for a in seconds[::7])
    assert fit.peak_rps * 60 >= brute  # the fitted window is at least as busy as any sampled one
    assert fit.baseline_rps <= fit.median_rps <= fit.peak_rps
    assert fit.baseline_rps <= fit.mean_rps


def test_public_azure_trace_has_no_recurring_spike() -> None:
    fit = fit_traffic(read_timestamps(azure_trace()))
    assert fit.spikes == []
    assert fit.spike_notes == [
        "spikes: none proposed; recurring spikes need a trace longer than a day "
        "(this one covers 57.3 min)"
    ]


def test_cli_prints_a_traffic_block_the_spec_accepts(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = fit_cli(capsys, "--trace", str(azure_trace()))
    assert code == 0, err
    document = yaml.safe_load(out)
    spec = make_spec(traffic=document["traffic"], realtime__scaling__max_replicas=3)
    assert spec.traffic.peak_rps > spec.traffic.baseline_rps >= 0
    assert "# baseline_rps" in out
    assert "# read ISO 8601 from column 'TIMESTAMP'" in out
