"""Fitting the spec's traffic block from a request trace."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml

from inferstack.components.planning.traffic_fit import fit_traffic, read_timestamps
from inferstack.errors import SpecError

REPO = Path(__file__).resolve().parents[2]
AZURE_TRACE = REPO.parent / "shared" / "traces" / "azure-llm-2023-code.csv"
T0 = datetime(2026, 1, 1, 12, 0, 0)


def shared_trace() -> Path:
    if not AZURE_TRACE.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{AZURE_TRACE} is missing in CI")
        pytest.skip(f"{AZURE_TRACE} not present beside the checkout")
    return AZURE_TRACE


def test_steady_traffic_with_a_burst_minute() -> None:
    # Ten minutes at 2 rps, except minute 4 at 10 rps.
    stamps = []
    for minute in range(10):
        rate = 10 if minute == 4 else 2
        stamps += [T0 + timedelta(minutes=minute, seconds=i / rate) for i in range(60 * rate)]
    fit = fit_traffic(stamps)
    assert fit.baseline_rps == pytest.approx(2.0)
    assert fit.peak_rps == pytest.approx(10.0)
    assert fit.busiest_second_rps == 10
    assert fit.peak_window_start == T0 + timedelta(minutes=4)
    assert fit.traffic_block() == {"baseline_rps": 2.0, "peak_rps": 10.0, "spikes": []}


def test_one_request_is_not_a_rate() -> None:
    with pytest.raises(SpecError, match="at least two requests"):
        fit_traffic([T0])


def test_bad_column_and_bad_time_name_the_fix(tmp_path: Path) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text("when,tokens\n2026-01-01 00:00:00,3\nyesterday,4\n")
    with pytest.raises(SpecError, match="no column 'TIMESTAMP'"):
        read_timestamps(trace, "TIMESTAMP")
    with pytest.raises(SpecError, match="'yesterday' is not an ISO 8601 time"):
        read_timestamps(trace, "when")


def test_public_azure_trace_peak_matches_a_brute_force_count() -> None:
    trace = shared_trace()
    with trace.open(encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    stamps = read_timestamps(trace, "TIMESTAMP")
    fit = fit_traffic(stamps)
    assert fit.requests == len(rows)
    seconds = [(s - stamps[0]).total_seconds() for s in stamps]
    brute = max(sum(1 for t in seconds if a <= t < a + 60) for a in seconds[::7])
    assert fit.peak_rps * 60 >= brute  # the fitted window is at least as busy as any sampled one
    assert fit.baseline_rps <= fit.mean_rps <= fit.peak_rps


def test_cli_prints_a_traffic_block_the_spec_accepts() -> None:
    trace = shared_trace()
    result = subprocess.run(
        [sys.executable, "-m", "inferstack.cli", "fit-traffic", "--trace", str(trace)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    document = yaml.safe_load(result.stdout)
    from tests.components.factories import make_spec

    spec = make_spec(
        traffic=document["traffic"],
        realtime__scaling__max_replicas=3,
    )
    assert spec.traffic.peak_rps > spec.traffic.baseline_rps > 0
    assert "# baseline_rps" in result.stdout
