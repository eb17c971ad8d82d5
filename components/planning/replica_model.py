"""One realtime replica's steady state at a given rate: the batcher model the targets come from.

`target_per_replica: auto` must be what a replica's gauge reads when it carries the sized rate:
the HPA holds the pool where the per-replica average equals the target, so any other number
sizes the pool for another load (one full batch of queue depth is reached only at 96-97% of
capacity with preferred size 16). This module answers "what does the gauge read at r rps".

Where the model lives, and why here: the simulator's batcher kernel
(`inferstack.offline.simulate.replica`) is numpy/numba code, the components may not import
`inferstack.offline`, and the infra extra that deploys has no numpy. So the same rules are
written once more here in plain Python, small enough to read against the kernel line by line:
- a free model instance takes a batch when the queue holds `max_batch_size` requests or the
  smallest preferred size (then the largest preferred size it can fill), or when the oldest
  request has waited `max_queue_delay`; `instances` batches compute at once;
- an arrival finding `queue_limit` requests waiting is refused;
- batch compute at size b is log-normal with the profile's p50 and p99 at b (linear between
  measured sizes, per-item time of the largest size beyond it), so it matches both percentiles.
Arrivals are Poisson at the rate; one seeded run of `MODEL_REQUESTS` requests after a warm-up.
The mean queue depth and in-flight count follow from Little's law (rate x mean wait, rate x mean
time in the replica), which is exact for a steady state and needs no sampling of the gauges.
tests/components/test_replica_model.py holds it within 5% of the kernel's own table
(`fast.build_table`) at 30-90% load, so the plan and the simulator agree on one steady state.
Request timeouts are left out: at a sized load no request waits near one.
"""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass
from functools import lru_cache

Z99 = 2.3263478740408408
"""The standard normal's 0.99 quantile."""
MODEL_REQUESTS = 40_000
"""Requests per run (a third of a second in plain Python): the dev stack's mean queue depth is
11.1 against 10.8 on a ten times longer run, in-flight 26.4 against 26.1 (within 3%)."""
WARMUP_REQUESTS = 4_000
"""Requests run before counting starts, so the empty start does not count."""
MODEL_SEED = 20_261_207


@dataclass(frozen=True)
class BatcherRules:
    """The batching knobs one replica runs with (the spec's `batching`)."""

    max_batch_size: int
    preferred_batch_sizes: tuple[int, ...]
    max_queue_delay_s: float
    queue_limit: int
    instances: int

    @property
    def preferred(self) -> tuple[int, ...]:
        """The preferred sizes a batch can have, smallest first."""
        return tuple(sorted(s for s in self.preferred_batch_sizes if s <= self.max_batch_size))

    @property
    def due_count(self) -> int:
        """Queue length at which a batch is due at once: the smallest preferred size, or full."""
        return min([*self.preferred, self.max_batch_size])

    def take(self, waiting: int) -> int:
        """How many of `waiting` requests the next batch takes."""
        if waiting >= self.max_batch_size:
            return self.max_batch_size
        fits = [s for s in self.preferred if s <= waiting]
        return fits[-1] if fits else waiting


@dataclass(frozen=True)
class ComputeLaw:
    """Measured batch compute: p50 and p99 seconds per measured batch size, sizes ascending."""

    sizes: tuple[int, ...]
    p50_s: tuple[float, ...]
    p99_s: tuple[float, ...]

    def _at(self, values: tuple[float, ...], size: int) -> float:
        sizes = self.sizes
        if size >= sizes[-1]:
            return values[-1] * size / sizes[-1]
        if size <= sizes[0]:
            return values[0]
        upper = next(i for i, s in enumerate(sizes) if s >= size)
        low, high = sizes[upper - 1], sizes[upper]
        share = (size - low) / (high - low)
        return values[upper - 1] + share * (values[upper] - values[upper - 1])

    def median_sigma(self, size: int) -> tuple[float, float]:
        """Median and log-sigma of a batch of `size`: the log-normal through its p50 and p99."""
        median = self._at(self.p50_s, size)
        p99 = max(self._at(self.p99_s, size), median)
        return median, math.log(p99 / median) / Z99

    def throughput(self, size: int, instances: int = 1) -> float:
        """Items per second at batch `size` (mean compute time of the log-normal)."""
        median, sigma = self.median_sigma(size)
        return size * instances / (median * math.exp(sigma**2 / 2))


@dataclass(frozen=True)
class SteadyState:
    """What one replica's gauges read, on average, at `rate_rps`."""

    rate_rps: float
    queue_depth: float
    """Requests waiting for a batch (the runtime's queue-depth gauge)."""
    in_flight: float
    """Requests admitted and not answered: waiting plus computing."""
    refused_share: float


@dataclass
class _Run:
    """The event loop's state: the queue of arrival times and each instance's next free time."""

    rules: BatcherRules
    law: ComputeLaw
    rng: random.Random
    queue: deque[float]
    free: list[float]
    waited: float = 0.0
    stayed: float = 0.0
    counted: int = 0
    refused: int = 0

    def due(self) -> tuple[float, int]:
        """When the next batch leaves and on which instance (inf while nothing waits)."""
        if not self.queue:
            return math.inf, 0
        k = min(range(len(self.free)), key=self.free.__getitem__)
        oldest = self.queue[0] + self.rules.max_queue_delay_s
        if len(self.queue) >= self.rules.due_count:
            return max(self.free[k], min(self.queue[self.rules.due_count - 1], oldest)), k
        return max(self.free[k], oldest), k

    def dispatch(self, when: float, instance: int, counting: bool) -> None:
        """Send the next batch to `instance` at `when` and charge its requests' times."""
        size = self.rules.take(len(self.queue))
        median, sigma = self.law.median_sigma(size)
        finish = when + median * math.exp(sigma * self.rng.gauss(0.0, 1.0))
        self.free[instance] = finish
        for _ in range(size):
            arrived = self.queue.popleft()
            if counting:
                self.waited += when - arrived
                self.stayed += finish - arrived
                self.counted += 1

    def arrive(self, when: float, counting: bool) -> None:
        """Admit an arrival, or refuse it when the queue is full."""
        if len(self.queue) >= self.rules.queue_limit:
            self.refused += int(counting)
        else:
            self.queue.append(when)


def _run(rules: BatcherRules, law: ComputeLaw, rate: float) -> _Run:
    rng = random.Random(MODEL_SEED)
    run = _Run(rules, law, rng, deque(), [0.0] * rules.instances)
    now = 0.0
    for index in range(WARMUP_REQUESTS + MODEL_REQUESTS):
        now += rng.expovariate(rate)
        counting = index >= WARMUP_REQUESTS
        due, instance = run.due()
        while due <= now:
            run.dispatch(due, instance, counting)
            due, instance = run.due()
        run.arrive(now, counting)
    return run


@lru_cache(maxsize=64)
def steady_state(rules: BatcherRules, law: ComputeLaw, rate_rps: float) -> SteadyState:
    """The mean gauges of one replica carrying `rate_rps` (Poisson arrivals), from the model.

    A request still queued when the run ends is left out: a sliver of a steady-state run.
    """
    if rate_rps <= 0:
        return SteadyState(rate_rps, 0.0, 0.0, 0.0)
    run = _run(rules, law, rate_rps)
    served = max(run.counted, 1)
    admitted = rate_rps * (1 - run.refused / (served + run.refused))
    return SteadyState(
        rate_rps=rate_rps,
        queue_depth=admitted * run.waited / served,
        in_flight=admitted * run.stayed / served,
        refused_share=run.refused / (served + run.refused),
    )


__all__ = ["BatcherRules", "ComputeLaw", "SteadyState", "steady_state"]
