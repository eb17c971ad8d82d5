"""Graph optimization at load: `torch.jit.freeze` + `torch.jit.optimize_for_inference` for a
TorchScript model on the CPU, kept only where it answers the same and is not slower.

Why: freezing inlines the weights as constants, and `optimize_for_inference` then folds and
fuses the graph for this build of torch (MKLDNN on the CPU). For the traced MLP of the Triton
comparison (512-2048-2048-512, one torch thread, the 2-core development machine) a forward pass
took 11.8 -> 9.5 ms at batch 16, 18.0 -> 15.8 ms at 32 and 6.7 -> 5.0 ms at 4, and the server
answered 1.23x the requests per second at 32 connections, where the model's speed is the bound
(`benchmarks/hot_path.py`, issue 23).

Why it is checked on every load rather than trusted: freezing with `optimize_numerics` (its
default) runs passes that "do not strictly preserve numerics", and `optimize_for_inference` "is
still in prototype, and may have the potential to slow down your model" (both torch's own
docstrings). So the optimized graph is kept only when, on the warm-up batches built from the
model's signature, every output matches the loaded graph's (`outputs_match`) and no warm-up size
runs slower beyond the timing noise (`SLOWER_BEYOND`); otherwise, or when freezing or optimizing
raises, the loaded graph stays and the outcome says why. Loading never fails because of it.

What is left as loaded, and why: models on a GPU (`optimize_for_inference` bakes in this build's
CPU choices, MKLDNN, and its GPU path is the less targeted one), and anything that is not a
TorchScript module: `torch.export` programs, handlers and the built-in `nn.Module` have no
TorchScript graph to freeze.

It runs where the model runs (the model process, or the server's own process with
`model_process: false`), once per load, before the warm-up.
"""

from __future__ import annotations

import statistics
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np

from inferstack.runtime.models import LoadedModel, TorchModel, warm_up

OptimizeMode = Literal["auto", "off"]
"""`auto`: optimize a TorchScript model on the CPU when it checks out; `off`: serve as loaded."""

OPTIMIZATION: Final = "freeze + optimize_for_inference"
"""What `auto` applies, as the log line names it."""

RTOL: Final = 1e-4
"""Relative tolerance per element. FP32 carries about 7 digits (eps 1.2e-7); a frozen graph
whose matmuls and adds run in another order or fused (MKLDNN instead of MKL) drifts by a few
ulps per accumulation, about 1e-6 relative over 2048-wide sums (5e-7 absolute measured on the
MLP). 1e-4 leaves that two orders of headroom, and still fails a graph that changed meaning or
precision (BF16 or FP16 arithmetic errs by 1e-3 to 1e-2)."""
ATOL: Final = 1e-5
"""Absolute tolerance per element, scaled by the reference output's largest magnitude (at least
1), so that elements near zero in an output of large values are judged at that output's scale."""
SLOWER_BEYOND: Final = 0.05
"""The optimized graph is refused at a batch size where its median time is more than this share
above the loaded graph's. On the 2-core development machine the medians of one graph moved by
1-6% from one load to the next (the MLP, optimized, at batch 16: 9.09 to 9.65 ms), while the
gains worth having clear it by far (the MLP: 5-7% at batch 1, 14-20% at 16 and 32, 6-9% at 64
and 128). A graph of equal speed may then be refused now and then, which costs nothing: the
loaded graph is as fast."""
REPEATS: Final = 5
"""Timed runs of each graph per warm-up size, after one untimed run each; the median counts."""

Inputs = dict[str, np.ndarray]
Transform = Callable[[Any], Any]
"""Turns the loaded module into the candidate (`freeze_and_optimize`; a seam for tests)."""
TimePair = Callable[[TorchModel, Any, Any, Inputs], tuple[float, float]]
"""Median seconds of the loaded module and of the candidate on one batch (`median_seconds`)."""


@dataclass(frozen=True)
class GraphOutcome:
    """Whether the served graph is the optimized one, and why."""

    optimized: bool
    reason: str
    """Optimized: what was measured. As loaded: why not."""
    seconds: float = 0.0
    """How long the attempt took (transform, comparison and timing)."""

    def describe(self) -> str:
        """One phrase for the ready log line."""
        if self.optimized:
            return f"graph optimized ({OPTIMIZATION}; {self.reason})"
        return f"graph as loaded: {self.reason}"


def freeze_and_optimize(module: Any) -> Any:
    """`torch.jit.optimize_for_inference(torch.jit.freeze(module))`, as a new module; the
    loaded one is left as it was."""
    import torch

    with warnings.catch_warnings():
        # Both are deprecated with TorchScript upstream; choosing them is this module's job
        # (measured above), so the warning would only be noise in the model's log.
        warnings.simplefilter("ignore", DeprecationWarning)
        frozen = torch.jit.freeze(module)
        return torch.jit.optimize_for_inference(frozen)


def optimize_graph(
    model: LoadedModel,
    sizes: Sequence[int],
    mode: OptimizeMode,
    *,
    transform: Transform = freeze_and_optimize,
    time_pair: TimePair | None = None,
) -> GraphOutcome:
    """Serve `model`'s optimized graph when it checks out at the warm-up `sizes` (see the module
    docstring); the outcome says which graph `model` serves now, and why.

    An error of the loaded graph itself on the sample batches propagates (it is the model's,
    and the warm-up would raise it too); any error of the optimization falls back.
    """
    if mode == "off":
        return GraphOutcome(False, "optimize off")
    if not sizes:  # Nothing to check the optimized graph on: it is not trusted unchecked.
        return GraphOutcome(False, "no warm-up batch sizes to check the optimized graph on")
    target = _optimizable(model)
    if isinstance(target, str):
        return GraphOutcome(False, target)
    started = time.perf_counter()
    outcome = _try_candidate(target, sizes, transform, time_pair or median_seconds)
    return GraphOutcome(outcome.optimized, outcome.reason, time.perf_counter() - started)


def optimize_and_warm_up(
    model: LoadedModel, sizes: Sequence[int], mode: OptimizeMode
) -> tuple[GraphOutcome, float]:
    """Decide `model`'s graph (`optimize_graph`), then warm it up at `sizes`, as every process
    that runs a model does once it is loaded: the outcome, and the warm-up's seconds with the
    check's (the check ran the model at the warm-up sizes too: it is part of the cold start)."""
    graph = optimize_graph(model, sizes, mode)
    return graph, graph.seconds + warm_up(model, sizes)


def _optimizable(model: LoadedModel) -> TorchModel | str:
    """`model` when its graph can be tried, else why it is served as loaded."""
    import torch

    if not isinstance(model, TorchModel):
        return f"not a TorchScript model ({model.platform})"
    if model.device != "cpu":
        # optimize_for_inference bakes in CPU (MKLDNN) choices; its GPU path is less targeted.
        return f"device {model.device}; {OPTIMIZATION} is applied on the CPU only"
    if not isinstance(model.module, torch.jit.ScriptModule):
        return f"not a TorchScript model ({type(model.module).__name__})"
    return model


def _try_candidate(
    model: TorchModel, sizes: Sequence[int], transform: Transform, time_pair: TimePair
) -> GraphOutcome:
    """Build, check and time the candidate; switch `model` to it when it passes."""
    original = model.module
    batches = {size: model.example_inputs(size) for size in sorted(set(sizes))}
    expected = {size: model.run_module(original, inputs) for size, inputs in batches.items()}
    try:
        candidate = transform(original)
        for size, inputs in batches.items():
            mismatch = outputs_match(expected[size], model.run_module(candidate, inputs))
            if mismatch is not None:
                return GraphOutcome(
                    False, f"{OPTIMIZATION} changed outputs at batch {size}: {mismatch}"
                )
        timings = {size: time_pair(model, original, candidate, batches[size]) for size in batches}
    except Exception as error:
        return GraphOutcome(False, f"{OPTIMIZATION} failed ({_one_line(error)})")
    slower = _slower(timings)
    if slower is not None:
        return GraphOutcome(False, f"{OPTIMIZATION} was slower at {slower}")
    model.use_module(candidate)
    return GraphOutcome(True, ", ".join(_timing(size, *pair) for size, pair in timings.items()))


def outputs_match(
    expected: Mapping[str, np.ndarray], actual: Mapping[str, np.ndarray]
) -> str | None:
    """None when every output of `actual` matches `expected` (floats within `RTOL` and `ATOL`
    scaled by the output's largest magnitude, anything else exactly); else the first
    difference, named."""
    if set(expected) != set(actual):
        return f"outputs {sorted(actual)} instead of {sorted(expected)}"
    for name, want in expected.items():
        got = actual[name]
        if got.shape != want.shape or got.dtype != want.dtype:
            return (
                f"{name} is {got.dtype}{list(got.shape)} instead of {want.dtype}{list(want.shape)}"
            )
        if not np.issubdtype(want.dtype, np.floating):
            if not np.array_equal(got, want):
                return f"{name} differs (compared exactly: {want.dtype})"
            continue
        # Finite values only: an infinite one would make every difference allowed.
        scale = max(1.0, float(np.max(np.abs(want[np.isfinite(want)]), initial=0.0)))
        close = np.isclose(got, want, rtol=RTOL, atol=ATOL * scale, equal_nan=True)
        if not close.all():
            with np.errstate(invalid="ignore"):  # inf - inf, or a NaN where a number was
                worst = float(np.max(np.abs(got[~close].astype(np.float64) - want[~close])))
            return (
                f"{name} differs in {int((~close).sum())} of {close.size} values, by up to "
                f"{worst:.3g} (allowed rtol {RTOL:g}, atol {ATOL * scale:.3g})"
            )
    return None


def median_seconds(
    model: TorchModel, original: Any, candidate: Any, inputs: Inputs
) -> tuple[float, float]:
    """Median seconds per batch of `original` and of `candidate` on `inputs`, through the
    model's own batch path. The runs alternate, so that a burst of load on the machine falls
    on both; one untimed run of each first (TorchScript's profiling executor specializes the
    graph on its first calls at a shape)."""
    modules = (original, candidate)
    times: tuple[list[float], list[float]] = ([], [])
    for repeat in range(REPEATS + 1):
        for module, samples in zip(modules, times, strict=True):
            started = time.perf_counter()
            model.run_module(module, inputs)
            if repeat:
                samples.append(time.perf_counter() - started)
    return statistics.median(times[0]), statistics.median(times[1])


def _slower(timings: Mapping[int, tuple[float, float]]) -> str | None:
    """The first batch size where the candidate is slower beyond the noise, described."""
    for size, (original_s, candidate_s) in timings.items():
        if candidate_s > original_s * (1 + SLOWER_BEYOND):
            return _timing(size, original_s, candidate_s)
    return None


def _timing(size: int, original_s: float, candidate_s: float) -> str:
    return f"batch {size} {original_s * 1000:.2f} -> {candidate_s * 1000:.2f} ms"


def _one_line(error: Exception) -> str:
    """`Type: first line of the message`, short enough for a log line."""
    text = str(error).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(error).__name__}: {first[:200]}"


__all__ = [
    "ATOL",
    "OPTIMIZATION",
    "RTOL",
    "SLOWER_BEYOND",
    "GraphOutcome",
    "OptimizeMode",
    "freeze_and_optimize",
    "median_seconds",
    "optimize_and_warm_up",
    "optimize_graph",
    "outputs_match",
]
