"""The batcher's and the HTTP layer's Prometheus metrics, for the server and the worker alike.

Names and labels come from `inferstack.contract.metrics`, which the components' PromQL reads
too. Every series carries the `model` label. Each `RuntimeMetrics` has a `CollectorRegistry` of
its own unless it is given one (the worker shares one with its `WorkerMetrics`, behind one
`/metrics`): that keeps tests and several batchers in one process independent, and keeps the
default registry's process collectors out of the way.

`multiprocess` says whether the values go to prometheus_client's multiprocess files, summed by
another process's `/metrics` (the front door's, `runtime/frontdoor/`): whoever switches
prometheus_client to its files (`frontdoor.shared.MetricsFolder`) creates the metrics with it.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from inferstack.contract import metrics as names

# The `_created` series double the exposition and no query here uses them.
disable_created_metrics()  # type: ignore[no-untyped-call]

OUTCOMES: Final = names.REQUEST_OUTCOMES
"""Values of the `outcome` label of the requests counter."""

# Latency buckets from 0.5 ms to 10 s: GPU batches take milliseconds, CPU batches tens of ms.
LATENCY_BUCKETS: Final = (
    0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075,
    0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
BATCH_BUCKETS: Final = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)

_SUMMED: Final = "livesum"
"""How a gauge adds up over processes in prometheus_client's multiprocess mode (the front
door's acceptors, `runtime/frontdoor/`): the sum over live processes, so `/metrics` shows one
series per gauge as in one process. Ignored outside multiprocess mode."""

CONTENT_TYPE: Final = CONTENT_TYPE_LATEST
"""Content-Type of the text exposition format."""


class RuntimeMetrics:
    """The metrics of one served model: what the batcher observes and `/metrics` exposes."""

    def __init__(
        self, model: str, registry: CollectorRegistry | None = None, *, multiprocess: bool = False
    ) -> None:
        self.model = model
        self.registry = registry if registry is not None else CollectorRegistry()
        self._multiprocess = multiprocess
        label = [names.MODEL_LABEL]
        self.queue_depth = Gauge(
            names.QUEUE_DEPTH,
            "Requests waiting for a batch slot.",
            label,
            registry=self.registry,
            multiprocess_mode=_SUMMED,
        ).labels(model)
        self.in_flight = Gauge(
            names.IN_FLIGHT,
            "Requests admitted and not yet answered (waiting plus computing).",
            label,
            registry=self.registry,
            multiprocess_mode=_SUMMED,
        ).labels(model)
        self.busy_instances = Gauge(
            names.BUSY_INSTANCES,
            "Model instances currently running a batch.",
            label,
            registry=self.registry,
            multiprocess_mode=_SUMMED,
        ).labels(model)
        self.open_connections = Gauge(
            names.OPEN_CONNECTIONS,
            "Client connections the HTTP layer holds open.",
            label,
            registry=self.registry,
            multiprocess_mode=_SUMMED,
        ).labels(model)
        refusals = Counter(
            names.HTTP_REFUSALS,
            "Connections or requests the HTTP layer refused itself, by reason.",
            [names.MODEL_LABEL, names.REASON_LABEL],
            registry=self.registry,
        )
        self._refusals = {reason: refusals.labels(model, reason) for reason in names.HTTP_REASONS}
        requests = Counter(
            names.REQUESTS,
            "Requests by outcome.",
            [names.MODEL_LABEL, names.OUTCOME_LABEL],
            registry=self.registry,
        )
        # Children created up front so every outcome is exported from the start at 0, which
        # makes rate() queries well-defined before the first failure.
        self._requests = {outcome: requests.labels(model, outcome) for outcome in OUTCOMES}
        self.batch_size = Histogram(
            names.BATCH_SIZE,
            "Rows per batch sent to the model.",
            label,
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        ).labels(model)
        self.queue_wait = Histogram(
            names.QUEUE_WAIT_SECONDS,
            "Time from admission to the start of the request's batch.",
            label,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        ).labels(model)
        self.compute = Histogram(
            names.COMPUTE_SECONDS,
            "Model time of one batch.",
            label,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        ).labels(model)
        self.request_latency = Histogram(
            names.REQUEST_SECONDS,
            "Time from admission to answer, per request.",
            label,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        ).labels(model)

    @property
    def multiprocess(self) -> bool:
        """Whether these metrics live in prometheus_client's multiprocess files, which another
        process's `/metrics` sums: a gauge must then be set at every change (a `set_function`
        gauge never reaches the files). False: this registry's own exposition reads them."""
        return self._multiprocess

    def count(self, outcome: str, amount: int = 1) -> None:
        """Count requests that ended with `outcome` (one of OUTCOMES)."""
        self._requests[outcome].inc(amount)

    def refuse(self, reason: str) -> None:
        """Count one refusal of the HTTP layer (`reason` one of HTTP_REASONS)."""
        self._refusals[reason].inc()

    def refusals(self, reason: str) -> float:
        """The current count for `reason` (for tests)."""
        return float(self._refusals[reason]._value.get())

    def requests(self, outcome: str) -> float:
        """The current count for `outcome` (for tests and the drain log)."""
        return float(self._requests[outcome]._value.get())

    def exposition(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
