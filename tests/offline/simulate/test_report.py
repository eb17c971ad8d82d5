"""What the report says about requests that met a full queue."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from inferstack.offline.simulate.engine import run_exact
from inferstack.offline.simulate.fast import run_fast
from inferstack.offline.simulate.report import summarize, table
from tests.offline.simulate.factories import realtime_pool, scenario

START = datetime(2026, 1, 5, tzinfo=UTC)


def test_the_share_that_met_a_full_queue_is_reported_beside_the_ceiling():
    # One fixed replica (about 2,000 rps) at 3,000 rps: a third of the requests find its queue
    # full, and the longest served latency is the queue's ceiling, not a tail.
    config = scenario(realtime_pool(scaler=None, fixed_replicas=1))
    rates = np.full(120, 3000.0)
    for run in (run_exact(config, rates, START, seed=3), run_fast(config, rates, START, seed=3)):
        summary = summarize(run, timeline=False)
        assert summary["met_full_queue"] == summary["rejected"], run.mode
        assert summary["full_queue_share"] == pytest.approx(1 / 3, abs=0.05), run.mode
        text = table([summary], 50)
        assert "met a full queue" in text
        assert "max served" in text


def test_no_endpoints_is_a_refusal_not_a_full_queue():
    config = scenario(realtime_pool(scaler=None, fixed_replicas=0))
    rates = np.full(60, 100.0)
    for run in (run_exact(config, rates, START, seed=3), run_fast(config, rates, START, seed=3)):
        summary = summarize(run, timeline=False)
        assert summary["rejected"] == summary["requests"] > 0, run.mode
        assert summary["met_full_queue"] == 0, run.mode
        assert summary["full_queue_share"] == 0, run.mode
