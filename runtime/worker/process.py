"""The queue worker process: open what the settings name, consume until drained, close.

`WorkerProcess` is the worker's counterpart of the server's `InferenceServer`
(`server/lifecycle.py`); the consume loop itself is `loop.Worker`.

Start-up: SIGTERM and SIGINT are noted from the first instant, because loading torch takes
seconds and the default action would kill the process uncleanly; then the queue and the result
store open, then the model loads and warms up, then the health and metrics port opens (it answers
503 until the loop first runs) and the spot metadata watcher is built.

Drain: every reason to stop becomes a `Notice` with a deadline, and the loop keeps what fits
before it and releases the rest (see `loop.py`):
- the first SIGTERM or SIGINT: `sigterm_grace_s` from now (what the pod's grace period leaves);
- a second one: `drain_margin_s` from now, so the loop releases what it holds at once;
- a spot interruption or rebalance notice from the metadata watcher: the cloud's deadline;
- a model process that died and cannot be restarted: now. Every batch would fail and spend its
  messages' attempts, so what is held is released and the process exits 1 for the pod to
  restart. A model process that died during a batch is restarted in place, and that batch's
  messages run again one at a time (`isolation.py`), so that only the one that kills the model
  is charged for it.
A signal that arrived while the model was loading is acted on as soon as the loop runs.

Stop: the watcher, the health port, the queue, the store and the model are closed in that order.
The exit code is 0 once drained, 1 when a model process died and could not be restarted.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from types import FrameType

from prometheus_client import CollectorRegistry

from inferstack.contract.pods import METRICS_PATH, WORKER_HEALTH_PATH
from inferstack.runtime.metrics import RuntimeMetrics
from inferstack.runtime.model_process import ProcessModel
from inferstack.runtime.models import (
    LoadedModel,
    ModelLoadError,
    configure_gil_switch_interval,
    open_model,
    resolve_device,
)
from inferstack.runtime.queues import QueueConfigError, QueueConsumer, open_queue
from inferstack.runtime.redaction import redact_uri
from inferstack.runtime.results import ResultStore, ResultStoreConfigError, open_result_store
from inferstack.runtime.worker.health import WorkerHttpServer
from inferstack.runtime.worker.interruption import (
    InterruptionWatcher,
    MetadataEndpoints,
    MetadataPoller,
    Notice,
    resolve_endpoints,
)
from inferstack.runtime.worker.loop import Worker
from inferstack.runtime.worker.metrics import WorkerMetrics
from inferstack.runtime.worker.settings import WorkerSettings

logger = logging.getLogger("inferstack.worker")

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class WorkerStartError(Exception):
    """The queue, result store or model the settings name cannot be opened (exit code 2)."""


class WorkerProcess:
    """One queue worker, from opening its queue, store and model to a drained exit.

    `run()` does it all and returns the exit code; `open()`, `consume()` and `close()` are its
    three steps (see the module docstring).
    """

    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self.exit_code = 0
        self._signals = 0
        self._early_signals: list[int] = []
        self._queue: QueueConsumer | None = None
        self._store: ResultStore | None = None
        self._model: LoadedModel | None = None
        self._worker: Worker | None = None
        self._http: WorkerHttpServer | None = None
        self._watcher: InterruptionWatcher | None = None

    def run(self) -> int:
        """Open, consume until drained, close; the exit code. Raises WorkerStartError."""
        for signum in _SIGNALS:
            signal.signal(signum, self._note_early_signal)
        try:
            self.open()
            asyncio.run(self.consume())
        finally:
            self.close()
        return self.exit_code

    @property
    def worker(self) -> Worker:
        """The consume loop; exists once `open()` returned."""
        if self._worker is None:
            raise RuntimeError("the worker process is not open; call open() first")
        return self._worker

    # Start-up ------------------------------------------------------------------------------

    def open(self) -> None:
        """Open the queue, the result store and the model, the health port and the watcher."""
        settings = self.settings
        try:
            if settings.device != "auto":
                resolve_device(settings.device)  # Before a queue is touched: one clear line.
        except ModelLoadError as error:
            raise WorkerStartError(str(error)) from error
        try:
            endpoints = resolve_endpoints(
                settings.interruption, aws=settings.aws_metadata_url, gcp=settings.gcp_metadata_url
            )
            self._queue = open_queue(
                settings.queue, lease_s=settings.lease_s, max_attempts=settings.max_attempts
            )
            self._store = open_result_store(settings.results_uri())
        except (QueueConfigError, ResultStoreConfigError, ValueError) as error:
            raise WorkerStartError(str(error)) from error
        self._model = self._load_model()
        registry = CollectorRegistry()
        model = self._model
        self._worker = Worker(
            self._queue,
            self._store,
            model,
            settings,
            metrics=WorkerMetrics(model.name, registry),
            runtime_metrics=RuntimeMetrics(model.name, registry),
            revive_model=model.restart_dead if isinstance(model, ProcessModel) else None,
        )
        if settings.metrics_port:
            self._open_http(registry)
        self._watcher = InterruptionWatcher(
            MetadataPoller(
                endpoints,
                watch_rebalance=settings.watch_rebalance,
                rebalance_drain_s=settings.rebalance_drain_s,
            ),
            self._worker.interrupt,
            interval_s=settings.metadata_poll_s,
        )
        self._log_start(endpoints)

    def _load_model(self) -> LoadedModel:
        settings = self.settings
        configure_gil_switch_interval(settings.gil_switch_interval_us)
        try:
            opened = open_model(
                settings.model,
                name=settings.model_name,
                device=settings.device,
                threads=settings.resolved_torch_threads(),
                warm_up_sizes=settings.batcher_config().warm_up_sizes,
                instances=settings.instances,
                model_process=settings.model_process,
                sha256=settings.model_sha256,
                cache_dir=settings.model_cache,
                optimize=settings.optimize,
            )
        except ModelLoadError as error:
            raise WorkerStartError(str(error)) from error
        logger.info("model %s: %s", opened.model.name, opened.graph.describe())
        return opened.model

    def _open_http(self, registry: CollectorRegistry) -> None:
        self._http = WorkerHttpServer(self.settings.metrics_port, registry, self.worker.health)
        self._http.start()
        port = self._http.port
        logger.info(
            "metrics on :%d%s, health on :%d%s", port, METRICS_PATH, port, WORKER_HEALTH_PATH
        )

    def _log_start(self, endpoints: MetadataEndpoints) -> None:
        logger.info(
            "working %s with model %s into %s (interruption watch: aws=%s gcp=%s)",
            redact_uri(self.settings.queue),
            self.worker.model.name,
            self.worker.store.uri,
            endpoints.aws or "off",
            endpoints.gcp or "off",
        )

    # Consuming -----------------------------------------------------------------------------

    async def consume(self) -> None:
        """Run the consume loop until it stopped and settled everything it held."""
        worker = self.worker
        loop = asyncio.get_running_loop()
        for signum in _SIGNALS:
            loop.add_signal_handler(signum, self._on_signal, signum)
        for early in self._early_signals:
            self._on_signal(early)
        watcher = self._watcher
        if watcher is not None:
            watcher.start()
        try:
            await worker.run()
        finally:
            if watcher is not None:
                watcher.stop()
        if worker.model_lost:
            self.exit_code = 1

    def _note_early_signal(self, signum: int, _frame: FrameType | None) -> None:
        """Before the loop runs: remember the signal; `consume` acts on it."""
        self._early_signals.append(signum)

    def _on_signal(self, signum: int) -> None:
        """The first signal drains within `sigterm_grace_s`; a second one means now."""
        self._signals += 1
        settings = self.settings
        grace = settings.sigterm_grace_s if self._signals == 1 else settings.drain_margin_s
        name = signal.Signals(signum).name.lower()
        self.worker.interrupt(Notice(name, time.monotonic() + grace, f"signal {self._signals}"))

    # Stop ----------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the health port, the queue, the store and the model: whatever was opened."""
        if self._http is not None:
            self._http.close()
        if self._queue is not None:
            self._queue.close()
        if self._store is not None:
            self._store.close()
        if self._model is not None:
            self._model.close()
