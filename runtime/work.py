"""`inferstack work`: the command line of the queue worker (`worker.py` is the loop itself).

Resolves the settings (flags, `INFERSTACK_<SETTING>` environment variables or `--config`, in that
precedence), configures logging, opens the queue, the result store and the model, serves
`/metrics` and the health path on the metrics port (`worker_http.py`), watches the spot metadata
services and the signals, and runs the worker until it stopped. The exit code: 0 when drained,
1 when a model process died, 2 on bad settings.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
import time
from typing import Any, Final

from prometheus_client import CollectorRegistry

from inferstack.contract.pods import METRICS_PATH, WORKER_HEALTH_PATH
from inferstack.runtime.interruption import (
    InterruptionWatcher,
    MetadataPoller,
    Notice,
    resolve_endpoints,
)
from inferstack.runtime.layered_settings import SettingsError, add_setting_flags
from inferstack.runtime.metrics import RuntimeMetrics
from inferstack.runtime.worker import Worker
from inferstack.runtime.worker_http import WorkerHttpServer
from inferstack.runtime.worker_metrics import WorkerMetrics
from inferstack.runtime.worker_settings import FIELDS, WorkerSettings, resolve_settings

logger = logging.getLogger("inferstack.worker")

_HELP: Final = {
    "queue": "queue URI: sqs://<url or name>, pubsub://projects/P/subscriptions/S, "
    "redis://HOST:PORT/DB?stream=NAME",
    "model": "model URI: builtin://mlp, a TorchScript .pt, a torch.export .pt2 or module:Class",
    "results": "result store URI: file:///DIR, redis://HOST:PORT/DB, s3://BUCKET/PREFIX, "
    "gs://BUCKET/PREFIX (default file://$PWD/results)",
    "interruption": "watch the spot metadata services: auto (on the cloud or when a URL is "
    "set), on, off",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags for every setting; each defaults to the environment, then the config file."""
    add_setting_flags(parser, WorkerSettings, _HELP)


class _JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the record's `extra` fields."""

    _BUILTIN: Final = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message"}

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in self._BUILTIN:
                document[key] = value
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, default=str)


def _configure_logging(settings: WorkerSettings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_format == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    # Client libraries log every request at debug; keep ours readable.
    for noisy in ("botocore", "boto3", "urllib3", "google", "grpc", "redis", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.INFO, root.level))


def run(args: argparse.Namespace) -> int:
    """Resolve the settings, open queue, store and model, and work until stopped."""
    flags = {name: getattr(args, name) for name in FIELDS}
    try:
        settings = resolve_settings(flags, config_file=args.config)
    except SettingsError as error:
        sys.stderr.write(f"inferstack work: {error}\n")
        return 2
    _configure_logging(settings)
    return run_worker(settings)


def run_worker(settings: WorkerSettings) -> int:
    """Open everything `settings` names and run the worker; the process exit code."""
    # Signals that arrive while torch loads (seconds) must not kill the process uncleanly: note
    # them now, act on them once the loop runs (the worker then exits at once, holding nothing).
    early_signals: list[int] = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda received, _frame: early_signals.append(received))

    from inferstack.runtime.model_process import ProcessModel
    from inferstack.runtime.models import (
        LoadedModel,
        ModelLoadError,
        configure_gil_switch_interval,
        open_model,
    )
    from inferstack.runtime.queues import QueueConfigError, open_queue
    from inferstack.runtime.results import ResultStoreConfigError, open_result_store

    try:
        endpoints = resolve_endpoints(
            settings.interruption, aws=settings.aws_metadata_url, gcp=settings.gcp_metadata_url
        )
        queue = open_queue(
            settings.queue, lease_s=settings.lease_s, max_attempts=settings.max_attempts
        )
        store = open_result_store(settings.results_uri())
    except (QueueConfigError, ResultStoreConfigError, ValueError) as error:
        sys.stderr.write(f"inferstack work: {error}\n")
        return 2
    configure_gil_switch_interval(settings.gil_switch_interval_us)
    model: LoadedModel
    try:
        model = open_model(
            settings.model,
            name=settings.model_name,
            device=settings.device,
            threads=settings.resolved_torch_threads(),
            warm_up_sizes=settings.batcher_config().warm_up_sizes,
            instances=settings.instances,
            model_process=settings.model_process,
        ).model
    except ModelLoadError as error:
        sys.stderr.write(f"inferstack work: {error}\n")
        return 2
    registry = CollectorRegistry()
    worker = Worker(
        queue,
        store,
        model,
        settings,
        metrics=WorkerMetrics(model.name, registry),
        runtime_metrics=RuntimeMetrics(model.name, registry),
    )
    http: WorkerHttpServer | None = None
    if settings.metrics_port:
        http = WorkerHttpServer(settings.metrics_port, registry, worker.health)
        http.start()
        logger.info(
            "metrics on :%d%s, health on :%d%s",
            http.port,
            METRICS_PATH,
            http.port,
            WORKER_HEALTH_PATH,
        )
    watcher = InterruptionWatcher(
        MetadataPoller(
            endpoints,
            watch_rebalance=settings.watch_rebalance,
            rebalance_drain_s=settings.rebalance_drain_s,
        ),
        worker.interrupt,
        interval_s=settings.metadata_poll_s,
    )
    logger.info(
        "working %s with model %s into %s (interruption watch: aws=%s gcp=%s)",
        settings.queue,
        model.name,
        store.uri,
        endpoints.aws or "off",
        endpoints.gcp or "off",
    )

    async def main() -> None:
        loop = asyncio.get_running_loop()
        signals = 0

        def on_signal(signum: int) -> None:
            nonlocal signals
            signals += 1
            # The first signal starts the grace period; a second one means "now".
            grace = settings.sigterm_grace_s if signals == 1 else settings.drain_margin_s
            name = signal.Signals(signum).name.lower()
            worker.interrupt(Notice(name, time.monotonic() + grace, f"signal {signals}"))

        def on_model_exit() -> None:
            model_died.append(True)
            # Every batch from now on would fail and burn the messages' attempts: release
            # what is held at once and exit 1, so that the pod restarts with a fresh model.
            logger.error("a model process exited unexpectedly; releasing held messages")
            worker.interrupt(Notice("model-exit", time.monotonic(), "the model process exited"))

        for handled in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(handled, on_signal, handled)
        for early in early_signals:
            on_signal(early)
        if isinstance(model, ProcessModel):
            model.watch(on_model_exit)
        watcher.start()
        try:
            await worker.run()
        finally:
            watcher.stop()
            if isinstance(model, ProcessModel):
                model.unwatch()

    model_died: list[bool] = []
    try:
        asyncio.run(main())
    finally:
        if http is not None:
            http.close()
        queue.close()
        store.close()
        model.close()
    return 1 if model_died else 0
