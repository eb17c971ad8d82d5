"""Graph optimization at load: kept only when it answers the same and is not slower; otherwise,
and for whatever cannot be optimized, the graph as loaded, with the reason."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from inferstack.contract.env import ENV_OPTIMIZE
from inferstack.runtime.model_process import ModelProcessConfig, ProcessModel
from inferstack.runtime.models import (
    SIGNATURE_FILE,
    LoadedModel,
    TorchModel,
    configure_torch_threads,
    load_model,
    open_model,
)
from inferstack.runtime.optimize import (
    ATOL,
    OPTIMIZATION,
    RTOL,
    GraphOutcome,
    freeze_and_optimize,
    optimize_graph,
    outputs_match,
)
from inferstack.runtime.server.command import add_arguments
from inferstack.runtime.server.settings import resolve_settings
from inferstack.runtime.settings import SettingsError
from inferstack.runtime.worker.settings import WorkerSettings

SIZES = (1, 4)
SIGNATURE = {
    "inputs": [{"name": "features", "datatype": "FP32", "shape": [-1, 16]}],
    "outputs": [
        {"name": "scores", "datatype": "FP32", "shape": [-1, 8]},
        {"name": "best", "datatype": "INT64", "shape": [-1]},
    ],
}


class Small(torch.nn.Module):
    """Two outputs, a float one and an integer one, so that every output is compared."""

    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.hidden = torch.nn.Linear(16, 32)
        self.out = torch.nn.Linear(32, 8)
        with torch.no_grad():
            for layer in (self.hidden, self.out):
                layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scores = self.out(torch.nn.functional.gelu(self.hidden(x)))
        return scores, scores.argmax(dim=1)


class Scaled(torch.nn.Module):
    """`inner`'s scores times `factor`: a graph whose outputs genuinely differ."""

    def __init__(self, inner: torch.nn.Module, factor: float) -> None:
        super().__init__()
        self.inner = inner
        self.factor = factor

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scores, best = self.inner(x)
        return scores * self.factor, best


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> None:
    configure_torch_threads(1)


@pytest.fixture
def script_path(tmp_path: Path) -> Path:
    path = tmp_path / "small.pt"
    torch.jit.save(
        torch.jit.script(Small().eval()),
        str(path),
        _extra_files={SIGNATURE_FILE: json.dumps(SIGNATURE)},
    )
    return path


@pytest.fixture
def model(script_path: Path) -> TorchModel:
    loaded = load_model(str(script_path), device="cpu")
    assert isinstance(loaded, TorchModel)
    return loaded


def _outputs(model: LoadedModel, size: int) -> dict[str, np.ndarray]:
    return model.predict_batch(model.example_inputs(size))


def _parameters(module: Any) -> int:
    return len(list(module.parameters()))


def _times(original_s: float, candidate_s: float) -> Any:
    """A `time_pair` that reports fixed medians: the decision, without timing anything."""

    def time_pair(model: TorchModel, original: Any, candidate: Any, inputs: Any) -> Any:
        return original_s, candidate_s

    return time_pair


# ---------------------------------------------------------------------------------------------
# The transform and the comparison


def test_the_optimized_graph_answers_like_the_loaded_one(model: TorchModel) -> None:
    candidate = freeze_and_optimize(model.module)

    assert candidate is not model.module
    for size in (1, 4, 33):
        inputs = model.example_inputs(size)
        assert (
            outputs_match(
                model.run_module(model.module, inputs), model.run_module(candidate, inputs)
            )
            is None
        )


def test_outputs_match_within_the_tolerance_scaled_to_the_output() -> None:
    big = np.array([[1000.0, 0.0]], dtype=np.float32)
    # 1000 x ATOL apart at the zero: an absolute error judged at that output's scale.
    near = np.array([[1000.0, 1000 * ATOL * 0.9]], dtype=np.float32)
    assert outputs_match({"y": big}, {"y": near}) is None
    far = big * np.float32(1 + 20 * RTOL)
    assert outputs_match({"y": big}, {"y": far}) == (
        f"y differs in 1 of 2 values, by up to 2 (allowed rtol {RTOL:g}, atol 0.01)"
    )


def test_an_infinite_reference_value_does_not_widen_the_tolerance() -> None:
    want = np.array([np.inf, 1.0, np.nan], dtype=np.float32)
    assert outputs_match({"y": want}, {"y": want.copy()}) is None
    off = np.array([-np.inf, 1.0, 2.0], dtype=np.float32)
    assert outputs_match({"y": want}, {"y": off}) == (
        f"y differs in 2 of 3 values, by up to nan (allowed rtol {RTOL:g}, atol {ATOL:g})"
    )


@pytest.mark.parametrize(
    ("actual", "problem"),
    [
        ({"ids": np.array([1, 3])}, "ids differs (compared exactly: int64)"),
        ({"ids": np.array([1, 2], dtype=np.int32)}, "ids is int32[2] instead of int64[2]"),
        ({"other": np.array([1, 2])}, "outputs ['other'] instead of ['ids']"),
    ],
)
def test_outputs_match_names_the_first_difference(actual: dict[str, Any], problem: str) -> None:
    assert outputs_match({"ids": np.array([1, 2])}, actual) == problem


# ---------------------------------------------------------------------------------------------
# The decision


def test_kept_when_it_answers_the_same_and_is_faster(model: TorchModel) -> None:
    loaded = model.module
    expected = {size: _outputs(model, size) for size in SIZES}

    outcome = optimize_graph(model, SIZES, "auto", time_pair=_times(0.010, 0.008))

    assert outcome.optimized
    assert outcome.describe() == (
        f"graph optimized ({OPTIMIZATION}; batch 1 10.00 -> 8.00 ms, batch 4 10.00 -> 8.00 ms)"
    )
    assert model.module is not loaded
    assert _parameters(model.module) == 0  # frozen: the weights are constants now
    for size in SIZES:
        assert outputs_match(expected[size], _outputs(model, size)) is None


def test_kept_when_equal_within_the_noise(model: TorchModel) -> None:
    loaded = model.module
    assert optimize_graph(model, SIZES, "auto", time_pair=_times(0.010, 0.0104)).optimized
    assert model.module is not loaded


def test_slower_keeps_the_loaded_graph(model: TorchModel) -> None:
    loaded = model.module

    outcome = optimize_graph(model, SIZES, "auto", time_pair=_times(0.010, 0.011))

    assert outcome == GraphOutcome(
        False, f"{OPTIMIZATION} was slower at batch 1 10.00 -> 11.00 ms", outcome.seconds
    )
    assert outcome.describe().startswith("graph as loaded: ")
    assert model.module is loaded


def test_different_outputs_keep_the_loaded_graph(model: TorchModel) -> None:
    loaded = model.module
    expected = _outputs(model, 1)

    def scaled(module: Any) -> Any:
        # A real optimized graph of a model that is not quite this one: 0.1% larger scores.
        return freeze_and_optimize(torch.jit.script(Scaled(module, 1.001).eval()))

    outcome = optimize_graph(model, SIZES, "auto", transform=scaled, time_pair=_times(1.0, 0.1))

    assert not outcome.optimized
    assert outcome.reason.startswith(f"{OPTIMIZATION} changed outputs at batch 1: scores differs")
    assert model.module is loaded
    np.testing.assert_array_equal(_outputs(model, 1)["scores"], expected["scores"])


def test_an_error_while_optimizing_keeps_the_loaded_graph(model: TorchModel) -> None:
    loaded = model.module

    def fails(module: Any) -> Any:
        raise RuntimeError("freezing is not supported here\nsecond line of a long trace")

    outcome = optimize_graph(model, SIZES, "auto", transform=fails)

    assert outcome.describe() == (
        f"graph as loaded: {OPTIMIZATION} failed (RuntimeError: freezing is not supported here)"
    )
    assert model.module is loaded


def test_an_error_of_the_optimized_graph_keeps_the_loaded_graph(model: TorchModel) -> None:
    loaded = model.module

    def wrong_arity(module: Any) -> Any:
        return torch.jit.script(torch.nn.Bilinear(16, 16, 8).eval())  # wants two inputs

    outcome = optimize_graph(model, SIZES, "auto", transform=wrong_arity)

    assert outcome.reason.startswith(f"{OPTIMIZATION} failed (RuntimeError: ")
    assert model.module is loaded


def test_no_sizes_to_check_on_leaves_the_module_as_loaded(model: TorchModel) -> None:
    loaded = model.module

    outcome = optimize_graph(model, (), "auto", time_pair=_times(1.0, 0.1))

    assert outcome.describe() == (
        "graph as loaded: no warm-up batch sizes to check the optimized graph on"
    )
    assert model.module is loaded


def test_off_leaves_the_module_as_loaded(model: TorchModel) -> None:
    loaded = model.module

    def never(module: Any) -> Any:
        raise AssertionError("off must not transform")

    outcome = optimize_graph(model, SIZES, "off", transform=never)

    assert outcome == GraphOutcome(False, "optimize off")
    assert model.module is loaded


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        ("builtin://mlp", "not a TorchScript model (Sequential)"),
        ("tests.runtime.handlers:Doubler", "not a TorchScript model (python)"),
    ],
)
def test_what_is_not_torchscript_stays_as_loaded(uri: str, reason: str) -> None:
    loaded = load_model(uri, device="cpu")
    before = getattr(loaded, "module", None)

    assert optimize_graph(loaded, SIZES, "auto") == GraphOutcome(False, reason)
    assert getattr(loaded, "module", None) is before


def test_a_model_on_a_gpu_stays_as_loaded(model: TorchModel) -> None:
    # Decided from the device before anything runs, so a CPU machine can check it.
    on_gpu = TorchModel(
        name="small",
        uri="small.pt",
        module=model.module,
        inputs=model.inputs,
        outputs=model.outputs,
        device="cuda:0",
        platform=model.platform,
    )

    outcome = optimize_graph(on_gpu, SIZES, "auto")

    assert outcome.describe() == (
        f"graph as loaded: device cuda:0; {OPTIMIZATION} is applied on the CPU only"
    )
    assert on_gpu.module is model.module


# ---------------------------------------------------------------------------------------------
# Where it runs: the model process (and the server's process without one)


@pytest.fixture
def processes(script_path: Path) -> Iterator[ProcessModel]:
    config = ModelProcessConfig(str(script_path), "small", "cpu", 1, SIZES, (), "auto")
    started = ProcessModel.start(config)
    yield started
    started.close()


def test_the_model_process_serves_what_it_decided_and_reports_it(
    processes: ProcessModel, model: TorchModel
) -> None:
    graph = processes.graph
    # Which graph won depends on this machine's timing; either way the outcome names it with
    # the warm-up sizes' times, and the answers are the loaded graph's.
    assert graph.describe().startswith(
        (
            f"graph optimized ({OPTIMIZATION}; batch 1 ",
            f"graph as loaded: {OPTIMIZATION} was slower",
        )
    )
    assert "batch 4 " in graph.reason or "batch 1 " in graph.reason
    assert graph.seconds > 0
    for size in (1, 4, 7):
        inputs = model.example_inputs(size)
        assert outputs_match(model.predict_batch(inputs), processes.predict_batch(inputs)) is None


def test_off_reaches_the_model_process(script_path: Path) -> None:
    config = ModelProcessConfig(str(script_path), "small", "cpu", 1, SIZES, (), "off")
    started = ProcessModel.start(config)
    try:
        assert started.graph == GraphOutcome(False, "optimize off")
    finally:
        started.close()


def test_without_a_model_process_the_server_process_decides(script_path: Path) -> None:
    opened = open_model(
        str(script_path),
        device="cpu",
        threads=1,
        warm_up_sizes=SIZES,
        model_process=False,
        optimize="off",
    )
    assert opened.graph.describe() == "graph as loaded: optimize off"
    assert isinstance(opened.model, TorchModel)
    assert _parameters(opened.model.module) == 4  # as loaded: not frozen


# ---------------------------------------------------------------------------------------------
# The setting


def test_the_setting_defaults_to_auto_for_serve_and_work() -> None:
    assert resolve_settings({"model": "builtin://mlp"}, environ={}).optimize == "auto"
    assert WorkerSettings.model_fields["optimize"].default == "auto"


def test_the_setting_from_the_environment_and_the_flag() -> None:
    environ = {ENV_OPTIMIZE: "off"}
    assert resolve_settings({"model": "builtin://mlp"}, environ=environ).optimize == "off"
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--model", "builtin://mlp", "--optimize", "off"])
    flags = {"model": args.model, "optimize": args.optimize}
    assert resolve_settings(flags, environ={ENV_OPTIMIZE: "auto"}).optimize == "off"
    assert f"env {ENV_OPTIMIZE}; default 'auto'" in " ".join(parser.format_help().split())


def test_a_bad_value_names_the_variable_and_the_choices() -> None:
    with pytest.raises(SettingsError) as raised:
        resolve_settings({"model": "builtin://mlp"}, environ={ENV_OPTIMIZE: "fast"})
    assert str(raised.value) == (
        f"environment variable {ENV_OPTIMIZE}: Input should be 'auto' or 'off'"
    )


class _Started(Exception):
    """Raised by a stand-in `ProcessModel.start` with the config it was given."""


@pytest.fixture
def config_seen(monkeypatch: pytest.MonkeyPatch) -> None:
    def start(config: ModelProcessConfig, instances: int = 1) -> ProcessModel:
        raise _Started(config.optimize)

    monkeypatch.setattr(ProcessModel, "start", start)


@pytest.mark.usefixtures("config_seen")
def test_serve_and_work_hand_the_setting_to_the_model_processes() -> None:
    from inferstack.runtime.server.lifecycle import open_served_model
    from inferstack.runtime.worker.process import WorkerProcess
    from inferstack.runtime.worker.settings import resolve_settings as resolve_worker

    environ = {ENV_OPTIMIZE: "off"}
    with pytest.raises(_Started) as served:
        open_served_model(resolve_settings({"model": "builtin://mlp"}, environ=environ), "mlp")
    flags = {"model": "builtin://mlp", "queue": "sqs://jobs", "results": "s3://r/out"}
    with pytest.raises(_Started) as worked:
        WorkerProcess(resolve_worker(flags, environ=environ))._load_model()
    assert served.value.args == worked.value.args == ("off",)
