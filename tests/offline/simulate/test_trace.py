"""Traffic from traces and from the declared block."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from inferstack.cli import main
from inferstack.offline.simulate.arrivals import (
    DeclaredTraffic,
    Spike,
    declared_rates,
    read_trace,
    trace_rates,
    trace_times,
)
from tests.shared_data import azure_trace

REPO = Path(__file__).resolve().parents[3]


def _trace(tmp_path: Path, seconds: list[float]) -> Path:
    base = datetime(2026, 1, 5, 12, tzinfo=UTC).timestamp()
    rows = [datetime.fromtimestamp(base + s, UTC).isoformat() for s in seconds]
    path = tmp_path / "t.csv"
    path.write_text("TIMESTAMP\n" + "\n".join(rows) + "\n")
    return path


def test_trace_rates_scale_and_loop(tmp_path):
    trace = read_trace(_trace(tmp_path, [i * 0.5 for i in range(120)]))
    rates = trace_rates(trace, 240, rate_scale=3.0, loop=True, window_s=1)
    assert len(rates) == 240
    assert rates[10] == pytest.approx(6.0)
    assert rates[130] == pytest.approx(6.0)  # the second pass of the loop
    unlooped = trace_rates(trace, 240, rate_scale=3.0, window_s=1)
    assert len(unlooped) == 60  # a trace is not stretched past its end without --loop


def test_declared_spike_follows_its_timezone_and_bursts_stay_below_peak():
    traffic = DeclaredTraffic(100, 1000, (Spike("0 9 * * 1-5", "America/New_York", 3600, 800),))
    start = datetime(2026, 1, 5, tzinfo=UTC)
    rates = declared_rates(traffic, start, 86400, bursts=True, rng=np.random.default_rng(1))
    assert rates[14 * 3600 + 10] == 800  # 09:00 EST is 14:00 UTC
    assert rates.max() <= 1000
    assert (rates > 100).sum() > 3600  # the bursts add undeclared load
    diurnal = declared_rates(traffic, start, 86400, diurnal=True)
    assert diurnal[4 * 3600] == pytest.approx(100)
    assert diurnal[16 * 3600] == pytest.approx(1000)


def test_the_shared_azure_trace_scaled_to_the_dev_baseline(capsys):
    trace = azure_trace()
    code = main(
        [
            "simulate",
            "--project-dir",
            str(REPO),
            "--stack",
            "dev",
            "--trace",
            str(trace),
            "--rate-scale",
            "baseline",
            "--days",
            "0.01",
            "--mode",
            "fast",
            "--json",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    document = json.loads(captured.out)
    assert "azure-llm-2023-code.csv" in document["traffic"]
    configured = document["scenarios"][0]
    assert configured["requests"] > 0.5 * 3000 * 864  # about the dev baseline for 864 s


def test_exact_timestamps_replay_every_request_of_the_trace(capsys, tmp_path):
    trace = _trace(tmp_path, [i * 0.25 for i in range(400)])
    code = main(
        [
            "simulate",
            "--project-dir",
            str(REPO),
            "--stack",
            "dev",
            "--trace",
            str(trace),
            "--exact-timestamps",
            "--days",
            "0.01",
            "--json",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    document = json.loads(captured.out)
    assert "its own timestamps" in document["traffic"]
    for scenario in document["scenarios"]:
        assert scenario["requests"] == 400
        assert scenario["mode"] == "exact"


def test_exact_timestamps_cannot_be_scaled_up(capsys, tmp_path):
    trace = _trace(tmp_path, [i * 0.25 for i in range(40)])
    code = main(
        [
            "simulate",
            "--project-dir",
            str(REPO),
            "--stack",
            "dev",
            "--trace",
            str(trace),
            "--exact-timestamps",
            "--rate-scale",
            "3",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "--rate-scale" in err
    assert "thinned" in err


def test_thinning_keeps_the_share_asked_for(tmp_path):
    trace = read_trace(_trace(tmp_path, [i * 0.1 for i in range(1000)]))
    assert len(trace_times(trace, 200, rate_scale=0.25)) == 250
    # Each copy starts a second after the previous copy's last request: at 0, 101 and 202 s.
    assert len(trace_times(trace, 300, loop=True)) == 2 * 1000 + 980
