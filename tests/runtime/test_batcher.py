"""The dynamic batcher against a gated fake model and a hand-driven clock: no sleeps."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any

import numpy as np
import pytest

from inferstack.runtime.batcher import (
    ISOLATION_BAD_REQUESTS,
    BatcherConfig,
    BatchTooLargeError,
    DrainingError,
    DynamicBatcher,
    InputRejectedError,
    ModelError,
    QueueFullError,
    RequestTimeoutError,
)
from inferstack.runtime.failures import transient
from inferstack.runtime.metrics import RuntimeMetrics
from tests.runtime.fakes import FakeClock, GatedModel, rows, settle


def run_async(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    @functools.wraps(test)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        asyncio.run(asyncio.wait_for(test(*args, **kwargs), timeout=10))

    return wrapper


def make(
    model: GatedModel, clock: FakeClock, **config: Any
) -> tuple[DynamicBatcher, RuntimeMetrics]:
    metrics = RuntimeMetrics("fake")
    settings = {"max_queue_delay_s": 10.0, **config}
    batcher = DynamicBatcher(
        model.predict_batch, BatcherConfig(**settings), name="fake", metrics=metrics, clock=clock
    )
    return batcher, metrics


@run_async
async def test_full_batch_dispatches_without_waiting_for_the_delay():
    model, clock = GatedModel(), FakeClock()
    batcher, metrics = make(model, clock, max_batch_size=4)
    async with batcher:
        results = await asyncio.gather(*(batcher.submit(rows(i)) for i in range(4)))
    assert [call.shape[0] for call in model.calls] == [4]
    for index, result in enumerate(results):
        np.testing.assert_array_equal(result["y"], rows(index)["x"] * 2)
    assert metrics.requests("success") == 4


@run_async
async def test_multi_row_requests_fill_the_batch_by_rows():
    model, clock = GatedModel(), FakeClock()
    batcher, _ = make(model, clock, max_batch_size=4)
    async with batcher:
        first, second = await asyncio.gather(batcher.submit(rows(1, 2, 3)), batcher.submit(rows(4)))
    assert [call.shape[0] for call in model.calls] == [4]
    np.testing.assert_array_equal(first["y"], rows(1, 2, 3)["x"] * 2)
    np.testing.assert_array_equal(second["y"], rows(4)["x"] * 2)


@run_async
async def test_preferred_size_dispatches_early():
    model, clock = GatedModel(), FakeClock()
    batcher, _ = make(model, clock, max_batch_size=16, preferred_batch_sizes=(2, 8))
    async with batcher:
        results = await asyncio.gather(batcher.submit(rows(1)), batcher.submit(rows(2)))
    assert [call.shape[0] for call in model.calls] == [2]
    assert [float(result["y"][0, 0]) for result in results] == [2.0, 4.0]


@run_async
async def test_partial_batch_leaves_when_the_oldest_request_reaches_the_delay():
    model, clock = GatedModel(), FakeClock()
    batcher, _ = make(model, clock, max_batch_size=8, max_queue_delay_s=0.010)
    async with batcher:
        first = asyncio.create_task(batcher.submit(rows(1)))
        await settle()
        clock.advance(0.004)
        others = [asyncio.create_task(batcher.submit(rows(v))) for v in (2, 3)]
        await settle()
        clock.advance(0.005)  # The oldest has waited 9 ms: not yet.
        await settle()
        assert batcher.queue_depth == 3
        assert model.calls == []
        clock.advance(0.001)  # 10 ms: the partial batch of three leaves.
        assert await model.entered.get() == 3
        await asyncio.gather(first, *others)
    assert [call.shape[0] for call in model.calls] == [3]


@run_async
async def test_full_queue_rejects_with_a_retry_hint():
    model, clock = GatedModel(open_gate=False), FakeClock()
    batcher, metrics = make(model, clock, max_batch_size=1, max_queue_size=2)
    async with batcher:
        running = asyncio.create_task(batcher.submit(rows(0)))
        assert await model.entered.get() == 1
        queued = [asyncio.create_task(batcher.submit(rows(v))) for v in (1, 2)]
        await settle()
        with pytest.raises(QueueFullError, match="queue is full") as caught:
            await batcher.submit(rows(3))
        assert caught.value.retry_after_s >= 1
        model.gate.set()
        await asyncio.gather(running, *queued)
    assert metrics.requests("shed") == 1
    assert metrics.requests("success") == 3


@run_async
async def test_timed_out_request_never_reaches_the_model():
    model, clock = GatedModel(open_gate=False), FakeClock()
    batcher, metrics = make(model, clock, max_batch_size=1, max_queue_delay_s=0.0)
    async with batcher:
        busy = asyncio.create_task(batcher.submit(rows(0)))
        assert await model.entered.get() == 1
        stale = asyncio.create_task(batcher.submit(rows(9), timeout_s=0.5))
        fresh = asyncio.create_task(batcher.submit(rows(1)))
        await settle()
        clock.advance(0.5)
        with pytest.raises(RequestTimeoutError, match="timed out before reaching the model"):
            await stale
        model.gate.set()
        await asyncio.gather(busy, fresh)
    assert [float(call[0, 0]) for call in model.calls] == [0.0, 1.0]
    assert metrics.requests("timeout") == 1


@run_async
async def test_configured_timeout_applies_to_every_request():
    model, clock = GatedModel(open_gate=False), FakeClock()
    batcher, _ = make(model, clock, max_batch_size=1, request_timeout_s=0.2)
    async with batcher:
        busy = asyncio.create_task(batcher.submit(rows(0)))
        assert await model.entered.get() == 1
        waiting = asyncio.create_task(batcher.submit(rows(1)))
        await settle()
        clock.advance(0.2)
        with pytest.raises(RequestTimeoutError):
            await waiting
        model.gate.set()
        await busy


@run_async
async def test_output_row_mismatch_fails_every_caller_with_the_fix():
    model, clock = GatedModel(), FakeClock()
    model.drop_rows = 1
    batcher, metrics = make(model, clock, max_batch_size=3)
    async with batcher:
        outcomes = await asyncio.gather(
            *(batcher.submit(rows(v)) for v in range(3)), return_exceptions=True
        )
    for outcome in outcomes:
        assert isinstance(outcome, ModelError)
        assert "returned 2 rows for output 'y' but the batch had 3 input rows" in str(outcome)
        assert "one output row per input row" in str(outcome)
    assert metrics.requests("failed") == 3
    assert len(model.calls) == 1, "a model that breaks its contract is not re-run in parts"


@run_async
async def test_model_exception_reaches_every_caller_and_the_batcher_goes_on():
    model, clock = GatedModel(), FakeClock()
    model.fail_with = RuntimeError("CUDA out of memory")
    batcher, _ = make(model, clock, max_batch_size=2)
    async with batcher:
        outcomes = await asyncio.gather(
            batcher.submit(rows(1)), batcher.submit(rows(2)), return_exceptions=True
        )
        assert all(isinstance(outcome, ModelError) for outcome in outcomes)
        assert all("RuntimeError: CUDA out of memory" in str(outcome) for outcome in outcomes)
        assert all(transient(outcome) for outcome in outcomes)
        assert len(model.calls) == 1, "out of memory is not the input's fault: no re-runs"
        model.fail_with = None
        after = await asyncio.gather(batcher.submit(rows(3)), batcher.submit(rows(4)))
    assert [float(result["y"][0, 0]) for result in after] == [6.0, 8.0]


@run_async
async def test_cancelled_queued_request_is_removed_before_the_model():
    model, clock = GatedModel(open_gate=False), FakeClock()
    batcher, metrics = make(model, clock, max_batch_size=2, max_queue_delay_s=0.0)
    async with batcher:
        busy = asyncio.create_task(batcher.submit(rows(0)))
        assert await model.entered.get() == 1
        gone = asyncio.create_task(batcher.submit(rows(7)))
        kept = asyncio.create_task(batcher.submit(rows(1)))
        await settle()
        gone.cancel()
        await settle()
        assert batcher.queue_depth == 1
        model.gate.set()
        await asyncio.gather(busy, kept)
        with pytest.raises(asyncio.CancelledError):
            await gone
    assert all(7.0 not in call for call in model.calls)
    assert metrics.requests("cancelled") == 1
    assert batcher.outstanding == 0


@run_async
async def test_caller_leaving_mid_batch_does_not_poison_the_others():
    model, clock = GatedModel(open_gate=False), FakeClock()
    batcher, metrics = make(model, clock, max_batch_size=3)
    async with batcher:
        tasks = [asyncio.create_task(batcher.submit(rows(v))) for v in (1, 2, 3)]
        assert await model.entered.get() == 3
        tasks[1].cancel()
        await settle()
        model.gate.set()
        first, third = await tasks[0], await tasks[2]
    np.testing.assert_array_equal(first["y"], rows(1)["x"] * 2)
    np.testing.assert_array_equal(third["y"], rows(3)["x"] * 2)
    assert metrics.requests("success") == 2
    assert metrics.requests("cancelled") == 1


@run_async
async def test_drain_refuses_new_work_and_finishes_admitted_work_at_once():
    model, clock = GatedModel(open_gate=False), FakeClock()
    batcher, metrics = make(model, clock, max_batch_size=2, max_queue_delay_s=60.0)
    await batcher.start()
    running = [asyncio.create_task(batcher.submit(rows(v))) for v in (1, 2)]
    assert await model.entered.get() == 2
    queued = asyncio.create_task(batcher.submit(rows(3)))
    await settle()
    drained = asyncio.create_task(batcher.drain())
    await settle()
    assert not batcher.accepting
    with pytest.raises(DrainingError, match="draining"):
        await batcher.submit(rows(4))
    assert not drained.done()
    model.gate.set()
    # The queued partial batch leaves without its 60 s delay: the clock never moves.
    await drained
    assert [float(r["y"][0, 0]) for r in await asyncio.gather(*running, queued)] == [2, 4, 6]
    assert metrics.requests("shed") == 1
    await batcher.close()


@run_async
async def test_instances_run_batches_concurrently():
    model, clock = GatedModel(open_gate=False), FakeClock()
    batcher, metrics = make(model, clock, max_batch_size=1, instances=2)
    async with batcher:
        tasks = [asyncio.create_task(batcher.submit(rows(v))) for v in (1, 2)]
        assert [await model.entered.get(), await model.entered.get()] == [1, 1]
        assert metrics.busy_instances._value.get() == 2
        model.gate.set()
        await asyncio.gather(*tasks)
    assert metrics.busy_instances._value.get() == 0


@run_async
async def test_requests_with_different_inner_shapes_do_not_share_a_batch():
    model, clock = GatedModel(), FakeClock()
    batcher, _ = make(model, clock, max_batch_size=8)
    wide = {"x": np.ones((1, 3), dtype=np.float32)}
    async with batcher:
        narrow_task = asyncio.create_task(batcher.submit(rows(1)))
        wide_task = asyncio.create_task(batcher.submit(wide))
        # The narrow request cannot grow its batch (the next one differs), so it leaves at once.
        assert await model.entered.get() == 1
        await narrow_task
        assert batcher.queue_depth == 1
        clock.advance(10.0)
        await wide_task
    assert [call.shape for call in model.calls] == [(1, 2), (1, 3)]


@run_async
async def test_request_larger_than_a_batch_is_rejected_with_the_fix():
    model, clock = GatedModel(), FakeClock()
    batcher, _ = make(model, clock, max_batch_size=2)
    async with batcher:
        with pytest.raises(BatchTooLargeError, match="split it into smaller requests"):
            await batcher.submit(rows(1, 2, 3))


@run_async
async def test_metrics_follow_the_batch():
    model, clock = GatedModel(), FakeClock()
    batcher, metrics = make(model, clock, max_batch_size=2)
    async with batcher:
        await asyncio.gather(batcher.submit(rows(1)), batcher.submit(rows(2)))
    text = metrics.exposition().decode()
    assert 'inferstack_batch_size_bucket{le="2.0",model="fake"} 1.0' in text
    assert 'inferstack_requests_total{model="fake",outcome="success"} 2.0' in text
    assert 'inferstack_queue_depth{model="fake"} 0.0' in text
    assert 'inferstack_inflight_requests{model="fake"} 0.0' in text
    assert 'inferstack_compute_seconds_count{model="fake"} 1.0' in text


@pytest.mark.parametrize("multiprocess", [False, True])
@run_async
async def test_gauges_are_set_at_every_change_only_for_multiprocess_metrics(multiprocess):
    """Multiprocess metrics are read from prometheus_client's files by another process's
    /metrics, which only a set reaches; one process's own exposition reads the batcher's
    counts when scraped instead (no set per change on the hot path)."""
    model, clock = GatedModel(open_gate=False), FakeClock()
    metrics = RuntimeMetrics("fake", multiprocess=multiprocess)
    batcher = DynamicBatcher(
        model.predict_batch,
        BatcherConfig(max_batch_size=1, max_queue_delay_s=10.0),
        name="fake",
        metrics=metrics,
        clock=clock,
    )
    assert metrics.multiprocess is multiprocess
    async with batcher:
        running = asyncio.create_task(batcher.submit(rows(0)))
        assert await model.entered.get() == 1
        queued = asyncio.create_task(batcher.submit(rows(1)))
        await settle()
        # The stored value is what multiprocess mode writes to the process's file.
        stored = (metrics.queue_depth._value.get(), metrics.in_flight._value.get())
        assert stored == ((1.0, 2.0) if multiprocess else (0.0, 0.0))
        text = metrics.exposition().decode()
        assert 'inferstack_queue_depth{model="fake"} 1.0' in text
        assert 'inferstack_inflight_requests{model="fake"} 2.0' in text
        model.gate.set()
        await asyncio.gather(running, queued)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"max_batch_size": 0}, "max_batch_size must be at least 1"),
        ({"max_batch_size": 8, "preferred_batch_sizes": (4, 16)}, r"\[16\] are outside"),
        ({"max_queue_delay_s": -1}, "max_queue_delay_s must be >= 0"),
        ({"max_queue_size": 0}, "max_queue_size must be at least 1"),
        ({"request_timeout_s": 0}, "request_timeout_s must be positive"),
        ({"instances": 0}, "instances must be at least 1"),
    ],
)
def test_config_rejects_contradictions(config, message):
    with pytest.raises(ValueError, match=message):
        BatcherConfig(**config)


# Failure isolation: one bad request does not fail its batch-mates -----------------------------


@run_async
async def test_a_request_the_model_fails_on_alone_is_rejected_and_its_batch_mates_answered():
    model, clock = GatedModel(), FakeClock()
    model.fail_on = 5.0
    batcher, metrics = make(model, clock, max_batch_size=8)
    async with batcher:
        outcomes = await asyncio.gather(
            *(batcher.submit(rows(v)) for v in range(8)), return_exceptions=True
        )
    rejected = outcomes[5]
    assert isinstance(rejected, InputRejectedError)
    assert str(rejected).startswith(
        "model 'fake' rejected this request's input 'x' (its row): "
        "RuntimeError: index 5.0 out of range in self; "
    )
    assert "Traceback" not in str(rejected)
    assert "/srv/models" not in str(rejected)
    for value, outcome in enumerate(outcomes):
        if value != 5:
            assert not isinstance(outcome, BaseException), outcome
            np.testing.assert_array_equal(outcome["y"], rows(value)["x"] * 2)
    # 8 requests -> halves of 4, 2 and 1: the whole batch and two runs per level.
    assert [call.shape[0] for call in model.calls] == [8, 4, 4, 2, 2, 1, 1]
    assert metrics.requests("invalid") == 1
    assert metrics.requests("success") == 7
    assert metrics.requests("failed") == 0


@run_async
async def test_a_lone_request_the_model_raises_on_is_rejected_without_a_re_run():
    model, clock = GatedModel(), FakeClock()
    model.fail_on = 1.0
    batcher, metrics = make(model, clock, max_batch_size=4, max_queue_delay_s=0.0)
    async with batcher:
        with pytest.raises(InputRejectedError, match="index 1.0 out of range"):
            await batcher.submit(rows(1, 2))
    assert len(model.calls) == 1
    assert metrics.requests("invalid") == 1


@run_async
async def test_isolation_re_runs_are_bounded_when_every_request_fails():
    model, clock = GatedModel(), FakeClock()
    model.fail_with = ValueError("this model fails on everything")
    batcher, metrics = make(model, clock, max_batch_size=32)
    async with batcher:
        outcomes = await asyncio.gather(
            *(batcher.submit(rows(v)) for v in range(32)), return_exceptions=True
        )
    # 2 x ISOLATION_BAD_REQUESTS x log2(32) re-runs after the first call, never 62.
    assert len(model.calls) == 1 + 2 * ISOLATION_BAD_REQUESTS * 5
    assert all(isinstance(outcome, ModelError) for outcome in outcomes)
    unresolved = [o for o in outcomes if not isinstance(o, InputRejectedError)]
    assert unresolved, "past the bound the rest fail as the model's fault, not the inputs'"
    assert all("more often than 2 bad requests explain" in str(o) for o in unresolved)
    assert metrics.requests("failed") == len(unresolved)
    assert metrics.requests("invalid") == 32 - len(unresolved)


@run_async
async def test_a_caller_gone_during_isolation_is_not_re_run():
    model, clock = GatedModel(open_gate=False), FakeClock()
    model.fail_on = 3.0
    batcher, _ = make(model, clock, max_batch_size=4)
    async with batcher:
        tasks = [asyncio.create_task(batcher.submit(rows(v))) for v in range(4)]
        assert await model.entered.get() == 4
        tasks[0].cancel()
        model.gate.set()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(outcomes[0], asyncio.CancelledError)
    assert isinstance(outcomes[3], InputRejectedError)
    assert float(outcomes[1]["y"][0, 0]) == 2.0
    assert all(0.0 not in call[:, 0] for call in model.calls[1:])
