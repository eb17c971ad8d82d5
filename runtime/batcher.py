"""The dynamic batcher: many single requests in, few large model calls out.

Semantics follow Triton's dynamic batcher:
- a batch holds at most `max_batch_size` rows (a request may carry several rows);
- it is dispatched as soon as the queue can fill it, or form one of the `preferred_batch_sizes`
  exactly, or when its oldest request has waited `max_queue_delay_s`;
- the queue is bounded (`max_queue_size` requests): a full queue rejects at once;
- a request that waits longer than its timeout is rejected before it reaches the model;
- `instances` batches run at once, each on its own worker thread, never on the event loop.

A batch the model raises on is not failed whole (one caller's bad row would fail its
batch-mates): unless the failure is the machine's (`failures.transient`: out of memory, a dead
model process), the batch runs again in halves, and the halves that fail again are halved in
turn, down to single requests. Each request that fails alone gets `InputRejectedError` (its
input is at fault: a 4xx), every other one its result. Finding one bad request among n costs
about 2 log2(n) extra model calls; the re-runs are bounded by ISOLATION_BAD_REQUESTS (what is
still unresolved when they are spent fails with `ModelError`: that many bad inputs in one batch
says more about the model than about them).

Three parts, as in Ray Serve and LitServe: `submit` (non-blocking admission of a `_Pending`),
`_next_batch` (waits on an event for a full or preferred batch or the oldest request's
deadline: no polling) and `_run` (one batch off the event loop, then each caller's own result).
Time comes from a `Clock`, so tests drive deadlines by hand instead of sleeping.

A caller that goes away (its task is cancelled) is removed from the queue, or, when its batch
is already running, simply not answered: the other callers of that batch are unaffected.
"""

from __future__ import annotations

import asyncio
import enum
import math
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from typing_extensions import override

from inferstack.runtime.failures import summary, transient
from inferstack.runtime.metrics import RuntimeMetrics

Tensors = dict[str, np.ndarray]
PredictBatch = Callable[[Tensors], Mapping[str, np.ndarray]]

ISOLATION_BAD_REQUESTS = 2
"""How many bad requests per batch the isolation re-runs are sized to find: the batch is re-run
in parts at most 2 x this x ceil(log2(requests)) times (20 for a batch of 32 requests)."""


class BatcherError(Exception):
    """Base of the errors a caller of `submit` receives."""


class QueueFullError(BatcherError):
    """The queue holds `max_queue_size` requests: retry after `retry_after_s`."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class RequestTimeoutError(BatcherError):
    """The request waited longer than its timeout and never reached the model."""


class DrainingError(BatcherError):
    """The batcher stopped admitting requests (the server is draining or closed)."""


class BatchTooLargeError(BatcherError):
    """One request carries more rows than `max_batch_size`."""


class ModelError(BatcherError):
    """The model raised, or returned outputs that do not match its batch.

    When the model raised, `__cause__` is what it raised (`failures.transient` reads it).
    """


class ModelOutputError(ModelError):
    """The model's outputs do not match its batch: a bug in the model, every caller fails."""


class InputRejectedError(ModelError):
    """The model raised on this request run alone, while its batch-mates succeeded: the
    request's input is at fault (the server answers 422)."""


class TimerHandle(Protocol):
    """A scheduled callback that can be cancelled."""

    def cancel(self) -> None:
        """Do not run the callback (a no-op once it ran)."""


class Clock(Protocol):
    """The batcher's notion of time: `now` in seconds, and callbacks at a given time."""

    def now(self) -> float:
        """The current time in seconds, on a clock that never goes back."""

    def call_at(self, when: float, callback: Callable[[], None]) -> TimerHandle:
        """Run `callback` on the event loop once `now()` reaches `when`."""


class LoopClock(Clock):
    """`time.monotonic` with the running event loop's timers.

    Not `loop.time()`: uvloop's is millisecond-grained, too coarse for the latency histograms.
    """

    @override
    def now(self) -> float:
        return time.monotonic()

    @override
    def call_at(self, when: float, callback: Callable[[], None]) -> TimerHandle:
        return asyncio.get_running_loop().call_later(max(0.0, when - time.monotonic()), callback)


@dataclass(frozen=True)
class BatcherConfig:
    """The batching knobs, validated on construction."""

    max_batch_size: int = 32
    preferred_batch_sizes: tuple[int, ...] = ()
    max_queue_delay_s: float = 0.005
    max_queue_size: int = 1024
    request_timeout_s: float | None = None
    instances: int = 1

    def __post_init__(self) -> None:
        if self.max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {self.max_batch_size}")
        bad = [size for size in self.preferred_batch_sizes if not 1 <= size <= self.max_batch_size]
        if bad:
            raise ValueError(
                f"preferred_batch_sizes {bad} are outside 1..max_batch_size "
                f"({self.max_batch_size}); drop them or raise max_batch_size"
            )
        object.__setattr__(
            self, "preferred_batch_sizes", tuple(sorted(set(self.preferred_batch_sizes)))
        )
        if self.max_queue_delay_s < 0:
            raise ValueError(f"max_queue_delay_s must be >= 0, got {self.max_queue_delay_s}")
        if self.max_queue_size < 1:
            raise ValueError(f"max_queue_size must be at least 1, got {self.max_queue_size}")
        if self.request_timeout_s is not None and self.request_timeout_s <= 0:
            raise ValueError(
                f"request_timeout_s must be positive (or None for no timeout), "
                f"got {self.request_timeout_s}"
            )
        if self.instances < 1:
            raise ValueError(f"instances must be at least 1, got {self.instances}")

    @property
    def warm_up_sizes(self) -> tuple[int, ...]:
        """Batch sizes worth warming a model up at: 1, the preferred sizes and the maximum."""
        return tuple(sorted({1, *self.preferred_batch_sizes, self.max_batch_size}))


class _State(enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"


@dataclass(eq=False)
class _Pending:
    """One admitted request and the future its caller awaits."""

    inputs: Tensors
    rows: int
    key: tuple[object, ...]
    """Non-batch shapes and dtypes: only requests with equal keys can share a batch."""
    future: asyncio.Future[Tensors]
    enqueued_at: float
    deadline: float | None = None
    state: _State = _State.QUEUED
    finished: bool = False
    timer: TimerHandle | None = field(default=None, repr=False)


class DynamicBatcher:
    """Groups concurrent requests into batches for one model (see the module docstring).

    Use as `async with DynamicBatcher(model.predict_batch, config) as batcher:` or call
    `start()` and `close()`. `submit` returns the caller's own outputs or raises a
    `BatcherError`.
    """

    def __init__(
        self,
        predict_batch: PredictBatch,
        config: BatcherConfig | None = None,
        *,
        name: str = "model",
        metrics: RuntimeMetrics | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.config = config or BatcherConfig()
        self.name = name
        self.metrics = metrics
        self._predict = predict_batch
        self._clock: Clock = clock or LoopClock()
        self._queue: deque[_Pending] = deque()
        self._queued_rows = 0
        self._outstanding = 0
        self._busy = 0
        self._accepting = True
        self._stopping = False
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._tasks: list[asyncio.Task[None]] = []
        self._executor: ThreadPoolExecutor | None = None
        self._compute_ewma_s = 0.0
        # The queue-depth and in-flight gauges are read when /metrics is scraped instead of set
        # at every change (each set is a lock round trip, several per request, and a scrape
        # only sees the latest value), except in prometheus_client's multiprocess mode (the
        # front door's), where values live in files that only a set reaches.
        in_files = metrics is not None and metrics.multiprocess
        self._gauges = metrics if in_files else None
        """The metrics whose gauges are set at every change (multiprocess mode only)."""
        if metrics is not None and not in_files:
            metrics.queue_depth.set_function(lambda: len(self._queue))
            metrics.in_flight.set_function(lambda: self._outstanding)

    # Lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start one batch loop per model instance."""
        if self._tasks:
            return
        self._executor = ThreadPoolExecutor(
            max_workers=self.config.instances, thread_name_prefix=f"inferstack-{self.name}"
        )
        self._tasks = [
            asyncio.create_task(self._instance_loop(), name=f"batcher-{self.name}-{index}")
            for index in range(self.config.instances)
        ]

    async def __aenter__(self) -> DynamicBatcher:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    @property
    def accepting(self) -> bool:
        """False once draining began: new requests get DrainingError."""
        return self._accepting

    @property
    def queue_depth(self) -> int:
        """Requests waiting for a batch."""
        return len(self._queue)

    @property
    def outstanding(self) -> int:
        """Requests admitted and not yet answered."""
        return self._outstanding

    def stop_accepting(self) -> None:
        """Refuse new requests; dispatch what is queued without waiting for the delay."""
        self._accepting = False
        self._wake.set()

    async def drain(self) -> None:
        """Stop admitting and wait until every admitted request has been answered."""
        self.stop_accepting()
        await self._idle.wait()

    async def close(self) -> None:
        """Drain, then stop the batch loops and the worker threads."""
        await self.drain()
        self._stopping = True
        self._wake.set()
        if self._tasks:
            await asyncio.gather(*self._tasks)
            self._tasks = []
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    # Admission -----------------------------------------------------------------------------

    async def submit(self, inputs: Tensors, *, timeout_s: float | None = None) -> Tensors:
        """Queue one request and wait for its outputs (same row count as its inputs).

        `timeout_s` overrides the configured request timeout. Raises DrainingError,
        BatchTooLargeError, QueueFullError, RequestTimeoutError, InputRejectedError (the model
        fails on this request alone) or ModelError.
        """
        if not self._accepting:
            self._count("shed")
            raise DrainingError(f"model {self.name!r} is draining and accepts no new requests")
        rows, key = _describe(inputs)
        if rows > self.config.max_batch_size:
            self._count("invalid")
            raise BatchTooLargeError(
                f"the request has {rows} rows but max_batch_size is "
                f"{self.config.max_batch_size}; split it into smaller requests"
            )
        if len(self._queue) >= self.config.max_queue_size:
            self._count("shed")
            raise QueueFullError(
                f"model {self.name!r} queue is full ({self.config.max_queue_size} requests); "
                "retry later",
                self._retry_after_s(),
            )
        loop = asyncio.get_running_loop()
        now = self._clock.now()
        pending = _Pending(inputs, rows, key, loop.create_future(), now)
        timeout = timeout_s if timeout_s is not None else self.config.request_timeout_s
        if timeout is not None:
            pending.deadline = now + timeout
            pending.timer = self._clock.call_at(pending.deadline, lambda: self._expire(pending))
        self._queue.append(pending)
        self._queued_rows += rows
        self._admitted()
        self._wake.set()
        try:
            return await pending.future
        except asyncio.CancelledError:
            if pending.state is _State.QUEUED:
                self._unqueue(pending)
                self._finished(pending)
            self._count("cancelled")
            raise
        finally:
            if pending.timer is not None:
                pending.timer.cancel()

    def _expire(self, pending: _Pending) -> None:
        """The timeout fired: reject the request if it is still waiting."""
        if pending.state is not _State.QUEUED:
            return
        self._unqueue(pending)
        self._reject_timeout(pending)

    def _reject_timeout(self, pending: _Pending) -> None:
        waited_ms = (self._clock.now() - pending.enqueued_at) * 1000
        if not pending.future.done():
            pending.future.set_exception(
                RequestTimeoutError(
                    f"request to model {self.name!r} waited {waited_ms:.0f} ms in the queue and "
                    "timed out before reaching the model; retry, or raise the timeout"
                )
            )
            self._count("timeout")
        self._finished(pending)

    def _unqueue(self, pending: _Pending) -> None:
        self._queue.remove(pending)
        self._queued_rows -= pending.rows
        pending.state = _State.DONE
        self._gauge_queue()

    def retry_after_s(self) -> int:
        """Seconds a refused caller should wait: the queue ahead of it at the recent batch time."""
        return self._retry_after_s()

    def _retry_after_s(self) -> int:
        batches_ahead = self._queued_rows / self.config.max_batch_size / self.config.instances
        return max(1, math.ceil(batches_ahead * self._compute_ewma_s))

    # Batch formation -----------------------------------------------------------------------

    async def _instance_loop(self) -> None:
        while True:
            batch = await self._next_batch()
            if batch is None:
                return
            if batch:
                await self._run(batch)

    async def _next_batch(self) -> list[_Pending] | None:
        """Wait until a batch is due and take it; None when closing with nothing left."""
        while True:
            if not self._queue:
                if self._stopping:
                    return None
                self._wake.clear()
                await self._wake.wait()
                continue
            count, due = self._batch_plan()
            if due:
                return self._take(count)
            # Not due yet: wake on the next arrival or on the oldest request's deadline.
            deadline = self._queue[0].enqueued_at + self.config.max_queue_delay_s
            timer = self._clock.call_at(deadline, self._wake.set)
            self._wake.clear()
            try:
                await self._wake.wait()
            finally:
                timer.cancel()

    def _batch_plan(self) -> tuple[int, bool]:
        """How many queued requests the next batch takes, and whether it is due now."""
        limit = self.config.max_batch_size
        preferred = self.config.preferred_batch_sizes
        head_key = self._queue[0].key
        rows = 0
        count = 0
        best_preferred = 0
        can_grow = True
        for pending in self._queue:
            if pending.key != head_key or rows + pending.rows > limit:
                can_grow = False  # The batch is as large as it can get.
                break
            rows += pending.rows
            count += 1
            if rows in preferred:
                best_preferred = count
        if rows == limit or not can_grow or not self._accepting:
            return count, True
        if best_preferred:
            return best_preferred, True
        # Same expression as the timer's deadline, so a fired timer always finds the batch due.
        deadline = self._queue[0].enqueued_at + self.config.max_queue_delay_s
        return count, self._clock.now() >= deadline

    def _take(self, count: int) -> list[_Pending]:
        now = self._clock.now()
        batch: list[_Pending] = []
        for _ in range(count):
            pending = self._queue.popleft()
            self._queued_rows -= pending.rows
            if pending.future.done():  # Cancelled while its task had not yet run.
                pending.state = _State.DONE
                self._finished(pending)
                continue
            if pending.timer is not None:
                pending.timer.cancel()
            if pending.deadline is not None and now >= pending.deadline:
                # Stale: its timer is due but has not fired yet. Never spend the model on it.
                pending.state = _State.DONE
                self._reject_timeout(pending)
                continue
            pending.state = _State.RUNNING
            batch.append(pending)
            if self.metrics is not None:
                self.metrics.queue_wait.observe(now - pending.enqueued_at)
        self._gauge_queue()
        return batch

    # Execution -----------------------------------------------------------------------------

    async def _run(self, batch: list[_Pending]) -> None:
        self._set_busy(+1)
        try:
            failure = await self._attempt(batch)
            if failure is not None:
                await self._isolate(batch, failure)
        finally:
            self._set_busy(-1)

    async def _attempt(self, batch: list[_Pending]) -> Exception | None:
        """Run `batch` as one model call and answer its callers; when the model itself raised,
        answer nobody and return what it raised (the caller isolates the failure)."""
        live = [pending for pending in batch if not pending.future.done()]
        for gone in batch:
            if gone.future.done():  # Its caller went away: nothing to run it for.
                self._resolve(gone, None, None)
        if not live:
            return None
        rows = [pending.rows for pending in live]
        if self.metrics is not None:  # Sent to the model, whether or not it then raises.
            self.metrics.batch_size.observe(sum(rows))
        loop = asyncio.get_running_loop()
        try:
            results, compute_s = await loop.run_in_executor(
                self._executor, self._compute, [pending.inputs for pending in live], rows
            )
        except ModelOutputError as error:  # Whatever the inputs, the model broke its contract.
            for pending in live:
                self._resolve(pending, None, error)
            return None
        except Exception as error:
            return error
        previous = self._compute_ewma_s
        self._compute_ewma_s = compute_s if not previous else 0.8 * previous + 0.2 * compute_s
        if self.metrics is not None:
            self.metrics.compute.observe(compute_s)
        for pending, result in zip(live, results, strict=True):
            self._resolve(pending, result, None)
        return None

    async def _isolate(self, batch: list[_Pending], error: Exception) -> None:
        """The model raised on `batch`: find the requests that fail alone (see the module
        docstring); answer them InputRejectedError and the others their results."""
        if transient(error):
            self._fail_all(batch, error)
            return
        runs = 2 * ISOLATION_BAD_REQUESTS * max(1, math.ceil(math.log2(max(2, len(batch)))))
        failing: list[tuple[list[_Pending], Exception]] = [(batch, error)]
        while failing:
            group, failure = failing.pop()
            if transient(failure):
                self._fail_all(group, failure)
            elif len(group) == 1:
                self._resolve(group[0], None, self._rejected(group[0], failure))
            elif runs < 2:
                self._fail_all(group, failure, isolated=False)
            else:
                middle = len(group) // 2
                for part in (group[middle:], group[:middle]):
                    runs -= 1
                    again = await self._attempt(part)
                    if again is not None:
                        failing.append((part, again))

    def _fail_all(self, batch: list[_Pending], error: Exception, *, isolated: bool = True) -> None:
        """Fail every caller of `batch` with one ModelError whose cause is `error`."""
        rows = sum(pending.rows for pending in batch)
        if isinstance(error, ModelError):
            failure: ModelError = error
        else:
            where = (
                f"a batch of {rows} rows"
                if isolated
                else f"a batch of {rows} rows and on its parts, more often than "
                f"{ISOLATION_BAD_REQUESTS} bad requests explain"
            )
            failure = ModelError(f"model {self.name!r} failed on {where}: {summary(error)}")
            failure.__cause__ = error  # Callers may tell a crashed model from a raising one.
        for pending in batch:
            self._resolve(pending, None, failure)

    def _rejected(self, pending: _Pending, error: Exception) -> InputRejectedError:
        names = ", ".join(repr(name) for name in pending.inputs)
        rows = "its row" if pending.rows == 1 else f"its {pending.rows} rows"
        rejected = InputRejectedError(
            f"model {self.name!r} rejected this request's input {names} ({rows}): "
            f"{summary(error)}; the model fails on this input alone, so check its values "
            "against what the model accepts (e.g. token ids within the vocabulary)"
        )
        rejected.__cause__ = error
        return rejected

    def _compute(
        self, items: Sequence[Tensors], rows: Sequence[int]
    ) -> tuple[list[Tensors], float]:
        """On a worker thread: concatenate, predict, check, split. Returns per-request outputs."""
        names = list(items[0])
        merged = (
            dict(items[0])
            if len(items) == 1
            else {name: np.concatenate([item[name] for item in items]) for name in names}
        )
        started = time.perf_counter()
        outputs = self._predict(merged)
        compute_s = time.perf_counter() - started
        total = sum(rows)
        if not isinstance(outputs, Mapping) or not outputs:
            raise ModelOutputError(
                f"model {self.name!r} returned {type(outputs).__name__}; predict_batch must "
                "return a non-empty dict of output name to array"
            )
        arrays: dict[str, np.ndarray] = {}
        for name, value in outputs.items():
            array = np.asarray(value)
            got = array.shape[0] if array.ndim else None
            if got != total:
                raise ModelOutputError(
                    f"model {self.name!r} returned {got if got is not None else 'a scalar'} rows "
                    f"for output {name!r} but the batch had {total} input rows; predict_batch "
                    "must return one output row per input row, in order"
                )
            arrays[name] = array
        if len(items) == 1:
            return [arrays], compute_s
        bounds = np.cumsum(rows)[:-1]
        split = {name: np.split(array, bounds) for name, array in arrays.items()}
        return [
            {name: parts[index] for name, parts in split.items()} for index in range(len(items))
        ], compute_s

    def _resolve(
        self, pending: _Pending, result: Tensors | None, error: BaseException | None
    ) -> None:
        pending.state = _State.DONE
        if not pending.future.done():
            if error is not None:
                pending.future.set_exception(error)
                self._count("invalid" if isinstance(error, InputRejectedError) else "failed")
            else:
                assert result is not None
                pending.future.set_result(result)
                self._count("success")
                if self.metrics is not None:
                    self.metrics.request_latency.observe(self._clock.now() - pending.enqueued_at)
        self._finished(pending)

    # Bookkeeping ---------------------------------------------------------------------------

    def _admitted(self) -> None:
        self._outstanding += 1
        self._idle.clear()
        self._gauge_queue()
        if self._gauges is not None:
            self._gauges.in_flight.inc()

    def _finished(self, pending: _Pending) -> None:
        # Idempotent per request: a request can end by timeout, cancellation or result.
        if pending.finished:
            return
        pending.finished = True
        self._outstanding -= 1
        if self._gauges is not None:
            self._gauges.in_flight.dec()
        if self._outstanding == 0:
            self._idle.set()

    def _set_busy(self, delta: int) -> None:
        self._busy += delta
        if self.metrics is not None:
            self.metrics.busy_instances.set(self._busy)

    def _gauge_queue(self) -> None:
        """The queue changed (a hook: the front door publishes the depth to its acceptors)."""
        if self._gauges is not None:
            self._gauges.queue_depth.set(len(self._queue))

    def _count(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.count(outcome)


def _describe(inputs: Mapping[str, np.ndarray]) -> tuple[int, tuple[object, ...]]:
    """Row count and batching key of a request's inputs; ValueError if they disagree."""
    if len(inputs) == 1:  # The common case, without the general path's dict and set.
        ((name, array),) = inputs.items()
        if array.ndim:
            return int(array.shape[0]), ((name, array.shape[1:], array.dtype.str),)
    if not inputs:
        raise ValueError("a request needs at least one input tensor")
    rows = {name: (array.shape[0] if array.ndim else None) for name, array in inputs.items()}
    counts = set(rows.values())
    if None in counts or len(counts) != 1:
        raise ValueError(
            f"every input needs the same batch dimension first, got rows {rows}; "
            "send [rows, ...] shaped tensors"
        )
    key = tuple((name, array.shape[1:], array.dtype.str) for name, array in inputs.items())
    return int(next(iter(counts))), key  # type: ignore[arg-type]
