"""The front door's parts without processes: the acceptor count, the link, the error mapping."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from inferstack.contract import env as env_names
from inferstack.runtime.batcher import (
    BatchTooLargeError,
    DrainingError,
    InputRejectedError,
    ModelError,
    QueueFullError,
    RequestTimeoutError,
)
from inferstack.runtime.failures import transient
from inferstack.runtime.frontdoor.acceptor import Acceptor
from inferstack.runtime.frontdoor.remote import describe, rebuild
from inferstack.runtime.frontdoor.shared import SharedState
from inferstack.runtime.frontdoor.wire import Link, open_link, pack_arrays, unpack_arrays
from inferstack.runtime.server.settings import ServerSettings, resolve_settings
from inferstack.runtime.settings import SettingsError, cpu_budget, cpu_quota

# The kernel's documentation of cpu.max (Documentation/admin-guide/cgroup-v2.rst, "CPU" ->
# "Interface Files"): 'A read-write two value file which exists on non-root cgroups. The
# default is "max 100000". The maximum bandwidth limit. It's in the following format::
# $MAX $PERIOD which indicates that the group may consume up to $MAX in each $PERIOD duration.
# "max" for $MAX indicates no limit. If only one number is written, $MAX is updated.'


@pytest.mark.parametrize(
    ("cpu_max", "cpus"),
    [
        ("max 100000\n", None),  # The documented default: no limit.
        ("max\n", None),
        ("200000 100000\n", 2),  # $MAX $PERIOD: two CPUs' worth each period.
        ("150000 100000\n", 2),  # 1.5 CPUs: rounded up, a process runs on whole CPUs.
        ("50000 100000\n", 1),
        ("1600000 100000\n", 16),
        ("400000 200000\n", 2),  # Another period, same share.
        ("300000\n", 3),  # Only $MAX: the default period.
    ],
)
def test_cpu_quota_reads_the_kernels_cpu_max_format(cpu_max, cpus):
    assert cpu_quota(cpu_max) == cpus


@pytest.mark.parametrize("cpu_max", ["", "a b", "100000 0", "-1 100000", "1 2 3"])
def test_cpu_quota_refuses_what_the_kernel_never_writes(cpu_max):
    with pytest.raises(ValueError, match="cpu.max"):
        cpu_quota(cpu_max)


def test_cpu_budget_is_the_quota_within_the_affinity_mask(tmp_path: Path):
    available = len(os.sched_getaffinity(0))
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("100000 100000\n")
    assert cpu_budget(cpu_max) == 1
    cpu_max.write_text("max 100000\n")
    assert cpu_budget(cpu_max) == available
    cpu_max.write_text(f"{(available + 4) * 100000} 100000\n")
    assert cpu_budget(cpu_max) == available  # A quota above the mask: the mask.
    assert cpu_budget(tmp_path / "absent") == available  # cgroup v1 or no cgroup: the mask.


@pytest.mark.parametrize(("cpus", "acceptors"), [(1, 1), (2, 1), (3, 2), (16, 15)])
def test_one_cpu_is_left_to_the_model_and_there_is_always_an_acceptor(cpus, acceptors):
    # Automatic acceptors beside automatic torch threads (the split's other cases:
    # tests/runtime/test_settings.py).
    assert ServerSettings(model="builtin://mlp", acceptors=0).resolved_acceptors(cpus) == acceptors


def test_the_acceptors_setting_by_flag_or_environment():
    assert env_names.ENV_ACCEPTORS == "INFERSTACK_ACCEPTORS"
    default = resolve_settings({"model": "builtin://mlp"}, environ={})
    assert default.acceptors == 1
    assert default.resolved_acceptors() == 1  # The default: one process, as before.
    by_env = resolve_settings({"model": "builtin://mlp"}, environ={"INFERSTACK_ACCEPTORS": "3"})
    assert by_env.resolved_acceptors() == 3
    by_flag = resolve_settings(
        {"model": "builtin://mlp", "acceptors": 2}, environ={"INFERSTACK_ACCEPTORS": "3"}
    )
    assert by_flag.resolved_acceptors() == 2
    auto = ServerSettings(model="builtin://mlp", acceptors=0)
    assert auto.resolved_acceptors() == max(1, cpu_budget() - 1)
    with pytest.raises(SettingsError, match="INFERSTACK_ACCEPTORS"):
        resolve_settings({"model": "builtin://mlp"}, environ={"INFERSTACK_ACCEPTORS": "-1"})


async def _pair() -> tuple[Link, list[tuple[object, dict[str, np.ndarray]]], asyncio.Queue[None]]:
    ours, theirs = socket.socketpair()
    received: list[tuple[object, dict[str, np.ndarray]]] = []
    arrived: asyncio.Queue[None] = asyncio.Queue()

    def receive(header, payload):
        received.append((header[0], unpack_arrays(header[1], header[2], payload)))
        arrived.put_nowait(None)

    sender = await open_link(ours, lambda *_: None, lambda: None)
    await open_link(theirs, receive, lambda: None)
    return sender, received, arrived


@pytest.mark.parametrize(
    "rows", [[1], [3, 0, 70_000, 1], [2_000_000], [5] * 50], ids=["one", "mixed", "large", "many"]
)
def test_the_link_carries_tensors_byte_for_byte_in_order(rows):
    asyncio.run(_carry(rows))


async def _carry(rows: list[int]) -> None:
    sender, received, arrived = await _pair()
    rng = np.random.default_rng(3)
    sent = []
    for index, width in enumerate(rows):
        arrays = {
            "x": rng.standard_normal((1, width), dtype=np.float32),
            "ids": np.arange(index, index + 3, dtype=np.int64).reshape(3, 1)[::2],  # Strided.
        }
        layout, pickled, buffers = pack_arrays(arrays)
        sender.send((index, layout, pickled), buffers)
        sent.append(arrays)
    for _ in rows:
        await asyncio.wait_for(arrived.get(), 10)
    assert [index for index, _ in received] == list(range(len(rows)))
    for (_, got), arrays in zip(received, sent, strict=True):
        for name, array in arrays.items():
            np.testing.assert_array_equal(got[name], array)
            assert got[name].dtype == array.dtype
            assert got[name].flags.writeable  # torch.from_numpy needs a writable buffer.


def test_the_link_pickles_only_object_tensors():
    layout, pickled, buffers = pack_arrays({"text": np.array([b"a", b"bc"], dtype=object)})
    assert (layout, buffers) == (None, [])

    async def carry() -> list[bytes]:
        sender, received, arrived = await _pair()
        sender.send(("bytes", layout, pickled), buffers)
        await asyncio.wait_for(arrived.get(), 10)
        return list(received[0][1]["text"])

    assert asyncio.run(carry()) == [b"a", b"bc"]


@pytest.mark.parametrize(
    "error",
    [
        QueueFullError("model 'm' queue is full (4 requests); retry later", 3),
        DrainingError("model 'm' is draining"),
        RequestTimeoutError("waited 12 ms"),
        BatchTooLargeError("the request has 9 rows"),
        InputRejectedError("model 'm' rejected this request's input 'x'"),
        ModelError("model 'm' failed on a batch of 2 rows: ValueError: no"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_what_the_batcher_raised_is_raised_again_in_the_acceptor(error):
    again = rebuild(*describe(error))
    assert type(again) is type(error)
    assert str(again) == str(error)
    assert not transient(again)
    if isinstance(error, QueueFullError):
        assert isinstance(again, QueueFullError)
        assert again.retry_after_s == 3


def test_a_transient_model_failure_stays_transient_for_the_503():
    error = ModelError("model 'm' failed on a batch of 2 rows: CUDA out of memory")
    again = rebuild(*describe(error))
    assert isinstance(again, ModelError)
    assert transient(again)
    assert str(again) == str(error)


def test_the_benchmark_script_parses_its_arguments():
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "frontdoor.py"
    result = subprocess.run(
        [sys.executable, str(script), "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "--acceptors" in result.stdout


def test_each_acceptor_holds_its_share_of_the_server_wide_limits():
    settings = ServerSettings(
        model="builtin://mlp", max_connections=10, max_body_bytes_in_flight=3_000_000
    )
    acceptor = Acceptor(settings, 0, 3, SharedState())
    assert acceptor.http.limits.max_connections == 4  # 3 x 4 >= 10: ceil, never 0.
    assert acceptor.http.limits.max_body_bytes_in_flight == 1_000_000
    automatic = Acceptor(ServerSettings(model="builtin://mlp"), 0, 3, SharedState())
    assert automatic.http.limits.max_connections == 0  # Each process's descriptor limit.
