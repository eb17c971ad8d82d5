"""The benchmark scripts stay importable as the code they measure changes, and the fidelity
benchmark's parts (the fixed-time model, the open-loop client) do what they say against a real
server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from inferstack.cli import main
from inferstack.profile import load_profile
from inferstack.runtime.server_overhead import SERVED_NAME, request_bytes
from tests.servers import BY_FIXTURE
from tests.shared_data import require

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

from fixed_time_model import FEATURES, FixedTime  # noqa: E402
from host_cpu import CpuSampler, host_ticks, tree_cpu_s  # noqa: E402
from loadgen import PYTHON, free_port, start_server, stop_server  # noqa: E402
from openloop import (  # noqa: E402
    LATE_S,
    NoCompiler,
    OpenLoopClient,
    compile_client,
    late_share,
    run_compiled,
    timer_floor,
)
from simulate_fidelity import cpu_split, host_bound, window_percentile  # noqa: E402

from inferstack.offline.simulate.replica import (  # noqa: E402
    COARSE_BINS,
    COARSE_RATIO,
    bin_index,
    percentile,
)


@pytest.mark.parametrize(
    "script",
    [
        "run.py",
        "http_stacks.py",
        "simulate_modes.py",
        "simulate_fidelity.py",
        "openloop.py",
        "memory_bounds.py",
        "tune.py",
        "simulate_days.py",
        "hot_path.py",
        "grpc_protocols.py",
        "frontdoor.py",
    ],
)
def test_benchmark_script_parses_its_arguments(script: str) -> None:
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout


def test_the_fixed_time_model_answers_one_score_per_row_as_its_signature_declares() -> None:
    model = FixedTime()
    rows = np.arange(3 * FEATURES, dtype=np.float32).reshape(3, FEATURES)
    [output] = FixedTime.outputs
    scores = model.predict_batch({"input": rows})[output.name]
    assert scores.shape == (3, 1)
    assert scores.dtype == np.float32
    np.testing.assert_allclose(scores[:, 0], rows.mean(axis=1))


def test_inferstack_profile_measures_the_fixed_time_model_and_its_server_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    monkeypatch.setenv("PYTHONPATH", str(BENCHMARKS))
    out = tmp_path / "fixed.json"
    argv = ["profile", "--model", "fixed_time_model:FixedTime", "--out", str(out)]
    assert main([*argv, "--batch-sizes", "1,4", "--seconds", "0.05", "--threads", "1"]) == 0
    profile = load_profile(out)
    assert profile.format_version == 4
    assert profile.model_digest_of == "handler source"
    assert profile.server_overhead is not None
    assert [p.batch_size for p in profile.server_overhead.points] == [1, 4]
    for point in profile.server_overhead.points:
        assert point.compute_ms == profile.at(point.batch_size).latency_ms.p50
        assert point.overhead_ms == pytest.approx(point.batch_cycle_ms - point.compute_ms)
    one, four = profile.server_overhead.points
    # A batch of one has no spacing; four answers leave one after another, well inside a cycle.
    assert one.answer_spacing_ms is None
    assert four.answer_spacing_ms is not None
    assert 0 < four.answer_spacing_ms < four.batch_cycle_ms / 3


def test_the_open_loop_client_sends_on_its_schedule_and_records_every_answer() -> None:
    port = free_port()
    command = [PYTHON, "-m", "inferstack.cli", "serve", "--model", "fixed_time_model:FixedTime"]
    command += ["--model-name", SERVED_NAME, "--port", str(port), "--grpc-port", "0"]
    server = start_server(command, port, {"PYTHONPATH": str(BENCHMARKS), "FIXED_TIME_A_MS": "1"})
    try:
        due = np.linspace(0.0, 0.5, 40)
        pick = np.zeros(len(due), dtype=np.int64)
        payload = request_bytes({"input": np.ones((1, FEATURES), np.float32)})
        sent, done, status = OpenLoopClient([port], payload, warm_connections=2).run(due, pick)
    finally:
        stop_server(server)
    assert status.tolist() == [200] * len(due)
    assert (sent >= due).all()  # never early
    assert (done > sent).all()
    share = late_share(due, sent)
    assert share == np.mean(sent - due > LATE_S)


@pytest.fixture
def c_client(tmp_path: Path) -> Path:
    """`openloop.c` built with the machine's C compiler (tests/servers.py installs gcc)."""
    try:
        return compile_client(tmp_path)
    except NoCompiler:
        require(False, BY_FIXTURE["c_client"].reason())
        raise


def test_the_compiled_client_sends_on_its_schedule_to_each_server_and_records_every_answer(
    c_client: Path,
) -> None:
    binary = c_client
    ports = [free_port(), free_port()]
    command = [PYTHON, "-m", "inferstack.cli", "serve", "--model", "fixed_time_model:FixedTime"]
    command += ["--model-name", SERVED_NAME, "--grpc-port", "0"]
    env = {"PYTHONPATH": str(BENCHMARKS), "FIXED_TIME_A_MS": "1"}
    servers = [start_server([*command, "--port", str(port)], port, env) for port in ports]
    try:
        due = np.linspace(0.0, 0.5, 40)
        pick = np.arange(len(due)) % 2
        payload = request_bytes({"input": np.ones((1, FEATURES), np.float32)})
        # Two warm connections per server: the rest are opened while sending (open loop).
        sent, done, status = run_compiled(binary, ports, payload, due, pick, warm_connections=2)
    finally:
        for server in servers:
            stop_server(server)
    assert status.tolist() == [200] * len(due)
    assert (sent >= due).all()  # never early
    assert (done > sent).all()


def test_the_compiled_client_refuses_a_schedule_naming_a_port_it_was_not_given(
    c_client: Path,
) -> None:
    with pytest.raises(RuntimeError, match="port index 1, have 1 ports"):
        run_compiled(c_client, [1], b"GET / HTTP/1.1\r\n\r\n", np.array([0.0]), np.array([1]))


def test_without_a_c_compiler_the_benchmark_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CC", raising=False)
    with pytest.raises(NoCompiler, match=r"apt-get install gcc\) or pass --client python"):
        compile_client(tmp_path)


def test_the_timer_floor_is_a_share_of_wake_ups(c_client: Path) -> None:
    share = timer_floor(c_client, 0.2)
    assert 0.0 <= share <= 1.0


@pytest.mark.parametrize("count", [3_000, 20_000])
def test_a_windows_simulated_percentiles_are_placed_within_the_histograms_5_percent_bins(
    count: int,
) -> None:
    # Latencies like a simulated window's: a log-normal batch time after a queueing wait, as
    # many as a 10-s window at 30 % (3,000) and at 90 % of two replicas (20,000) holds.
    for q in (0.5, 0.99):
        placed, middle = [], []
        for seed in range(200):
            rng = np.random.default_rng(seed)
            latency = 0.018 * rng.lognormal(0.0, 0.15, count) + rng.exponential(0.004, count)
            bins = bin_index(latency, COARSE_RATIO, COARSE_BINS)
            hist = np.bincount(bins, minlength=COARSE_BINS)
            exact = float(np.percentile(latency, 100 * q))
            placed.append(abs(window_percentile(hist, q) / exact - 1))
            middle.append(abs(percentile(hist, q, COARSE_RATIO) / exact - 1))
        # Measured over 200 seeds: placed within the bin, median 0.03-0.4 %, at most 1.8 %
        # (p99 of 3,000); the bin's middle (what the simulator's report answers) 1.1-1.6 %.
        assert np.median(placed) < 0.005
        assert max(placed) < 0.025
        assert np.median(middle) > 2 * np.median(placed)


def test_an_empty_window_has_no_percentile() -> None:
    assert np.isnan(window_percentile(np.zeros(COARSE_BINS), 0.99))


def test_the_cpu_sampler_gives_a_process_tree_the_cpu_its_processes_used() -> None:
    # A child that uses 0.3 s of CPU (whatever the machine's load), then waits to be stopped:
    # the sampler reads a tree while its processes live.
    burn = (
        "import sys, time\n"
        "while time.process_time() < 0.3: pass\n"
        "print('done', flush=True); sys.stdin.read()"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", burn], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        with CpuSampler({"child": [child.pid]}, interval=0.05) as sampler:
            assert child.stdout is not None
            assert child.stdout.readline() == "done\n"
        used = tree_cpu_s(child.pid)
    finally:
        child.communicate("")
    assert used >= 0.28  # /proc counts in clock ticks (10 ms)
    first, last = sampler.samples[0], sampler.samples[-1]
    cores = sampler.cores(first[0], last[0])
    sampled = last[2]["child"] - first[2]["child"]
    assert cores["child"] * (last[0] - first[0]) == pytest.approx(sampled)
    assert sampled >= 0.2  # most of it after the first sample
    assert 0.0 <= cores["host"] <= (os.cpu_count() or 1)
    ticks = host_ticks()
    assert set(ticks) == {"host", *(f"cpu{n}" for n in range(len(ticks) - 1))}
    assert all(0 < busy <= total for busy, total in ticks.values())
    assert all(0.0 <= cores[name] <= 1.0 for name in ticks if name != "host")
    assert tree_cpu_s(child.pid) == 0.0  # gone


def test_the_hosts_busy_cores_split_into_servers_client_and_other_tenants() -> None:
    split = cpu_split({"host": 1.5, "cpu0": 0.9, "servers": 0.8, "ours": 1.1}, 2000.0)
    assert split == pytest.approx(
        {"host": 1.5, "cpu0": 0.9, "servers": 0.8, "client": 0.3, "others": 0.4}
        | {"servers_ms_per_answer": 0.4, "ours_ms_per_answer": 0.55}
    )
    # 0.55 CPU ms per answer: every core busy at cores / 0.55 ms.
    assert host_bound(split) == pytest.approx((os.cpu_count() or 1) / 0.00055)
    assert cpu_split({}, 2000.0) == {}
    assert host_bound({}) == float("inf")
