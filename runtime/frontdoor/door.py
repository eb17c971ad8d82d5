"""The front door's model side: N acceptor processes, one batcher, one model.

`inferstack serve --acceptors N` (N > 1) runs this in the server's main process. It starts the
acceptors (`acceptor.py`; each serves HTTP, and gRPC once the model is warm, on the same ports
with SO_REUSEPORT), then loads and warms the model as one process does, and runs the one
`DynamicBatcher` that every acceptor's decoded rows go to over its link (`wire.py`). A batch can
hold rows from several acceptors; each row goes back to the acceptor, and the caller, it came
from (the link carries request ids).

Admission stays global: the batcher publishes its queue depth, Retry-After and whether it
accepts to shared memory (`SharedState`) that every acceptor reads at header time, and the
batcher's own bound at submit stays the last word.

Drain (SIGTERM or SIGINT here; the acceptors ignore both): the shared drain flag and a `drain`
message turn every acceptor unready and make every answer close its connection; for
`drain_listen_s` inference is still served; then the batcher stops accepting (every acceptor
refuses with 503) and everything admitted completes within `drain_grace_s`; then each acceptor
is told to `close` (stop listening, finish answers) and exits. A second signal closes at once.
An acceptor or a model process that dies drains the rest and exits 1, for a restart.

Copies of a tensor beyond one process's (per request, each way): the decoder's array into
the socket and out of it into the model side's buffer, which the batch concatenation then reads
as it read the decoder's array; results the same way back. No tensor byte is pickled. A
shared-memory ring would save the socket's two copies but not the batch's, and a request whose
caller leaves while its batch runs would need the model side to say when its rows are no longer
read before the acceptor may reuse them; it is not built.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import multiprocessing
import signal
import socket
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from typing import Any, Final

import numpy as np
from typing_extensions import override

from inferstack.runtime.batcher import DynamicBatcher, Tensors
from inferstack.runtime.frontdoor.acceptor import (
    CLOSE,
    DRAIN,
    FAILED,
    LISTENING,
    READY,
    acceptor_main,
)
from inferstack.runtime.frontdoor.remote import (
    CANCEL,
    ERROR,
    INFER,
    RESULT,
    RemoteSignature,
    describe,
)
from inferstack.runtime.frontdoor.shared import MetricsFolder, SharedState
from inferstack.runtime.frontdoor.wire import Link, open_link, pack_arrays, unpack_arrays
from inferstack.runtime.metrics import RuntimeMetrics
from inferstack.runtime.model_process import ProcessModel
from inferstack.runtime.models import LoadedModel, model_name_from_uri
from inferstack.runtime.server.lifecycle import (
    HTTP_CLOSE_GRACE_S,
    guarded_predict,
    open_served_model,
)
from inferstack.runtime.server.routes import ModelUnavailableError
from inferstack.runtime.server.settings import ServerSettings
from inferstack.runtime.tensors import max_request_bytes

log = logging.getLogger("inferstack.runtime.frontdoor")

START_TIMEOUT_S: Final = 120.0
"""How long the acceptors get to import and listen."""
EXIT_TIMEOUT_S: Final = 10.0
"""After its close grace, how long an acceptor gets to exit before it is killed."""


class PublishingBatcher(DynamicBatcher):
    """The batcher, publishing its queue and admission to every acceptor (`SharedState`)."""

    def __init__(self, *args: Any, shared: SharedState, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._shared = shared

    @override
    def _gauge_queue(self) -> None:
        super()._gauge_queue()
        self._shared.publish_queue(self.queue_depth, self.retry_after_s())

    @override
    def stop_accepting(self) -> None:
        self._shared.stop_accepting()
        super().stop_accepting()


class _Acceptor:
    """The model side's handle on one acceptor process: its link and its requests."""

    def __init__(self, index: int, process: BaseProcess) -> None:
        self.index = index
        self.process = process
        self.link: Link | None = None
        self.pid = 0
        self.listening: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self.requests: dict[int, asyncio.Task[None]] = {}
        self.closing = False


class FrontDoor:
    """The server's main process with N acceptors (see the module docstring)."""

    def __init__(self, settings: ServerSettings, acceptors: int) -> None:
        self.settings = settings
        self.count = acceptors
        self.model_name = settings.model_name or model_name_from_uri(settings.model)
        self.metrics_folder = MetricsFolder()
        # The folder switched prometheus_client to its files: the acceptors' /metrics sum them.
        self.metrics = RuntimeMetrics(self.model_name, multiprocess=True)
        self.shared = SharedState()
        self.acceptors: list[_Acceptor] = []
        self.batcher: PublishingBatcher | None = None
        self._model: LoadedModel | None = None
        self._model_lost = False
        self._stop = asyncio.Event()
        self._drain_task: asyncio.Task[None] | None = None
        self._signals = 0
        self.exit_code = 0

    async def serve(self) -> int:
        """Start the acceptors, load the model, serve until drained. Returns the exit code."""
        _check_free(self.settings.host, self.settings.port)
        if self.settings.grpc_port:
            _check_free(self.settings.host, self.settings.grpc_port)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._on_signal)
        try:
            await self._start_acceptors()
            await self._load()
            await self._stop.wait()
            grace = HTTP_CLOSE_GRACE_S if self._signals < 2 else 0.0
            await self._close_acceptors(grace)
            if self.batcher is not None and self._signals < 2:
                await self.batcher.close()
        finally:
            await self._close_acceptors(0.0)
            self._close_model()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
            self.metrics_folder.remove()
        return self.exit_code

    # Acceptors -------------------------------------------------------------------------------

    async def _start_acceptors(self) -> None:
        """Spawn the acceptors and wait until each listens; OSError naming the first failure."""
        context = multiprocessing.get_context("spawn")
        for index in range(self.count):
            ours, theirs = socket.socketpair()
            process = context.Process(
                target=acceptor_main,
                args=(self.settings, index, self.count, theirs, self.shared),
                name=f"inferstack-acceptor-{index}",
                daemon=True,
            )
            process.start()
            theirs.close()
            acceptor = _Acceptor(index, process)
            acceptor.link = await open_link(
                ours, self._receiver(acceptor), functools.partial(self._lost, acceptor)
            )
            self.acceptors.append(acceptor)
        results = await asyncio.wait_for(
            asyncio.gather(*(a.listening for a in self.acceptors)), START_TIMEOUT_S
        )
        failures = [failure for failure in results if failure is not None]
        if failures:
            raise OSError(failures[0])
        log.info(
            "%d acceptors listening on %s:%d (pids %s)",
            self.count,
            self.settings.host,
            self.settings.port,
            ", ".join(str(a.pid) for a in self.acceptors),
        )

    def _receiver(self, acceptor: _Acceptor) -> Callable[[Any, bytearray], None]:
        def received(header: Any, payload: bytearray) -> None:
            kind = header[0]
            if kind == INFER:
                _, request_id, layout, pickled, timeout_s = header
                inputs = unpack_arrays(layout, pickled, payload)
                task = asyncio.get_running_loop().create_task(
                    self._infer(acceptor, request_id, inputs, timeout_s)
                )
                acceptor.requests[request_id] = task
            elif kind == CANCEL:
                cancelled = acceptor.requests.get(header[1])
                if cancelled is not None:
                    cancelled.cancel()
            elif kind == LISTENING and not acceptor.listening.done():
                acceptor.pid = int(header[1])
                acceptor.listening.set_result(None)
            elif kind == FAILED and not acceptor.listening.done():
                acceptor.listening.set_result(str(header[1]))

        return received

    async def _infer(
        self, acceptor: _Acceptor, request_id: int, inputs: Tensors, timeout_s: float | None
    ) -> None:
        link = acceptor.link
        try:
            if self.batcher is None:
                raise ModelUnavailableError(f"model {self.model_name!r} is still loading")
            outputs = await self.batcher.submit(inputs, timeout_s=timeout_s)
        except asyncio.CancelledError:
            return  # The caller went away; the acceptor expects no answer.
        except Exception as error:
            if link is not None:
                link.send((ERROR, request_id, *describe(error)))
        else:
            if link is not None:
                layout, pickled, buffers = pack_arrays(outputs)
                link.send((RESULT, request_id, layout, pickled), buffers)
        finally:
            acceptor.requests.pop(request_id, None)

    def _lost(self, acceptor: _Acceptor) -> None:
        for task in acceptor.requests.values():
            task.cancel()
        if not acceptor.listening.done():
            acceptor.listening.set_result(f"acceptor {acceptor.index} exited while starting")
            return
        if acceptor.closing:
            return
        log.error(
            "acceptor %d exited unexpectedly; draining and exiting with code 1", acceptor.index
        )
        self.exit_code = 1
        if self._drain_task is None:
            self._drain_task = asyncio.get_running_loop().create_task(self.drain())

    def _tell_all(self, header: tuple[object, ...]) -> None:
        for acceptor in self.acceptors:
            if acceptor.link is not None:
                acceptor.link.send(header)

    async def _close_acceptors(self, grace_s: float) -> None:
        """Tell every acceptor to close within `grace_s`; wait for them; kill the stragglers."""
        for acceptor in self.acceptors:
            if not acceptor.closing and acceptor.link is not None:
                acceptor.closing = True
                acceptor.link.send((CLOSE, grace_s))
        for acceptor in self.acceptors:
            process = acceptor.process
            await asyncio.to_thread(process.join, grace_s + EXIT_TIMEOUT_S)
            if process.exitcode is None:
                log.error("acceptor %d did not exit; killing it", acceptor.index)
                process.kill()
                await asyncio.to_thread(process.join)
            if process.exitcode not in (0, None) and self._signals < 2 and not self._model_lost:
                self.exit_code = self.exit_code or 1
            if acceptor.pid:
                self.metrics_folder.process_ended(acceptor.pid)
                acceptor.pid = 0
            if acceptor.link is not None:
                acceptor.link.close()

    # The model -------------------------------------------------------------------------------

    async def _load(self) -> None:
        settings = self.settings
        opened = await asyncio.to_thread(open_served_model, settings, self.model_name)
        model = opened.model
        if isinstance(model, ProcessModel):
            model.watch(self._model_process_ended)
        self._model = model
        if self._stop.is_set() or self._drain_task is not None:
            return  # Told to stop while loading: never turn ready.
        config = settings.batcher_config()
        batcher = PublishingBatcher(
            self._guarded(model),
            config,
            name=self.model_name,
            metrics=self.metrics,
            shared=self.shared,
        )
        await batcher.start()
        self.batcher = batcher
        gc.collect()
        gc.freeze()  # As in one process: gen-2 passes no longer walk what lives as long as it.
        limit = max_request_bytes(model.inputs, config.max_batch_size, settings.max_request_bytes)
        signature = RemoteSignature(
            model.name, list(model.inputs), list(model.outputs), model.platform
        )
        device_kind = "gpu" if opened.device.startswith("cuda") else "cpu"
        self._tell_all((READY, signature, config, limit, device_kind))
        log.info(
            "model %s (%s) ready behind %d acceptors: load %.2fs, warm-up %.2fs, device %s, %s",
            self.model_name,
            settings.model,
            self.count,
            opened.load_s,
            opened.warm_up_s,
            opened.device,
            opened.graph.describe(),
        )

    def _guarded(self, model: LoadedModel) -> Callable[[Tensors], dict[str, np.ndarray]]:
        return guarded_predict(model, self.model_name, lambda: self._model_lost)

    def _model_process_ended(self) -> None:
        log.error("a model process exited unexpectedly; draining and exiting with code 1")
        self.exit_code = 1
        self._model_lost = True
        if self.batcher is not None:
            self.batcher.stop_accepting()
        if self._drain_task is None:
            self._drain_task = asyncio.get_running_loop().create_task(self.drain())

    def _close_model(self) -> None:
        if isinstance(self._model, ProcessModel):
            self._model.unwatch()
        if self._model is not None:
            self._model.close(timeout_s=0 if self._signals > 1 else None)

    # Drain -----------------------------------------------------------------------------------

    def _on_signal(self) -> None:
        self._signals += 1
        if self._signals > 1:
            log.warning("second signal: stopping without waiting for admitted requests")
            self.exit_code = 1
            self._stop.set()
        elif self._drain_task is None:
            self._drain_task = asyncio.get_running_loop().create_task(self.drain())

    async def drain(self) -> None:
        """Every acceptor unready, serving through the listen window; then refuse new work and
        finish admitted work within the grace (as `InferenceServer.drain`)."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        self.shared.begin_drain()
        self._tell_all((DRAIN,))
        grace = self.settings.drain_grace_s
        if not self._model_lost:
            await asyncio.sleep(min(self.settings.drain_listen_s, grace))
        grace = max(0.0, grace - (loop.time() - started))
        batcher = self.batcher
        if batcher is not None:
            log.info("draining: %d requests outstanding, grace %.0fs", batcher.outstanding, grace)
            try:
                await asyncio.wait_for(batcher.drain(), timeout=grace)
            except TimeoutError:
                log.error(
                    "drain grace of %.0fs ran out with %d requests unanswered",
                    grace,
                    batcher.outstanding,
                )
                self.exit_code = 1
            else:
                log.info("drained: every admitted request was answered")
        self._stop.set()


def _check_free(host: str, port: int) -> None:
    """OSError when something listens on `port` already: the acceptors' SO_REUSEPORT would
    otherwise share it silently with another server of the same user."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise OSError(f"cannot listen on {host}:{port}: {error}") from None


__all__ = ["FrontDoor", "PublishingBatcher"]
