"""The worker's Prometheus series: backlog seen, messages in flight, messages by outcome."""

from __future__ import annotations

from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge

from inferstack.contract import metrics as names

OUTCOMES: Final = names.WORKER_OUTCOMES
"""Values of the worker messages counter's `outcome` label."""


class WorkerMetrics:
    """The worker's own series: backlog seen, messages in flight, messages by outcome."""

    def __init__(self, model: str, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        label = [names.MODEL_LABEL]
        self.backlog = Gauge(
            names.WORKER_BACKLOG,
            "Messages waiting in the queue, as last seen by this worker.",
            label,
            registry=self.registry,
        ).labels(model)
        self.in_flight = Gauge(
            names.WORKER_IN_FLIGHT,
            "Messages received and not yet acked, retried, released or dead-lettered.",
            label,
            registry=self.registry,
        ).labels(model)
        counter = Counter(
            names.WORKER_MESSAGES,
            "Messages by outcome.",
            [names.MODEL_LABEL, names.OUTCOME_LABEL],
            registry=self.registry,
        )
        self._messages = {outcome: counter.labels(model, outcome) for outcome in OUTCOMES}

    def count(self, outcome: str, amount: int = 1) -> None:
        """Count messages that ended with `outcome` (one of OUTCOMES)."""
        if amount:
            self._messages[outcome].inc(amount)

    def messages(self, outcome: str) -> float:
        """The current count for `outcome`."""
        return float(self._messages[outcome]._value.get())
