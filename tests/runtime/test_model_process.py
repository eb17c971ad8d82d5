"""Model instances in child processes: same outputs as in-process, errors and deaths reported."""

from __future__ import annotations

import os
import re
import signal
import threading
from collections.abc import Iterator
from multiprocessing.connection import wait

import numpy as np
import pytest

from inferstack.runtime.model_process import (
    CpuPlan,
    ModelProcessConfig,
    ModelProcessError,
    ProcessModel,
    own_cpus,
)
from inferstack.runtime.models import ModelLoadError, configure_torch_threads, load_model

HANDLERS = "tests.runtime.handlers"
EXIT_WAIT_S = 30.0


def _config(uri: str, name: str = "model", sizes: tuple[int, ...] = (1,)) -> ModelProcessConfig:
    return ModelProcessConfig(uri, name, "cpu", 1, sizes)


@pytest.fixture(scope="module")
def mlp() -> Iterator[ProcessModel]:
    model = ProcessModel.start(_config("builtin://mlp", "mlp", (1, 4)))
    yield model
    model.close()


@pytest.fixture
def picky() -> Iterator[ProcessModel]:
    model = ProcessModel.start(_config(f"{HANDLERS}:Picky"))
    yield model
    model.close()


def test_outputs_equal_the_in_process_model(mlp: ProcessModel) -> None:
    configure_torch_threads(1)
    local = load_model("builtin://mlp", device="cpu")
    inputs = local.example_inputs(5)

    remote = mlp.predict_batch(inputs)

    assert list(remote) == ["output"]
    assert remote["output"].dtype == np.float32
    np.testing.assert_array_equal(remote["output"], local.predict_batch(inputs)["output"])


def test_a_batch_larger_than_the_socket_buffers_crosses_whole_both_ways(
    mlp: ProcessModel,
) -> None:
    # 300 rows of 512 floats: 600 KiB each way, several times what one socket read returns.
    configure_torch_threads(1)
    local = load_model("builtin://mlp", device="cpu")
    inputs = local.example_inputs(300)

    remote = mlp.predict_batch(inputs)

    np.testing.assert_array_equal(remote["output"], local.predict_batch(inputs)["output"])


def test_empty_arrays_cross_without_bytes_and_the_next_batch_is_not_shifted() -> None:
    model = ProcessModel.start(_config(f"{HANDLERS}:Pid"))
    try:
        empty = model.predict_batch({"x": np.zeros(0, dtype=np.float32)})
        after = model.predict_batch({"x": np.zeros(3, dtype=np.float32)})
    finally:
        model.close()
    assert empty["pid"].shape == (0,)
    assert empty["pid"].dtype == np.int64
    assert after["pid"].tolist() == [model.pids[0]] * 3


def test_own_cpus_gives_each_instance_its_threads_from_the_end_and_the_server_the_rest() -> None:
    assert own_cpus([0, 1], instances=1, threads=1) == CpuPlan(((1,),), (0,))
    assert own_cpus([3, 0, 2, 1, 5, 4], instances=2, threads=2) == CpuPlan(((2, 3), (4, 5)), (0, 1))


@pytest.mark.parametrize(("cpus", "instances", "threads"), [([0], 1, 1), ([0, 1], 1, 2)])
def test_own_cpus_pins_nothing_when_the_server_would_have_no_cpu_left(
    cpus: list[int], instances: int, threads: int
) -> None:
    assert own_cpus(cpus, instances, threads) is None


def test_each_instance_runs_on_the_cpus_its_config_gives_it() -> None:
    allowed = sorted(os.sched_getaffinity(0))
    wanted = ((allowed[-1],), (allowed[0],))
    config = ModelProcessConfig(f"{HANDLERS}:Pid", "model", "cpu", 1, (1,), wanted)
    model = ProcessModel.start(config, instances=2)
    try:
        pids = model.pids
        assert all(pid is not None for pid in pids)
        placed = [os.sched_getaffinity(pid or 0) for pid in pids]
    finally:
        model.close()
    assert placed == [set(cpus) for cpus in wanted]
    assert os.sched_getaffinity(0) == set(allowed)  # The caller is left as it was.


def test_signature_and_load_timings_come_from_the_process(mlp: ProcessModel) -> None:
    assert [spec.to_json() for spec in mlp.inputs] == [
        {"name": "input", "datatype": "FP32", "shape": [-1, 512]}
    ]
    assert [spec.name for spec in mlp.outputs] == ["output"]
    assert mlp.platform == "pytorch_libtorch"
    assert mlp.device == "cpu"
    assert mlp.load_s > 0
    assert mlp.warm_up_s > 0
    assert mlp.pids[0] != os.getpid()


def test_bytes_tensors_and_several_outputs_cross_the_pipe() -> None:
    model = ProcessModel.start(_config(f"{HANDLERS}:Strings"))
    try:
        outputs = model.predict_batch({"text": np.array([b"ab", b"xyz"], dtype=np.object_)})
    finally:
        model.close()
    assert outputs["upper"].tolist() == [b"AB", b"XYZ"]
    assert outputs["length"].tolist() == [2, 3]
    assert outputs["length"].dtype == np.int64


def test_a_model_exception_reaches_the_caller_and_the_process_keeps_serving(
    picky: ProcessModel,
) -> None:
    with pytest.raises(ModelProcessError, match=r"ValueError: negative input -1\.0"):
        picky.predict_batch({"x": np.array([[-1.0, 2.0]], dtype=np.float32)})

    ok = picky.predict_batch({"x": np.array([[1.0, 2.0]], dtype=np.float32)})
    assert ok["y"].tolist() == [[1.0, 2.0]]


def test_signals_to_the_process_group_leave_the_model_to_the_server(picky: ProcessModel) -> None:
    pid = picky.pids[0]
    assert pid is not None
    os.kill(pid, signal.SIGTERM)  # What a terminal's Ctrl-C or `kill -TERM -PGID` would do.
    os.kill(pid, signal.SIGINT)

    ok = picky.predict_batch({"x": np.array([[3.0, 4.0]], dtype=np.float32)})
    assert ok["y"].tolist() == [[3.0, 4.0]]


def test_a_dead_process_fails_the_batch_with_its_exit_code(picky: ProcessModel) -> None:
    pid = picky.pids[0]
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    assert wait(picky.sentinels, timeout=EXIT_WAIT_S) == picky.sentinels

    with pytest.raises(ModelProcessError, match=rf"model process {pid} exited \(code -9\)"):
        picky.predict_batch({"x": np.array([[1.0, 2.0]], dtype=np.float32)})


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        (f"{HANDLERS}:NoPredict", "has no predict_batch() method"),
        ("builtin://resnet", "the built-in model is builtin://mlp"),
    ],
)
def test_a_load_failure_in_the_process_is_a_model_load_error(uri: str, message: str) -> None:
    with pytest.raises(ModelLoadError, match=re.escape(message)):
        ProcessModel.start(_config(uri))


def test_each_instance_is_its_own_process_and_batches_run_side_by_side() -> None:
    model = ProcessModel.start(_config(f"{HANDLERS}:Pid"), instances=2)
    seen: list[int] = []
    lock = threading.Lock()

    def call() -> None:
        pid = int(model.predict_batch({"x": np.zeros(1, dtype=np.float32)})["pid"][0])
        with lock:
            seen.append(pid)

    try:
        threads = [threading.Thread(target=call) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(EXIT_WAIT_S)
        assert len(seen) == 8
        assert set(seen) <= set(model.pids)
        assert len(set(model.pids)) == 2
        assert os.getpid() not in seen
    finally:
        model.close()


def test_close_ends_every_process_cleanly() -> None:
    model = ProcessModel.start(_config(f"{HANDLERS}:Pid"), instances=2)
    sentinels = model.sentinels

    model.close()

    assert wait(sentinels, timeout=0) == sentinels
    assert model.exit_codes == [0, 0]
