"""`inferstack profile` records what it measured and refuses an `--accelerator` it does not see."""

from __future__ import annotations

import hashlib
import inspect
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from inferstack.cli import main
from inferstack.profile import (
    BatchPoint,
    OverheadPoint,
    ServerOverhead,
    file_digest,
    load_profile,
)
from inferstack.runtime import profiler
from inferstack.runtime.optimize import GraphOutcome
from inferstack.runtime.profiler import AcceleratorError, check_accelerator, model_digest
from tests.runtime import handlers


def test_a_cpu_run_records_no_gpu_and_refuses_one_named() -> None:
    assert check_accelerator(None, "cpu", "AMD EPYC") is None
    with pytest.raises(AcceleratorError, match="but this run measures the CPU"):
        check_accelerator("nvidia-a10g", "cpu", "AMD EPYC")


def test_a_gpu_run_records_the_type_seen_and_refuses_another() -> None:
    assert check_accelerator(None, "cuda:0", "NVIDIA L4") == "nvidia-l4"
    assert check_accelerator("nvidia-l4", "cuda:0", "NVIDIA L4") == "nvidia-l4"
    with pytest.raises(AcceleratorError, match="the GPU on cuda:0 is 'NVIDIA L4' \\(nvidia-l4\\)"):
        check_accelerator("nvidia-a10g", "cuda:0", "NVIDIA L4")
    # A GPU the spec does not list is recorded as the device name alone, never as a guess.
    assert check_accelerator(None, "cuda:0", "NVIDIA H200") is None
    with pytest.raises(AcceleratorError, match="not a GPU type the spec lists"):
        check_accelerator("nvidia-h100-80gb", "cuda:0", "NVIDIA H200")


def test_a_gpu_name_the_spec_would_reject_is_refused_before_anything_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "p.json"
    code = main(
        ["profile", "--model", "builtin://nope", "--out", str(out), "--accelerator", "h100"]
    )
    assert code == 2
    error = capsys.readouterr().err
    assert error.startswith("inferstack profile: --accelerator 'h100' is not a GPU type a spec")
    assert error.count("\n") == 1
    assert not out.exists()


def test_digests_name_what_was_hashed(tmp_path: Path) -> None:
    weights, of = model_digest("builtin://mlp")
    assert of == "weights"
    assert weights == model_digest("builtin://mlp")[0]  # the built-in weights are seeded
    archive = tmp_path / "m.pt"
    archive.write_bytes(b"not really torchscript")
    expected = f"sha256:{hashlib.sha256(archive.read_bytes()).hexdigest()}"
    assert model_digest(f"file://{archive}") == (expected, "file")
    assert file_digest(archive) == expected
    source = Path(inspect.getfile(handlers))
    assert model_digest("tests.runtime.handlers:Doubler") == (file_digest(source), "handler source")
    assert model_digest("s3://bucket/model.pt") == (None, None)


def test_the_profile_records_the_model_its_signature_and_the_device_seen(tmp_path: Path) -> None:
    out = tmp_path / "doubler.json"
    argv = ["profile", "--model", "tests.runtime.handlers:Doubler", "--out", str(out)]
    argv += ["--batch-sizes", "1,2", "--seconds", "0.01", "--threads", "1"]
    assert main([*argv, "--model-process", "false"]) == 0
    written = load_profile(out)
    assert written.format_version == 4
    assert written.model == "tests.runtime.handlers:Doubler"
    assert written.model_digest_of == "handler source"
    assert written.signature is not None
    assert [t.name for t in written.signature.inputs] == [
        s["name"] for s in handlers.Doubler.inputs
    ]
    assert written.hardware.kind == "cpu"
    assert written.hardware.device == profiler._cpu_name()
    assert written.hardware.accelerator is None


class _Clock:
    """`time` for the profiler: only the fake model's calls move it."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now


class _TimedModel:
    """A model whose call number i takes `durations(i)` seconds on `clock`."""

    def __init__(self, clock: _Clock, durations: Callable[[int], float]) -> None:
        self.clock, self.durations, self.calls = clock, durations, 0

    def example_inputs(self, batch_size: int) -> dict[str, np.ndarray]:
        return {"input": np.zeros((batch_size, 1), np.float32)}

    def predict_batch(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.clock.now += self.durations(self.calls)
        self.calls += 1
        return inputs


def _timed(monkeypatch: pytest.MonkeyPatch, durations: Callable[[int], float]) -> BatchPoint:
    clock = _Clock()
    monkeypatch.setattr(profiler, "time", clock)
    model = _TimedModel(clock, durations)
    return profiler._time_batch(model, 4, seconds=3.0)  # type: ignore[arg-type]


def test_one_burst_of_stalls_does_not_set_the_p99_of_a_tight_batch_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 10 ms a call, but five calls in a row 40 ms: a shared machine descheduling the process
    # once (300 timings, as 3 s at batch 4 of the fixed-time model gives).
    point = _timed(monkeypatch, lambda call: 0.040 if 100 <= call < 105 else 0.010)
    assert point.latency_ms.p50 == 10.0
    assert point.latency_ms.p99 == 10.0


def test_a_tail_the_model_has_throughout_stays_in_the_p99(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every 20th call takes 15 ms: 5 % of calls, in every part of the run.
    point = _timed(monkeypatch, lambda call: 0.015 if call % 20 == 19 else 0.010)
    assert point.latency_ms.p99 == 15.0


class _ThrottledCore:
    """`time` for the profiler on a core under the kernel's real-time limit.

    Real-time work gets `runtime` seconds of every `period`; a task that used it is stopped
    until the period ends, and each period's end takes `runtime` off what was used (as
    sched_rt_runtime_us does). Only `run` (the model's compute) and `sleep` move the clock.
    """

    def __init__(self, runtime: float, period: float) -> None:
        self.runtime, self.period = runtime, period
        self.now, self.used, self.index = 0.0, 0.0, 0
        self.stalls = 0

    def perf_counter(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self._replenish()

    def run(self, seconds: float) -> None:
        while seconds > 0:
            self._replenish()
            end = (self.index + 1) * self.period
            if self.used >= self.runtime:
                self.now, self.stalls = end, self.stalls + 1  # throttled
                continue
            step = min(seconds, self.runtime - self.used, end - self.now)
            self.now = end if step == end - self.now else self.now + step
            self.used += step
            seconds -= step

    def _replenish(self) -> None:
        index = int(self.now // self.period)
        if index > self.index:
            self.used = max(0.0, self.used - (index - self.index) * self.runtime)
            self.index = index


class _ComputeModel:
    """A CPU-bound model: each call computes `seconds` on `core`."""

    def __init__(self, core: _ThrottledCore, seconds: float) -> None:
        self.core, self.seconds = core, seconds

    def example_inputs(self, batch_size: int) -> dict[str, np.ndarray]:
        return {"input": np.zeros((batch_size, 1), np.float32)}

    def predict_batch(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.core.run(self.seconds)
        return inputs


def test_under_the_real_time_limit_timing_in_bursts_keeps_the_kernels_stalls_out_of_the_p99(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The demo MLP at batch 8 under SCHED_FIFO: 20 ms a call, on a core where the kernel stops
    # real-time tasks for the last 50 ms of each second (950 ms of 1 s, the default limit).
    core = _ThrottledCore(runtime=0.95, period=1.0)
    monkeypatch.setattr(profiler, "time", core)
    model = _ComputeModel(core, 0.020)
    # One continuous loop (as before): the stall lands in a call every second, in every part.
    continuous = profiler._time_batch(model, 8, seconds=5.0)  # type: ignore[arg-type]
    assert core.stalls >= 5
    assert continuous.latency_ms.p99 > 40.0
    core.stalls = 0
    budget = profiler.RtBudget(runtime_s=0.95, period_s=1.0)
    bursts = profiler._time_batch(model, 8, seconds=5.0, budget=budget)  # type: ignore[arg-type]
    assert core.stalls == 0
    assert bursts.latency_ms.p50 == 20.0
    assert bursts.latency_ms.p99 == 20.0


def test_the_real_time_limit_is_read_from_the_kernel_only_for_a_real_time_process(
    tmp_path: Path,
) -> None:
    (tmp_path / "sched_rt_runtime_us").write_text("950000\n")
    (tmp_path / "sched_rt_period_us").write_text("1000000\n")
    budget = profiler.rt_budget(tmp_path, policy=os.SCHED_FIFO)
    assert budget == profiler.RtBudget(runtime_s=0.95, period_s=1.0)
    assert budget is not None
    assert budget.burst_s == pytest.approx(0.2375)
    # Half the runtime's share: 950 ms of timing per 2 s, whatever the pauses' lengths.
    assert 1.0 / (1.0 + budget.pause_s(1.0)) == pytest.approx(0.475)
    assert profiler.rt_budget(tmp_path, policy=os.SCHED_RR) == budget
    assert profiler.rt_budget(tmp_path, policy=os.SCHED_OTHER) is None
    (tmp_path / "sched_rt_runtime_us").write_text("500000\n")
    assert profiler.rt_budget(tmp_path, policy=os.SCHED_FIFO) == profiler.RtBudget(0.5, 1.0)
    # No limit set, or none readable: the fair deadline server's 50 ms of each second still is.
    (tmp_path / "sched_rt_runtime_us").write_text("-1\n")
    assert profiler.rt_budget(tmp_path, policy=os.SCHED_FIFO) == budget
    assert profiler.rt_budget(tmp_path / "absent", policy=os.SCHED_FIFO) == budget


def test_automatic_threads_are_the_servers_rule(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--threads 0` is what `serve` resolves (`split_cpus`), here on a 16-CPU budget."""
    from inferstack.runtime import settings as runtime_settings

    measured: list[int] = []

    def measure(*args: object, threads: int, **kwargs: object) -> None:
        measured.append(threads)
        raise RuntimeError("measured enough")

    monkeypatch.setattr(runtime_settings, "cpu_budget", lambda: 16)
    monkeypatch.setattr(profiler, "measure", measure)
    out = tmp_path / "p.json"
    assert main(["profile", "--model", "builtin://mlp", "--out", str(out)]) == 2
    assert main(["profile", "--model", "builtin://mlp", "--out", str(out), "--threads", "3"]) == 2
    assert measured == [15, 3]


@pytest.mark.parametrize(("flags", "mode"), [([], "auto"), (["--optimize", "off"], "off")])
def test_the_graph_measured_is_the_one_serve_runs_with_the_same_optimize(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    flags: list[str],
    mode: str,
) -> None:
    """`--optimize` reaches the model's load and the server whose overhead is measured, and the
    profile says which graph it timed (in the warm-up note: a field would be a new format)."""
    from inferstack.runtime import optimize as optimize_module

    real = optimize_module.optimize_graph
    modes: list[str] = []
    served: list[str] = []

    def optimize_graph(model: Any, sizes: Any, asked: Any, **kwargs: Any) -> GraphOutcome:
        modes.append(asked)
        return real(model, sizes, asked, **kwargs)

    def measure_server_overhead(*args: Any, optimize: str, **kwargs: Any) -> ServerOverhead:
        served.append(optimize)
        point = OverheadPoint(batch_size=1, batch_cycle_ms=1.5, compute_ms=1.0, overhead_ms=0.5)
        return ServerOverhead(per_request_ms=0, per_batch_ms=0.5, points=[point], request="-")

    monkeypatch.setattr(optimize_module, "optimize_graph", optimize_graph)
    monkeypatch.setattr(profiler, "measure_server_overhead", measure_server_overhead)
    out = tmp_path / "doubler.json"
    argv = ["profile", "--model", "tests.runtime.handlers:Doubler", "--out", str(out)]
    argv += ["--batch-sizes", "1", "--seconds", "0.01", "--threads", "1"]
    assert main([*argv, "--model-process", "false", *flags]) == 0
    assert modes == [mode]
    assert served == [mode]
    # The real outcome of each mode for a handler: off is said as such, auto says why not.
    graph = (
        "graph as loaded: optimize off"
        if mode == "off"
        else "graph as loaded: not a TorchScript model (python)"
    )
    assert f"1 threads, {graph}\n" in capsys.readouterr().err
    note = load_profile(out).cold_start.warmup.note
    assert note == f"2 calls at each of batch sizes [1], after the graph check ({mode}): {graph}"


def test_optimize_takes_serves_choices_only(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["profile", "--model", "builtin://mlp", "--out", "p.json", "--optimize", "on"]
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert "--optimize: invalid choice: 'on' (choose from " in error
    assert error.rstrip().endswith(("auto, off)", "'auto', 'off')"))  # Python 3.12+, 3.11
