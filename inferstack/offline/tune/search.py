"""The optimiser: a coordinate search on one seed, then successive halving over the seeds.

Simulating a day takes seconds, so the search spends simulations where they decide something:

1. **Coordinate search** (seed 0 only): from the stack as it is, each knob in turn is set to
   the value that makes the configuration cheapest while it meets the attainment level (or, while
   nothing meets it, the value that comes closest). A monotone knob (a floor, a target) is
   bisected for the cheapest value that meets the level; the others are tried value by value.
   It runs for each level of the frontier, lowest first, each starting from the one before.
2. **Successive halving** over seeds: the best few candidates of each level on seed 0 are run on
   half the seeds, the better half of them on all seeds (and, while those meet the level on all
   seeds only at a higher cost or not at all, the next ones that met it on half the seeds, one
   at a time); a level's answer is the cheapest candidate whose mean attainment over all seeds
   meets it. A lucky seed cannot pick the winner.

Every (candidate, seed) run is cached, so the levels share their work.

With `workers` above 1 the runs go to a pool of processes, so the independent ones (the seeds of
one candidate, the values of a knob tried one by one, a halving rung, a bisection's end and first
middle) run side by side. The search asks for the same runs in the same order either way: a run
started ahead counts (and is logged, and enters the rankings) only once the search asks for it,
so every answer, the simulation count and the log are the same as with one process.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass

from inferstack.offline.tune.knobs import Candidate, Knob, Value

Runner = Callable[[Candidate, int], "Outcome | None"]
"""Simulate a candidate on a seed; None when the spec refuses the candidate."""
SHORTLIST = 5
"""Candidates per level that go on from seed 0 to the other seeds."""
MARGIN = 0.7
"""The coordinate stage, on seed 0 alone, allows this share of the level's misses: a candidate
just at the level on one seed misses it on the mean about half the time."""


Key = tuple[Candidate, int]
"""One simulation: a candidate on a seed."""


def default_workers() -> int:
    """Processes for the runs: one per core, at most two (the simulations are independent, and a
    third process on a two-core machine only waits); one where processes cannot be forked."""
    if "fork" not in multiprocessing.get_all_start_methods():
        return 1
    return max(1, min(2, os.cpu_count() or 1))


_RUNNER: Runner | None = None
"""The runner, in a worker process (set by `_install` when the pool forks it)."""


def _install(runner: Runner) -> None:
    global _RUNNER  # noqa: PLW0603 - one runner per worker process, set once as it starts
    _RUNNER = runner


def _run(candidate: Candidate, seed: int) -> Outcome | None:
    assert _RUNNER is not None, "worker started without a runner"
    return _RUNNER(candidate, seed)


def stricter(level: float) -> float:
    """The attainment the coordinate stage asks of seed 0 for `level` (see `MARGIN`)."""
    return 1 - (1 - level) * MARGIN


@dataclass(frozen=True)
class Outcome:
    """What a run (or the mean of several) measured."""

    attainment: float
    """Share of requests within the budget, 0..1."""
    monthly_usd: float


def rank(outcome: Outcome | None, level: float) -> tuple[int, float]:
    """Order for one level: configurations that meet it by cost, then the rest by attainment."""
    if outcome is None:
        return (2, 0.0)
    if outcome.attainment >= level:
        return (0, outcome.monthly_usd)
    return (1, -outcome.attainment)


def with_value(candidate: Candidate, name: str, value: Value) -> Candidate:
    """The candidate with one knob set."""
    return tuple(sorted({**dict(candidate), name: value}.items()))


class Search:
    """Cached runs of candidates on seeds, and the two stages above."""

    def __init__(
        self,
        runner: Runner,
        seeds: list[int],
        *,
        log: Callable[[str], None] | None = None,
        workers: int = 1,
    ) -> None:
        self._runner = runner
        self.seeds = seeds
        self._cache: dict[Key, Outcome | None] = {}
        self._log = log or (lambda line: sys.stderr.write(line + "\n"))
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        self._started: dict[Key, Future[Outcome | None]] = {}
        """Runs handed to the pool and not yet asked for by the search."""

    def log(self, line: str) -> None:
        """A progress line, where the search writes its own."""
        self._log(line)

    @property
    def runs(self) -> int:
        """Simulations run so far."""
        return len(self._cache)

    def close(self) -> None:
        """Stop the worker processes (runs started ahead and never asked for are dropped)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
            self._started.clear()

    def __enter__(self) -> Search:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _executor(self) -> ProcessPoolExecutor | None:
        if self.workers <= 1:
            return None
        if self._pool is None:
            # Forked, so the workers inherit the runner (and the traffic it holds) as it is:
            # nothing but a candidate and a seed crosses to them, an outcome back.
            self._pool = ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("fork"),
                initializer=_install,
                initargs=(self._runner,),
            )
        return self._pool

    def start(self, keys: Iterable[Key]) -> None:
        """Hand runs the search will ask for to the pool now (nothing without workers)."""
        pool = self._executor()
        if pool is None:
            return
        for key in keys:
            if key not in self._cache and key not in self._started:
                self._started[key] = pool.submit(_run, *key)

    def _result(self, key: Key) -> Outcome | None:
        started = self._started.pop(key, None)
        if started is None and self._executor() is not None:
            self.start([key])
            started = self._started.pop(key)
        return started.result() if started is not None else self._runner(*key)

    def outcome(self, candidate: Candidate, seeds: list[int]) -> Outcome | None:
        """Mean attainment and cost over `seeds` (each run once, then cached)."""
        self.start((candidate, seed) for seed in seeds)
        results = []
        for seed in seeds:
            key = (candidate, seed)
            if key not in self._cache:
                self._cache[key] = self._result(key)
                self._log(
                    f"tune: simulation {self.runs}, seed {seed}: {_describe(self._cache[key])}"
                )
            results.append(self._cache[key])
        if any(result is None for result in results):
            return None
        done = [result for result in results if result is not None]
        return Outcome(
            sum(r.attainment for r in done) / len(done),
            sum(r.monthly_usd for r in done) / len(done),
        )

    def evaluated(self, seeds: list[int]) -> list[Candidate]:
        """Candidates already run on every one of `seeds`."""
        have = {candidate for candidate, seed in self._cache if seed == seeds[0]}
        return sorted(c for c in have if all((c, s) in self._cache for s in seeds))

    def coordinate(
        self, start: Candidate, knobs: Mapping[str, Knob], level: float, passes: int
    ) -> Candidate:
        """Coordinate search on the first seed for the cheapest candidate meeting `level`."""
        current = start
        for number in range(passes):
            before = current
            for knob in knobs.values():
                current = self._line(current, knob, level)
            best = self.outcome(current, self.seeds[:1])
            self._log(
                f"tune: aiming at {level:.4%} on seed {self.seeds[0]}, pass {number + 1}: "
                f"{_describe(best)} ({self.runs} simulations)"
            )
            if current == before:
                break
        return current

    def _line(self, current: Candidate, knob: Knob, level: float) -> Candidate:
        options = [with_value(current, knob.name, value) for value in knob.values]
        first = self.seeds[:1]
        tried = [current]
        if knob.monotone:
            tried.append(self._bisect(options, level))
        else:
            self.start((option, first[0]) for option in options)
            tried.extend(options)
        return min(tried, key=lambda c: (rank(self.outcome(c, first), level), c != current))

    def _bisect(self, options: list[Candidate], level: float) -> Candidate:
        """The first option that meets `level` (options ordered by rising attainment), or the
        last when none does."""
        first = self.seeds[:1]
        low, high = 0, len(options) - 1
        # The last option and the first middle side by side: the middle is wanted whenever the
        # last meets the level, the usual case (it is the most generous value).
        self.start([(options[high], first[0]), (options[(low + high) // 2], first[0])])
        if rank(self.outcome(options[high], first), level)[0] != 0:
            return options[high]
        while low < high:
            middle = (low + high) // 2
            if rank(self.outcome(options[middle], first), level)[0] == 0:
                high = middle
            else:
                low = middle + 1
        return options[low]

    def climb(
        self,
        start: Candidate,
        orders: Sequence[Sequence[Knob]],
        levels: Sequence[float],
        passes: int,
        last: Sequence[Knob] = (),
    ) -> dict[float, list[Candidate]]:
        """Coordinate search per level, lowest first, once from `start` for each order of the
        knobs; then the `last` knobs from where each order got. Returns, per level, where each
        order got (before the `last` knobs).

        The coordinate search's answer depends on the order it visits the knobs in: a knob
        that only pays once another has moved (a larger batch that lets a lower floor meet the
        level) is kept where it is when the other comes first and has already bought the level
        at equal cost. Each order's path is searched; every run of every path competes in
        `halving` and `cheapest`, so the answer is at least as cheap as any one order's.
        Every level above the first moves only the monotone knobs (floors, targets), from where
        the level below got: that is where nines come from.
        """
        reached: dict[float, list[Candidate]] = {level: [] for level in levels}
        for order in orders:
            current = start
            for level in levels:
                knobs = _for_level(order, level == levels[0])
                current = self.coordinate(current, knobs, stricter(level), passes)
                reached[level].append(current)
        for level in levels:
            knobs = _for_level(last, level == levels[0])
            if knobs:
                for found in dict.fromkeys(reached[level]):
                    self.coordinate(found, knobs, stricter(level), passes)
        return reached

    def halving(
        self, level: float, keep: Candidate, shortlist: int = SHORTLIST
    ) -> Candidate | None:
        """The cheapest candidate meeting `level` on the mean of all seeds, after halving.

        `keep` (the stack as it is) is always on the shortlist, so the answer never costs more
        than a stack that already meets the level. `shortlist` candidates of seed 0's ranking
        go on (more when several search paths fed it). When none meets `level` on the mean,
        the next `shortlist` of the ranking gets its turn, once.
        """

        ranked = sorted(
            self.evaluated(self.seeds[:1]),
            key=lambda c: rank(self.outcome(c, self.seeds[:1]), level),
        )
        for turn in range(2):
            chosen = ranked[turn * shortlist : (turn + 1) * shortlist]
            if turn == 0 and keep not in chosen:
                chosen.append(keep)
            self._halve(chosen, level)
            if self.cheapest(level) is not None:
                break
        return self.cheapest(level)

    def _halve(self, shortlist: list[Candidate], level: float) -> None:
        rungs = sorted({1, math.ceil(len(self.seeds) / 2), len(self.seeds)})
        cut: list[tuple[Candidate, Outcome | None]] = []
        for index, size in enumerate(rungs[1:], start=1):
            seeds = self.seeds[:size]
            self.start((candidate, seed) for candidate in shortlist for seed in seeds)
            shortlist.sort(key=lambda c: rank(self.outcome(c, seeds), level))
            if index < len(rungs) - 1:
                keep = max(1, len(shortlist) // 2)
                cut = [(c, self.outcome(c, seeds)) for c in shortlist[keep:]]
                shortlist[:] = shortlist[:keep]
        # The better half went on by its rank on fewer seeds; those may miss the level on all of
        # them. A cut candidate that met it there for less than any that went on meets it on all
        # gets its turn, cheapest first, until one meets it: a wider shortlist never loses an
        # answer that a narrower one would have kept.
        for candidate, partial in cut:
            if partial is None or rank(partial, level)[0] != 0:
                break
            met = [
                o.monthly_usd
                for o in (self.outcome(c, self.seeds) for c in shortlist)
                if o is not None and rank(o, level)[0] == 0
            ]
            if met and partial.monthly_usd >= min(met):
                break
            shortlist.append(candidate)
            outcome = self.outcome(candidate, self.seeds)
            if outcome is not None and rank(outcome, level)[0] == 0:
                break

    def closest(self) -> Candidate | None:
        """The candidate with the highest attainment on the first seed (when nothing meets)."""
        first = self.seeds[:1]
        return min(
            self.evaluated(first), key=lambda c: rank(self.outcome(c, first), 1.0), default=None
        )

    def cheapest(self, level: float) -> Candidate | None:
        """Among candidates run on every seed, the cheapest whose mean meets `level`."""
        meeting = [
            candidate
            for candidate in self.evaluated(self.seeds)
            if rank(self.outcome(candidate, self.seeds), level)[0] == 0
        ]
        return min(meeting, key=lambda c: rank(self.outcome(c, self.seeds), level), default=None)


def _for_level(knobs: Sequence[Knob], first: bool) -> dict[str, Knob]:
    """Every knob at the first level, the monotone ones (where nines come from) above it."""
    return {knob.name: knob for knob in knobs if first or knob.monotone}


def _describe(outcome: Outcome | None) -> str:
    if outcome is None:
        return "refused by the spec"
    return f"{outcome.attainment:.3%} at ${outcome.monthly_usd:,.0f}/month"
