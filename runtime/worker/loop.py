"""The queue worker's consume loop: each message through the model into the result store, acked.

The contract, per message (at-least-once):
1. received in a batch of up to `max_batch_size`, its lease kept alive while it is worked;
2. skipped straight to the ack when its result already exists (a redelivery);
3. decoded as a KServe v2 request: one that cannot be decoded, for whatever reason (or is
   larger than a batch), can never succeed, so it alone is dead-lettered at once with the
   reason, and the rest of its batch goes on; so is one the queue delivered more than
   `max_attempts` times (its native count: SQS ApproximateReceiveCount, Pub/Sub
   delivery_attempt, the Redis pending entry's delivery count), because no earlier attempt
   finished: a message that kills the worker or its model process is never worked again;
4. run through the dynamic batcher together with everything else in flight (a batch the model
   raises on is re-run in parts there, so only a message that fails alone fails: its
   batch-mates go on);
5. its result (the v2 response plus `message_id`) written to the result store, write-once;
6. acked only after that write returned. A failure (model error, store outage, including one
   found by step 2's lookup) is retried with exponential backoff until the queue's dead-letter
   policy says the attempts are spent, then dead-lettered with the reason.

On an interruption notice (spot instance-action, rebalance, GCE preemption, a signal, a model
process that died and could not be restarted) the worker stops pulling, keeps the batches that
its measured batch time says fit before the notice deadline minus a margin, releases the rest
at once (visibility 0 / ack deadline 0 / claimable), releases whatever is still unfinished at
the deadline, and `run()` returns. A SIGKILL loses nothing either: unacked messages come back
when their lease expires, and results are write-once. The loop also stops on `stop()`, or once
the queue stayed empty for `exit_when_idle_s`.

This module is the loop alone, with its clock injected so that tests decide time; the process
around it (opening queue, store and model, signals, the health port, the metadata watcher) is
`process.py`, and the command line `command.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from inferstack.runtime.batcher import (
    BatchTooLargeError,
    DrainingError,
    DynamicBatcher,
)
from inferstack.runtime.metrics import RuntimeMetrics
from inferstack.runtime.model_process import ModelProcessDiedError
from inferstack.runtime.protocol import (
    InferRequest,
    ProtocolError,
    RequestedOutput,
    Signature,
    decode_checked,
    encode_response,
)
from inferstack.runtime.protocol.large_bodies import (
    LARGE_BODY_BYTES,
    DecoderUnavailableError,
    LargeBodyDecoder,
)
from inferstack.runtime.queues import Message, QueueConsumer
from inferstack.runtime.redaction import redact_text
from inferstack.runtime.tensors import max_request_bytes
from inferstack.runtime.worker.health import Health
from inferstack.runtime.worker.interruption import Notice
from inferstack.runtime.worker.isolation import ModelGate, killed_the_model
from inferstack.runtime.worker.metrics import OUTCOMES, WorkerMetrics
from inferstack.runtime.worker.settings import WorkerSettings

logger = logging.getLogger("inferstack.worker")

# The worker ----------------------------------------------------------------------------------


@dataclass(eq=False)
class _Batch:
    """One pulled batch: the messages not yet settled (acked, retried, released, dead-lettered)."""

    number: int
    unsettled: dict[int, Message]
    started: float
    task: asyncio.Task[None] | None = None
    messages: list[Message] = field(default_factory=list)
    cancelled: bool = False

    def cancel(self) -> None:
        """Stop working this batch; its unsettled messages are released (once)."""
        # Only once: a second cancel would land in the release and skip its bookkeeping.
        if self.task is not None and not self.cancelled:
            self.cancelled = True
            self.task.cancel()


class _ModelLostError(Exception):
    """The model's dead processes could not be restarted."""


@dataclass(frozen=True)
class _Failure:
    message: Message
    reason: str
    permanent: bool


class Worker:
    """The consume-infer-store-ack loop for one queue and one model (see the module docstring).

    `run()` returns once the worker stopped (interruption, `stop()` or idle exit) and every
    message it held is settled. `interrupt()` is safe to call from any thread. `clock` is
    the clock of `Notice.deadline` (monotonic seconds); tests pass their own.

    `revive_model` restarts the model's dead processes (blocking; `ProcessModel.restart_dead`):
    given, a batch whose model process died is run again one message at a time
    (`isolation.py`); when it raises, the model is lost: `model_lost` is set and the worker
    drains at once, releasing what it holds. Without it a died batch is an ordinary failure.
    """

    def __init__(
        self,
        queue: QueueConsumer,
        store: Any,
        model: Any,
        settings: WorkerSettings,
        *,
        metrics: WorkerMetrics | None = None,
        runtime_metrics: RuntimeMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        revive_model: Callable[[], object] | None = None,
    ) -> None:
        self.queue = queue
        self.store = store
        self.model = model
        self.settings = settings
        self.metrics = metrics or WorkerMetrics(model.name)
        self.runtime_metrics = runtime_metrics
        self.clock = clock
        self.notice: Notice | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._slot_free: asyncio.Event | None = None
        self._batches: dict[int, _Batch] = {}
        self._next_number = 0
        self._batch_s_ewma = 0.0
        self._deadline_timer: asyncio.TimerHandle | None = None
        self._drain_by = float("inf")
        self._batcher: DynamicBatcher | None = None
        self._state = "starting"
        self._beat_at: float | None = None
        self.max_message_bytes = max_request_bytes(
            model.inputs, settings.max_batch_size, settings.max_message_bytes
        )
        """Larger messages are dead-lettered before decoding: decoding one costs memory and
        event-loop time in proportion to its size, and no message larger can be a valid request."""
        self._decoder = LargeBodyDecoder()
        self._gate = ModelGate(model.predict_batch)
        self._revive_model = revive_model
        self._recovery: asyncio.Lock | None = None
        self.model_lost = False
        """The model's process died and could not be restarted: the worker stopped for it."""

    # Control -------------------------------------------------------------------------------

    def interrupt(self, notice: Notice) -> None:
        """Begin draining for `notice` (thread-safe; the earliest deadline wins)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            self.notice = notice
            return
        with contextlib.suppress(RuntimeError):  # The loop closed meanwhile: nothing to drain.
            loop.call_soon_threadsafe(self._on_notice, notice)

    def stop(self) -> None:
        """Stop pulling and finish what is held, without a deadline (thread-safe)."""
        self.interrupt(Notice("stop", float("inf"), "stop requested"))

    @property
    def held(self) -> int:
        """Messages received and not yet settled."""
        return sum(len(batch.unsettled) for batch in self._batches.values())

    @property
    def health_bound_s(self) -> float:
        """How long the loop may go without a beat and still count as alive.

        The pull loop beats around every receive, which long-polls for `poll_wait_s` and may
        take up to a lease more on a slow queue; while it waits for a free batch slot, the lease
        heartbeat (every `lease_s / 3`) beats for it as long as messages are held.
        """
        return self.settings.poll_wait_s + self.settings.lease_s

    def health(self) -> Health:
        """The consume loop's health (thread-safe: read by the HTTP thread)."""
        beat_at, state = self._beat_at, self._state
        age = None if beat_at is None else max(0.0, self.clock() - beat_at)
        bound = self.health_bound_s
        if state in ("consuming", "draining") and (age is None or age > bound):
            state = "stale"
        return Health(state in ("consuming", "draining"), state, age, bound, self.held)

    def _beat(self) -> None:
        self._beat_at = self.clock()

    # Main loop -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Consume until stopped, then settle everything held (see the class docstring)."""
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self._slot_free = asyncio.Event()
        self._recovery = asyncio.Lock()
        if self.notice is not None:
            self._on_notice(self.notice)
        batcher = DynamicBatcher(
            self._gate.batch,
            self.settings.batcher_config(),
            name=self.model.name,
            metrics=self.runtime_metrics,
        )
        self._batcher = batcher
        await batcher.start()
        if self._state == "starting":
            self._state = "consuming"
        self._beat()
        heartbeat = asyncio.create_task(self._heartbeat(), name="worker-heartbeat")
        backlog = asyncio.create_task(self._watch_backlog(), name="worker-backlog")
        try:
            await self._pull()
            tasks = [batch.task for batch in self._batches.values() if batch.task is not None]
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            heartbeat.cancel()
            backlog.cancel()
            await asyncio.gather(heartbeat, backlog, return_exceptions=True)
            if self._deadline_timer is not None:
                self._deadline_timer.cancel()
            await self._release_all()
            await batcher.close()
            await asyncio.to_thread(self._decoder.close)
            self._state = "stopped"
        logger.info(
            "worker stopped",
            extra={"event": "stopped", "counts": self.counts()},
        )

    def counts(self) -> dict[str, int]:
        """Messages by outcome so far."""
        return {outcome: int(self.metrics.messages(outcome)) for outcome in OUTCOMES}

    async def _pull(self) -> None:
        assert self._stopping is not None
        assert self._slot_free is not None
        idle_since = self.clock()
        while not self._stopping.is_set():
            self._beat()
            if len(self._batches) >= self.settings.prefetch_batches:
                self._slot_free.clear()
                await self._wait_any(self._slot_free.wait())
                continue
            try:
                messages = await asyncio.to_thread(
                    self.queue.receive, self.settings.max_batch_size, self.settings.poll_wait_s
                )
            except Exception as error:  # Connection loss and throttling: back off, keep going.
                self._beat()
                logger.warning(
                    "receive from %s failed: %s", self.queue.uri, redact_text(str(error))
                )
                await self._wait_any(asyncio.sleep(self.settings.retry_base_s))
                continue
            self._beat()
            if self._stopping.is_set():
                # Received while the notice arrived. Work them if they fit before the deadline
                # (a release counts as a receive against the queue's dead-letter policy, so
                # handing back what could be finished costs attempts); else hand them back.
                if messages and self._fits_another():
                    self._start_batch(messages)
                else:
                    await self._settle_release(messages)
                break
            if not messages:
                limit = self.settings.exit_when_idle_s
                if limit is not None and not self._batches:
                    if self.clock() - idle_since >= limit:
                        logger.info("queue idle for %.1f s: stopping", limit)
                        self._stopping.set()
                else:
                    idle_since = self.clock()
                continue
            idle_since = self.clock()
            self._start_batch(messages)

    async def _wait_any(self, awaitable: Any) -> None:
        """Await `awaitable` or the stop event, whichever comes first."""
        assert self._stopping is not None
        waiter = asyncio.ensure_future(awaitable)
        stopper = asyncio.ensure_future(self._stopping.wait())
        await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        for future in (waiter, stopper):
            future.cancel()
        await asyncio.gather(waiter, stopper, return_exceptions=True)

    def _start_batch(self, messages: list[Message]) -> None:
        # One pull can hold the same message twice when a stale release made it visible again
        # mid-receive (seen on SQS under chaos). The last delivery's receipt is the one that
        # controls it; working both would write and count it twice.
        latest = {message.id: message for message in messages}
        if len(latest) < len(messages):
            messages = list(latest.values())
        number = self._next_number
        self._next_number += 1
        batch = _Batch(
            number=number,
            unsettled={id(message): message for message in messages},
            started=self.clock(),
            messages=messages,
        )
        self._batches[number] = batch
        self._gauge_in_flight()
        batch.task = asyncio.create_task(self._work(batch), name=f"worker-batch-{number}")

    async def _work(self, batch: _Batch) -> None:
        try:
            await self._process(batch)
            elapsed = self.clock() - batch.started
            previous = self._batch_s_ewma
            self._batch_s_ewma = elapsed if not previous else 0.7 * previous + 0.3 * elapsed
        except asyncio.CancelledError:
            pass  # Drain deadline: what is unsettled is released below.
        except Exception:
            logger.exception("batch %d failed unexpectedly; releasing its messages", batch.number)
        finally:
            # Settling now: a notice that cancelled the task here would cut the release short
            # after `unsettled` was cleared, and those messages would wait out their lease.
            batch.cancelled = True
            leftover = list(batch.unsettled.values())
            batch.unsettled.clear()
            if leftover:
                await self._release(leftover)
            del self._batches[batch.number]
            self._gauge_in_flight()
            assert self._slot_free is not None
            self._slot_free.set()

    async def _process(self, batch: _Batch) -> None:
        """Steps 2 to 6 of the module docstring for one batch; every message ends settled."""
        messages = batch.messages
        failures: list[_Failure] = []
        store_down: str | None = None
        try:
            already = await asyncio.to_thread(self.store.existing, [m.id for m in messages])
        except Exception as error:  # The store is down: no result can be written either.
            already, store_down = set(), self._store_failed(error)
        duplicates = [m for m in messages if m.id in already]
        decoded = await self._decode([m for m in messages if m.id not in already], failures)
        if store_down is not None:
            # Undecodable ones are dead-lettered as usual; the rest wait for the store (backoff,
            # then dead letter at max_attempts) instead of running the model for nothing.
            failures.extend(_Failure(message, store_down, False) for message, _ in decoded)
            decoded = []
        documents, computed = await self._infer(decoded, failures)
        written, computed = await self._store(documents, computed, failures)
        done = computed + duplicates
        processed = [m for m in computed if written.get(m.id, False)]
        # Logged before the ack: a worker killed after this line still acks nothing, so every
        # message it names either comes back (and is logged again as a duplicate) or was done.
        logger.debug(
            "batch %d: %d processed, %d duplicate",
            batch.number,
            len(processed),
            len(done) - len(processed),
            extra={
                "event": "batch",
                "processed": [m.id for m in processed],
                "duplicate": [m.id for m in done if not written.get(m.id, False)],
            },
        )
        if done:
            await self._ack(batch, done)
        self.metrics.count("processed", len(processed))
        self.metrics.count("duplicate", len(done) - len(processed))
        retried, dead = await self._fail(batch, failures)
        if failures:
            logger.debug(
                "batch %d: %d retried, %d dead-lettered",
                batch.number,
                len(retried),
                len(dead),
                extra={
                    "event": "failures",
                    "retried": [m.id for m in retried],
                    "dead_lettered": [m.id for m in dead],
                },
            )

    async def _decode(
        self, messages: Sequence[Message], failures: list[_Failure]
    ) -> list[tuple[Message, InferRequest]]:
        """Each message as a v2 request; one that cannot be decoded joins `failures` for good."""
        decoded: list[tuple[Message, InferRequest]] = []
        for message in messages:
            refusal = self._refusal(message)
            if refusal is not None:
                failures.append(_Failure(message, refusal, True))
                continue
            try:
                request = await self._decode_one(message)
            except ProtocolError as error:
                failures.append(_Failure(message, f"invalid v2 request: {error.message}", True))
                continue
            except DecoderUnavailableError as error:  # Killed for memory, say: not the message.
                failures.append(_Failure(message, str(error), False))
                continue
            except Exception as error:
                # The decoder refuses with ProtocolError alone; anything else is a bug in it, but
                # the message is just as undecodable on every delivery. Letting it fail the
                # batch would release it and its neighbours again and again: settle it alone.
                logger.exception("decoding message %s raised unexpectedly", message.id)
                reason = f"undecodable message: {type(error).__name__}: {str(error)[:500]}"
                failures.append(_Failure(message, reason, True))
                continue
            decoded.append((message, request))
        return decoded

    def _refusal(self, message: Message) -> str | None:
        """Why a message is dead-lettered without being decoded, if it is."""
        if message.attempt > self.queue.max_attempts:
            return self._overdelivered(message)
        if message.problem is not None:
            return message.problem
        if len(message.body) > self.max_message_bytes:
            return self._too_large(message)
        return None

    async def _decode_one(self, message: Message) -> InferRequest:
        """`decode_checked`; a large body in the helper process, so that the loop keeps beating
        and extending leases (and the health port keeps answering) while it is parsed."""
        if len(message.body) >= LARGE_BODY_BYTES:
            return await self._decoder.decode(message.body, self.model, message.header_length)
        return decode_checked(message.body, self.model, message.header_length)

    def _too_large(self, message: Message) -> str:
        return (
            f"the message has {len(message.body)} bytes, more than the {self.max_message_bytes} "
            "that a request of max_batch_size rows of the model's inputs can need; send smaller "
            "requests or raise max_message_bytes"
        )

    def _overdelivered(self, message: Message) -> str:
        """Why a message delivered past `max_attempts` is dead-lettered before it is worked.

        Its earlier deliveries ended without settling it (a failure is dead-lettered at the last
        attempt): the worker died, or its model process, while it was held. Working it again
        may kill the next worker too, which is how one message crash-loops a whole pool.
        """
        return (
            f"delivered {message.attempt} times, past max_attempts ({self.queue.max_attempts}), "
            "and no attempt finished: it may crash the model process or the worker, so it is "
            "not worked again"
        )

    async def _infer(
        self, decoded: Sequence[tuple[Message, InferRequest]], failures: list[_Failure]
    ) -> tuple[dict[str, bytes], list[Message]]:
        """Run the requests through the batcher: the result documents, and their messages.

        A message the batcher refused, or whose outputs cannot be encoded, joins `failures`; one
        refused because the batcher is draining is left unsettled (released on the way out).
        """
        assert self._batcher is not None
        outcomes: list[Mapping[str, Any] | BaseException] = list(
            await asyncio.gather(
                *(self._batcher.submit(request.inputs) for _, request in decoded),
                return_exceptions=True,
            )
        )
        if self._revive_model is not None:
            await self._isolate_crashed(decoded, outcomes)
        documents: dict[str, bytes] = {}
        computed: list[Message] = []
        for (message, request), outcome in zip(decoded, outcomes, strict=True):
            if isinstance(outcome, asyncio.CancelledError):
                raise outcome
            if isinstance(outcome, BatchTooLargeError):
                failures.append(_Failure(message, str(outcome), True))
            elif isinstance(outcome, DrainingError):
                pass  # Left unsettled: released on the way out.
            elif isinstance(outcome, BaseException):
                failures.append(_Failure(message, f"{type(outcome).__name__}: {outcome}", False))
            else:
                try:
                    documents[message.id] = result_document(
                        message.id, self.model, request, outcome
                    )
                except Exception as error:  # The model's outputs, not the batch, are at fault.
                    reason = f"cannot encode the result: {type(error).__name__}: {error}"
                    failures.append(_Failure(message, reason, False))
                    continue
                computed.append(message)
        return documents, computed

    async def _isolate_crashed(
        self,
        decoded: Sequence[tuple[Message, InferRequest]],
        outcomes: list[Mapping[str, Any] | BaseException],
    ) -> None:
        """Replace each outcome that is the model process dying by that message's outcome alone.

        One crash at a time (`_recovery`): restart the dead process, then run each crashed
        message by itself, with nothing else in the model, so that only the message that kills
        it alone fails (`isolation.py`). Once the model cannot be restarted, the rest are left
        unsettled (a DrainingError), to be released by the drain that follows.
        """
        crashed = [index for index, outcome in enumerate(outcomes) if killed_the_model(outcome)]
        if not crashed:
            return
        assert self._recovery is not None
        async with self._recovery:
            logger.warning(
                "the model process died during a batch: running its %d messages one at a time",
                len(crashed),
                extra={"event": "isolating", "messages": [decoded[i][0].id for i in crashed]},
            )
            for index in crashed:
                outcomes[index] = await self._solo(decoded[index][1])
            await self._revive()  # The last one may have killed it too: ready for the next batch.

    def _restart(self) -> None:
        """Off the loop, with the model held alone: restart its dead processes, if any."""
        assert self._revive_model is not None
        try:
            restarted = self._revive_model()
        except Exception as error:
            raise _ModelLostError(str(error)) from error
        if restarted:
            logger.warning("restarted the model process (%s)", restarted)

    def _lose_model(self, lost: _ModelLostError) -> DrainingError:
        """The model cannot be restarted: drain at once, releasing what is held."""
        logger.error("the model process could not be restarted (%s); releasing held messages", lost)
        self.model_lost = True
        self.interrupt(Notice("model-exit", self.clock(), "the model process was lost"))
        return DrainingError("the model process could not be restarted")

    async def _revive(self) -> None:
        """Restart the model's dead processes, if any (the model is held alone meanwhile)."""
        if self.model_lost:
            return
        try:
            await asyncio.to_thread(self._gate.exclusive, self._restart)
        except _ModelLostError as lost:
            self._lose_model(lost)

    async def _solo(self, request: InferRequest) -> Mapping[str, Any] | BaseException:
        """The request's outputs with the model to itself, or what it failed with.

        The restart and the run are one exclusive call: a batch let in between them could kill
        the model, and this message would be blamed for it.
        """
        if self.model_lost:
            return DrainingError("the model process could not be restarted")
        model = self.model

        def restart_and_run() -> Mapping[str, Any]:
            self._restart()
            outputs: Mapping[str, Any] = model.predict_batch(request.inputs)
            return outputs

        try:
            return await asyncio.to_thread(self._gate.exclusive, restart_and_run)
        except _ModelLostError as lost:
            return self._lose_model(lost)
        except Exception as error:
            if killed_the_model(error):
                return ModelProcessDiedError(
                    f"the model process died running this message alone ({error})"
                )
            return error

    async def _store(
        self, documents: Mapping[str, bytes], computed: list[Message], failures: list[_Failure]
    ) -> tuple[dict[str, bool], list[Message]]:
        """Write the results: which were new, and the messages still to ack.

        When the store fails nothing is durable, so nothing may be acked: every computed message
        joins `failures` (retried) instead.
        """
        if not documents:
            return {}, computed
        try:
            written: dict[str, bool] = await asyncio.to_thread(self.store.put_many, documents)
        except Exception as error:  # The store is down: nothing durable, nothing to ack.
            reason = self._store_failed(error)
            failures.extend(_Failure(m, reason, False) for m in computed)
            return {}, []
        return written, computed

    def _store_failed(self, error: Exception) -> str:
        """The failure reason of every message a store outage held back, logged once."""
        reason = f"result store {self.store.uri} failed: {type(error).__name__}: {error}"
        # One line per batch, no traceback: an outage is retried with backoff, not a bug.
        logger.warning("%s", redact_text(reason))
        return reason

    async def _ack(self, batch: _Batch, done: list[Message]) -> None:
        self._settle(batch, done)
        try:
            await asyncio.to_thread(self.queue.ack, done)
        except Exception as error:
            # Results are durable; the messages come back after their lease and are then
            # acked as duplicates without running the model again.
            logger.warning("ack of %d messages failed: %s", len(done), error)

    async def _fail(
        self, batch: _Batch, failures: Sequence[_Failure]
    ) -> tuple[list[Message], list[Message]]:
        retried: list[Message] = []
        dead: list[Message] = []
        for failure in failures:
            message = failure.message
            self._settle(batch, [message])
            try:
                if failure.permanent or message.attempt >= self.queue.max_attempts:
                    # Stored with the message and read by whoever handles dead letters: an
                    # error's text may quote a URI with its password.
                    reason = redact_text(failure.reason)
                    if not failure.permanent:
                        reason = (
                            f"{reason} (attempt {message.attempt} of {self.queue.max_attempts})"
                        )
                    await asyncio.to_thread(self.queue.dead_letter, message, reason)
                    logger.warning("dead-lettered message %s: %s", message.id, reason)
                    self.metrics.count("dead_lettered")
                    dead.append(message)
                else:
                    delay = self.backoff_s(message.attempt)
                    await asyncio.to_thread(self.queue.retry_later, message, delay)
                    logger.info(
                        "message %s failed (attempt %d), retrying in %.1f s: %s",
                        message.id,
                        message.attempt,
                        delay,
                        failure.reason,
                    )
                    self.metrics.count("retried")
                    retried.append(message)
            except Exception as error:
                # The lease runs out and the queue redelivers it: still at-least-once.
                logger.warning("could not settle failed message %s: %s", message.id, error)
        return retried, dead

    def backoff_s(self, attempt: int) -> float:
        """Delay before the next attempt: doubling from `retry_base_s`, capped at `retry_max_s`."""
        delay = self.settings.retry_base_s * 2 ** max(0, attempt - 1)
        return float(min(self.settings.retry_max_s, delay))

    def _settle(self, batch: _Batch, messages: Sequence[Message]) -> None:
        # Taken out before the queue call: a drain that cancels the batch mid-call must not
        # release a message that the call may be acking or dead-lettering.
        for message in messages:
            batch.unsettled.pop(id(message), None)
        self._gauge_in_flight()

    async def _settle_release(self, messages: Sequence[Message]) -> None:
        if messages:
            await self._release(list(messages))

    async def _release(self, messages: list[Message]) -> None:
        try:
            await asyncio.to_thread(self.queue.release, messages)
        except Exception as error:
            logger.warning("release of %d messages failed: %s", len(messages), error)
            return
        self.metrics.count("released", len(messages))
        logger.info(
            "released %d messages",
            len(messages),
            extra={"event": "released", "released": [m.id for m in messages]},
        )

    async def _release_all(self) -> None:
        leftover = [m for batch in self._batches.values() for m in batch.unsettled.values()]
        for batch in self._batches.values():
            batch.unsettled.clear()
        if leftover:
            await self._release(leftover)

    def _gauge_in_flight(self) -> None:
        self.metrics.in_flight.set(self.held)

    # Leases and backlog --------------------------------------------------------------------

    async def _heartbeat(self) -> None:
        interval = self.settings.lease_s / 3
        while True:
            await asyncio.sleep(interval)
            held = [m for batch in self._batches.values() for m in batch.unsettled.values()]
            if not held:
                continue
            # Batches in flight keep the loop alive while the pull waits for a free slot or the
            # drain settles them; with nothing held only the pull loop's own beats count.
            self._beat()
            try:
                await asyncio.to_thread(self.queue.extend, held)
            except Exception as error:
                logger.warning("lease extension of %d messages failed: %s", len(held), error)

    async def _watch_backlog(self) -> None:
        while True:
            try:
                backlog = await asyncio.to_thread(self.queue.backlog)
            except Exception as error:
                logger.debug("backlog query failed: %s", error)
            else:
                if backlog is not None:
                    self.metrics.backlog.set(backlog)
            await asyncio.sleep(self.settings.backlog_interval_s)

    # Interruption --------------------------------------------------------------------------

    def _on_notice(self, notice: Notice) -> None:
        """On the loop: stop pulling, keep what fits before the deadline, release the rest."""
        assert self._stopping is not None
        assert self._loop is not None
        current = self.notice
        if self._stopping.is_set() and current is not None and current.deadline <= notice.deadline:
            return  # Already draining for an earlier deadline.
        self.notice = notice
        self._stopping.set()
        self._state = "draining"
        now = self.clock()
        drain_by = notice.deadline - self.settings.drain_margin_s
        logger.warning(
            "interruption (%s: %s): draining %d held messages, %.1f s left",
            notice.source,
            notice.detail,
            self.held,
            drain_by - now,
            extra={"event": "notice", "source": notice.source},
        )
        if drain_by == float("inf"):
            return
        self._drain_by = drain_by
        remaining = drain_by - now
        # Keep the oldest batches while the measured batch time says they finish in time (a
        # batch already running counts whole: conservative). Before any batch finished the
        # time is unknown: keep them all and let the deadline decide.
        kept = 0
        for batch in sorted(self._batches.values(), key=lambda b: b.started):
            fits = self._batch_s_ewma == 0.0 or (kept + 1) * self._batch_s_ewma <= remaining
            if fits and remaining > 0:
                kept += 1
            else:
                batch.cancel()
        if self._deadline_timer is not None:
            self._deadline_timer.cancel()
        self._deadline_timer = self._loop.call_later(max(0.0, remaining), self._deadline)

    def _fits_another(self) -> bool:
        """Whether one more batch fits before the drain deadline, by the measured batch time."""
        remaining = self._drain_by - self.clock()
        if remaining <= 0:
            return False
        needed = (len(self._batches) + 1) * self._batch_s_ewma
        return self._batch_s_ewma == 0.0 or needed <= remaining

    def _deadline(self) -> None:
        unfinished = [b for b in self._batches.values() if b.task is not None and not b.task.done()]
        if unfinished:
            logger.warning("drain deadline: releasing %d unfinished batches", len(unfinished))
        for batch in unfinished:
            batch.cancel()


def result_document(
    message_id: str, model: Signature, request: InferRequest, outputs: Mapping[str, Any]
) -> bytes:
    """The stored result: the v2 response (JSON tensors) with the message id first.

    Binary output flags are ignored: a result file is one JSON document.
    """
    requested = (
        None
        if request.outputs is None
        else [RequestedOutput(item.name, False) for item in request.outputs]
    )
    response = encode_response(model.name, outputs, request_id=request.id, requested=requested)
    # The response is a JSON object; splice the id in rather than re-parse 100s of KiB of data.
    return b'{"message_id":' + orjson.dumps(message_id) + b"," + response.body[1:]
