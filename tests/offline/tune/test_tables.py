"""The fast mode's remembered queueing tables (what makes tune's repeated runs cheap) change no
number: a run that finds its table remembered equals one that builds it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from inferstack.offline.simulate import fast
from inferstack.offline.simulate.arrivals import declared_rates
from inferstack.offline.simulate.cli import DEFAULT_START, parse_start
from inferstack.offline.simulate.inputs import load_stack
from inferstack.offline.simulate.report import summarize

REPO = Path(__file__).resolve().parents[3]


def test_a_remembered_table_gives_the_same_run_as_a_built_one():
    start = parse_start(DEFAULT_START)
    inputs = load_stack("dev", REPO, start)
    rates = declared_rates(inputs.traffic, start, 600, rng=np.random.default_rng(1))
    fast._TABLES.clear()
    built = summarize(fast.run_fast(inputs.configured, rates, start, seed=3), timeline=True)
    assert len(fast._TABLES) == 1
    remembered = summarize(fast.run_fast(inputs.configured, rates, start, seed=3), timeline=True)
    assert remembered == built
    other_seed = summarize(fast.run_fast(inputs.configured, rates, start, seed=4), timeline=True)
    assert len(fast._TABLES) == 2
    assert other_seed != built
