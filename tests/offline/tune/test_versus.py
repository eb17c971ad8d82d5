"""The comparison with the competent default is searched at its attainment, not read off the
nines' runs: a problem whose answer is known, without the simulator."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

import pytest

from inferstack.offline.tune.knobs import Candidate, Knob
from inferstack.offline.tune.search import Outcome
from inferstack.offline.tune.tuner import Problem, tune

FLOOR = Knob("min_replicas", ("floor",), tuple(range(1, 11)), True, "a floor")
SHAPE = Knob("shape", ("shape",), ("round", "square"), False, "a shape")


@dataclass
class Synthetic:
    """What `tune` reads of a tuning problem. Attainment rises a point per replica of floor
    (seed 1 half a point lower), the cost is $100 per replica; the stack starts at 10."""

    competent_outcome: Outcome
    knobs: dict[str, Knob] = field(default_factory=lambda: {"min_replicas": FLOOR, "shape": SHAPE})
    initial: Candidate = (("min_replicas", 10), ("shape", "round"))
    slo: float = 0.99
    rates: list[None] = field(default_factory=lambda: [None, None])
    """Two seeds."""

    def run(self, candidate: Candidate, seed: int) -> Outcome:
        floor = int(dict(candidate)["min_replicas"])
        return Outcome(round(min(1.0, 0.9 + floor / 100 - 0.005 * seed), 6), 100.0 * floor)

    def changed(self, candidate: Candidate) -> Candidate:
        return tuple((k, v) for k, v in candidate if dict(self.initial)[k] != v)

    def competent(self) -> Outcome:
        return self.competent_outcome


def test_the_competent_defaults_level_below_the_lowest_nine_is_searched():
    # The competent default: 92.5% at $450 a month, far below the SLO's 99%.
    competent = Outcome(0.925, 450.0)
    problem = cast(Problem, Synthetic(competent))
    # The nines alone (what the versus line used to read): their bisections aim at 99% and up,
    # so the cheapest run on every seed that reaches 92.5% is a floor of 5, at $500: dearer
    # than the competent default.
    nines = tune(problem, workers=1, log=lambda line: None, competent=False)
    before = nines.search.cheapest(competent.attainment)
    assert before is not None
    mean = nines.search.outcome(before, [0, 1])
    assert mean is not None
    assert (mean.attainment, mean.monthly_usd) == (pytest.approx(0.9475), 500.0)
    assert nines.versus is None

    result = tune(problem, workers=1, log=lambda line: None)
    versus = result.versus
    assert versus is not None
    assert versus.competent == competent
    assert versus.searched
    assert versus.covered_by is None
    # Searched at 92.5%: a floor of 3 reaches 92.75% (93% and 92.5%) for $300.
    assert versus.found == (("min_replicas", 3), ("shape", "round"))
    found = result.search.outcome(versus.found, [0, 1])
    assert found is not None
    assert (found.attainment, found.monthly_usd) == (pytest.approx(0.9275), 300.0)
    # The nines' answers are those of the search without it.
    assert result.frontier == nines.frontier


def test_a_level_a_nine_already_meets_for_less_is_not_searched_again():
    # The competent default at 92.5% for $1,500: the 99% answer (a floor of 10, $1,000)
    # already meets 92.5% for less.
    problem = cast(Problem, Synthetic(Outcome(0.925, 1500.0)))
    nines = tune(problem, workers=1, log=lambda line: None, competent=False)
    result = tune(problem, workers=1, log=lambda line: None)
    versus = result.versus
    assert versus is not None
    assert not versus.searched
    assert versus.covered_by == 0.99
    # No simulation beyond the nines' (and their prunes'): the answer is read from their runs.
    assert result.search.runs == nines.search.runs
    assert versus.found == nines.search.cheapest(0.925)
