"""`inferstack tune`: the cheapest configuration of a stack that meets its SLO on simulated traffic.

Modules: `knobs` (the spec fields searched and how a candidate sets them), `search` (coordinate
search, then successive halving over seeds), `tuner` (a candidate rendered and simulated as the
stack would be), `write` (`--write`, round-trip YAML), `cli`.
"""

from __future__ import annotations

from inferstack.offline.tune.knobs import Candidate, Knob
from inferstack.offline.tune.search import Outcome, Search
from inferstack.offline.tune.tuner import NINES, Problem, Result, Versus, problem, tune

__all__ = [
    "NINES",
    "Candidate",
    "Knob",
    "Outcome",
    "Problem",
    "Result",
    "Search",
    "Versus",
    "problem",
    "tune",
]
