"""The inference server process: start-up, serving and graceful drain of one model.

`InferenceServer` runs the routes (`routes.py`) behind the HTTP layer (`http.py`) on uvloop
(asyncio when uvloop is absent); the queue worker's counterpart is `worker/process.py`.

Start-up: the port opens first (so liveness answers while a large model loads), the model loads
and warms up in its own process (`model_process.py`; or on a thread of this one with
`model_process: false`), then readiness turns true.

Drain, on SIGTERM or SIGINT, within `drain_grace_s`; no request sent on an open connection goes
unanswered:
1. readiness turns false and every answer carries `Connection: close`; for `drain_listen_s`
   (the endpoint-removal window: clients still learning that the pod is going) the port keeps
   accepting and inference is still served;
2. then new inference requests get 503 with Retry-After, and everything admitted completes;
3. then the port closes; connections finish their answer, idle ones close on their idle timer
   (closing them at once would race with a request a client is sending on one).
A second signal stops at once.

A model process that dies ends the replica the same way, minus the serving: the batch that was
in it and every other request get 503 with Retry-After, and the exit code is 1.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from inferstack.runtime.batcher import DynamicBatcher
from inferstack.runtime.grpc import GrpcLimits, GrpcServer
from inferstack.runtime.metrics import RuntimeMetrics
from inferstack.runtime.model_process import CpuPlan, ProcessModel, own_cpus, pin_process
from inferstack.runtime.models import (
    LoadedModel,
    OpenedModel,
    configure_gil_switch_interval,
    model_name_from_uri,
    open_model,
)
from inferstack.runtime.redaction import RedactingFormatter
from inferstack.runtime.server.http import HttpLimits, HttpServer
from inferstack.runtime.server.routes import ModelUnavailableError, ServedModel
from inferstack.runtime.server.sagemaker import app_for
from inferstack.runtime.server.settings import ServerSettings
from inferstack.runtime.settings import cpu_budget
from inferstack.runtime.tensors import FALLBACK_MAX_REQUEST_BYTES, max_request_bytes

log = logging.getLogger("inferstack.runtime")

HTTP_CLOSE_GRACE_S = HttpLimits.keep_alive_s + 1.0
"""After the drain, how long open connections get to finish writing and idle ones to reach
their idle timeout, before what is left is dropped."""


def http_limits(settings: ServerSettings) -> HttpLimits:
    """The HTTP layer's limits before the model's signature is known (its body limit then)."""
    return HttpLimits(
        max_request_bytes=settings.max_request_bytes or FALLBACK_MAX_REQUEST_BYTES,
        max_body_bytes_in_flight=settings.body_budget(FALLBACK_MAX_REQUEST_BYTES),
        header_timeout_s=settings.header_timeout_s,
        min_body_rate=settings.min_body_rate,
        max_connections=settings.max_connections,
    )


def model_cpu_plan(settings: ServerSettings) -> CpuPlan | None:
    """Where the model processes and the server run with `model_cpus: own`; None: shared.

    Pinning needs CPUs that are this pod's alone: with a cgroup quota smaller than the affinity
    mask (a CPU limit on a node whose CPUs others share), the kernel must stay free to move the
    processes, so nothing is pinned (logged).
    """
    if settings.model_cpus != "own":
        return None
    available = sorted(os.sched_getaffinity(0))
    if cpu_budget() < len(available):
        log.warning(
            "model_cpus own: the cgroup CPU quota (%d) is below the %d CPUs of the affinity "
            "mask, so they are not this process's alone; not pinning",
            cpu_budget(),
            len(available),
        )
        return None
    plan = own_cpus(available, settings.instances, settings.resolved_torch_threads())
    if plan is None:
        log.warning(
            "model_cpus own: %d model processes of %d torch threads leave the server none of "
            "the %d CPUs; not pinning (lower torch_threads or instances)",
            settings.instances,
            settings.resolved_torch_threads(),
            len(available),
        )
    return plan


def open_served_model(
    settings: ServerSettings, name: str, plan: CpuPlan | None = None
) -> OpenedModel:
    """Load and warm the model as the settings say (blocking: run it off the event loop);
    `plan`: the CPUs of each model process (`model_cpu_plan`)."""
    return open_model(
        settings.model,
        name=name,
        device=settings.device,
        threads=settings.resolved_torch_threads(),
        warm_up_sizes=settings.batcher_config().warm_up_sizes,
        instances=settings.instances,
        model_process=settings.model_process,
        sha256=settings.model_sha256,
        cache_dir=settings.model_cache,
        cpus=plan.model if plan is not None else (),
        optimize=settings.optimize,
    )


class InferenceServer:
    """One served model behind the v2 HTTP API, from start-up to drained exit."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.model_name = settings.model_name or model_name_from_uri(settings.model)
        self.metrics = RuntimeMetrics(self.model_name)
        self.app = app_for(settings, self.model_name, self.metrics)
        self.http = HttpServer(self.app, http_limits(settings))
        self.grpc = GrpcServer(self.app)
        self._model_lost = False
        self._drain_task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._signals = 0
        self._model: LoadedModel | None = None
        self.exit_code = 0

    async def serve(self) -> int:
        """Open the port, load and warm the model, serve until drained. Returns the exit code."""
        settings = self.settings
        await self.http.start(settings.host, settings.port)
        log.info("listening on %s:%d", settings.host, self.http.port)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._on_signal)
        try:
            try:
                await self._load()
                await self._open_grpc()
            except BaseException:
                await self.http.close(grace_s=0)
                raise
            await self._stop.wait()
            if self._drain_task is not None and self._signals < 2:
                await self._drain_task
            await self.http.close(grace_s=HTTP_CLOSE_GRACE_S if self._signals < 2 else 0)
            await self.grpc.close(grace_s=HTTP_CLOSE_GRACE_S if self._signals < 2 else 0)
            served = self.app.served
            if served is not None and self._signals < 2:
                await served.batcher.close()
        finally:
            await self.grpc.close(grace_s=0)  # Start-up failed after it opened, or a no-op.
            self.app.decoder.close()
            self._close_model()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
        return self.exit_code

    async def _load(self) -> None:
        settings = self.settings
        threads = settings.resolved_torch_threads()
        config = settings.batcher_config()
        sizes = config.warm_up_sizes
        configure_gil_switch_interval(settings.gil_switch_interval_us)
        plan = model_cpu_plan(settings)
        opened = await asyncio.to_thread(open_served_model, settings, self.model_name, plan)
        if plan is not None:
            # After the load: the model processes pinned themselves; helpers started from now
            # on (the large-body decoder) inherit the server's CPUs.
            pin_process(plan.server)
            log.info("model processes on CPUs %s, server on %s", list(plan.model), plan.server)
        model, device = opened.model, opened.device
        load_s, warm_up_s = opened.load_s, opened.warm_up_s
        if isinstance(model, ProcessModel):
            model.watch(self._model_process_ended)
        self._model = model
        if self._stop.is_set() or self._drain_task is not None:
            return  # Told to stop while loading: never turn ready.
        limit = max_request_bytes(model.inputs, config.max_batch_size, settings.max_request_bytes)
        self.http.limits = replace(
            self.http.limits,
            max_request_bytes=limit,
            max_body_bytes_in_flight=settings.body_budget(limit),
        )
        batcher = DynamicBatcher(
            self._guarded(model), config, name=self.model_name, metrics=self.metrics
        )
        await batcher.start()
        # What is loaded by now (torch, the model, the codecs) lives as long as the process: out
        # of the collector's generations, a full collection no longer walks it. Without this,
        # gen-2 collections paused the event loop 15 to 60 ms under load, the largest part of
        # the p99 the simulator cannot model (benchmarks/simulate_fidelity.py).
        gc.collect()
        gc.freeze()
        self.app.served = ServedModel(
            model, batcher, self.metrics, "gpu" if device.startswith("cuda") else "cpu"
        )
        log.info(
            "model %s (%s) ready on %s:%d: load %.2fs, warm-up %.2fs at batch sizes %s, "
            "device %s, %d torch threads, %d %s, request bodies up to %d bytes, %s",
            self.model_name,
            settings.model,
            settings.host,
            settings.port,
            load_s,
            warm_up_s,
            list(sizes),
            device,
            threads,
            settings.instances,
            "model processes" if settings.model_process else "model threads",
            limit,
            opened.graph.describe(),
        )

    async def _open_grpc(self) -> None:
        """Open the gRPC port once the model is ready: its message limit is the model's."""
        limits = self.http.limits
        if self.settings.grpc_port and self.app.ready:
            await self.grpc.start(
                self.settings.host,
                self.settings.grpc_port,
                GrpcLimits.for_model(
                    limits.max_request_bytes,
                    limits.max_body_bytes_in_flight,
                    self.settings.max_queue_size,
                    limits.max_connections,
                ),
            )

    def _guarded(
        self, model: LoadedModel
    ) -> Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]:
        return guarded_predict(model, self.model_name, lambda: self._model_lost)

    def _model_process_ended(self) -> None:
        # Requests routed to it fail with 503 from now on; a restart is the only cure.
        log.error("a model process exited unexpectedly; draining and exiting with code 1")
        self.exit_code = 1
        self._model_lost = True
        if self.app.served is not None:
            self.app.served.batcher.stop_accepting()
        if self._drain_task is None:
            self._drain_task = asyncio.create_task(self.drain(), name="drain")

    def _close_model(self) -> None:
        if isinstance(self._model, ProcessModel):
            self._model.unwatch()
        if self._model is not None:
            # After a second signal nothing may wait on a model that is still mid-batch.
            self._model.close(timeout_s=0 if self._signals > 1 else None)

    def _on_signal(self) -> None:
        """First SIGTERM/SIGINT: drain. A second one: stop at once."""
        self._signals += 1
        if self._signals > 1:
            log.warning("second signal: stopping without waiting for admitted requests")
            self.exit_code = 1
            self._stop.set()
        elif self._drain_task is None:
            self._drain_task = asyncio.create_task(self.drain(), name="drain")

    async def drain(self) -> None:
        """Turn unready and close connections after their answers; keep serving through the
        listen window; then refuse new work and finish admitted work within the grace."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        self.app.draining = True
        self.http.begin_drain()
        grace = self.settings.drain_grace_s
        if not self._model_lost:
            await asyncio.sleep(min(self.settings.drain_listen_s, grace))
        grace = max(0.0, grace - (loop.time() - started))
        served = self.app.served
        if served is not None:
            log.info(
                "draining: %d requests outstanding, grace %.0fs", served.batcher.outstanding, grace
            )
            try:
                await asyncio.wait_for(served.batcher.drain(), timeout=grace)
            except TimeoutError:
                log.error(
                    "drain grace of %.0fs ran out with %d requests unanswered",
                    grace,
                    served.batcher.outstanding,
                )
                self.exit_code = 1
            else:
                log.info("drained: every admitted request was answered")
        self._stop.set()


def configure_logging(settings: ServerSettings) -> None:
    """Log lines at the settings' level, with passwords in URIs redacted."""
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for handler in logging.getLogger().handlers:  # URIs in log lines may carry passwords.
        handler.setFormatter(RedactingFormatter(handler.formatter or logging.Formatter()))


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when it is installed, else None (asyncio's)."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run_server(settings: ServerSettings) -> int:
    """Run the server to completion on uvloop (asyncio when uvloop is absent); with several
    acceptors, the front door (`runtime/frontdoor/`) instead of one process."""
    configure_logging(settings)
    loop_factory = event_loop_factory()
    acceptors = settings.resolved_acceptors()
    if acceptors > 1:
        from inferstack.runtime.frontdoor.door import FrontDoor

        door = FrontDoor(settings, acceptors)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            return runner.run(door.serve())
    server = InferenceServer(settings)
    # SIGTERM before the loop runs would kill the process with no drain; nothing is admitted yet.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(server.serve())


def guarded_predict(
    model: LoadedModel, model_name: str, lost: Callable[[], bool]
) -> Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]:
    """`model.predict_batch`, refusing with ModelUnavailableError once a model process is gone.

    Checked on the batch thread before each batch: the batch that was in the process when it
    died fails on its own; the ones behind it never reach it (both 503, retry elsewhere).
    `lost`: whether the server has already seen a model process end.
    """
    processes = model if isinstance(model, ProcessModel) else None

    def predict(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if lost() or (
            processes is not None and any(code is not None for code in processes.exit_codes)
        ):
            raise ModelUnavailableError(
                f"the model process of {model_name!r} exited and this replica is "
                "restarting; retry on another replica"
            )
        return model.predict_batch(inputs)

    return predict
