"""Profile formats 3 and 4: the server path's overhead and its answer spacing, recorded by the
profiler, used by the replica."""

from __future__ import annotations

import copy
import socket
import sys
import time
from typing import Any

import numpy as np
import pytest

from inferstack.errors import SpecError
from inferstack.offline.simulate.inputs import compute_model
from inferstack.offline.simulate.replica import (
    FINE_RATIO,
    BatcherParams,
    KernelTables,
    Recorder,
    Replica,
    advance,
    percentile,
)
from inferstack.profile import PROFILE_FORMAT_VERSION, parse_profile
from inferstack.runtime.server_overhead import (
    PARTS,
    _read_response,
    _stamp_arrivals,
    answer_spacing_ms,
    fit_line,
    part_cycles_ms,
)
from tests.components.factories import PROFILE

OVERHEAD: dict[str, Any] = {
    "per_request_ms": 0.1,
    "per_batch_ms": 1.5,
    "points": [
        {"batch_size": 1, "batch_cycle_ms": 3.6, "compute_ms": 2.0, "overhead_ms": 1.6},
        {"batch_size": 16, "batch_cycle_ms": 11.1, "compute_ms": 6.0, "overhead_ms": 3.1},
    ],
    "request": "JSON, one row per request, HTTP/1.1 keep-alive over loopback",
}


def with_overhead(version: int) -> dict[str, Any]:
    data = copy.deepcopy(PROFILE)
    data["format_version"] = version
    data["server_overhead"] = copy.deepcopy(OVERHEAD)
    return data


def test_format_3_carries_the_server_overhead_and_formats_1_and_2_still_load() -> None:
    profile = parse_profile(with_overhead(3))
    assert profile.server_overhead is not None
    assert profile.server_overhead.at(16) == pytest.approx(1.5 + 0.1 * 16)
    for old in (1, 2):
        assert parse_profile({**PROFILE, "format_version": old}).server_overhead is None


def test_a_server_overhead_in_an_older_format_is_refused_with_the_fix() -> None:
    with pytest.raises(SpecError, match="server_overhead is a format 3 field") as error:
        parse_profile(with_overhead(2))
    assert "set format_version: 3 or remove it" in str(error.value)


def test_the_replica_adds_the_overhead_to_every_batch_size() -> None:
    bare = compute_model(parse_profile({**PROFILE, "format_version": 2}))
    loaded = compute_model(parse_profile(with_overhead(3)))
    bare_median, bare_sigma = bare.tables(32)
    median, sigma = loaded.tables(32)
    sizes = np.arange(33)
    assert median[1:] == pytest.approx(bare_median[1:] + 0.0015 + 0.0001 * sizes[1:])
    # The spread is fitted after the shift: the same p99 - p50 over a larger median.
    assert (sigma[1:] <= bare_sigma[1:] + 1e-12).all()
    assert loaded.throughput(16) < bare.throughput(16)


def test_between_measured_sizes_the_replica_follows_the_measured_points() -> None:
    """The path's cost bends with the batch size (low at 1, flat from 4 to 8 on this machine):
    a line through the sizes misplaces a measured size's cycle by up to half a millisecond, so
    at a measured size the simulated batch takes the measured cycle, and past the largest the
    line's slope continues from its point."""
    bent = copy.deepcopy(OVERHEAD)
    bent["points"] = [
        {"batch_size": b, "batch_cycle_ms": 9.0, "compute_ms": 5.0, "overhead_ms": cost}
        for b, cost in ((1, 0.6), (4, 1.4), (8, 1.5), (32, 2.0))
    ]
    data = with_overhead(3)
    data["server_overhead"] = bent
    bare_median, _ = compute_model(parse_profile({**PROFILE, "format_version": 2})).tables(40)
    median, _ = compute_model(parse_profile(data)).tables(40)
    added_ms = (median - bare_median) * 1000
    assert added_ms[[1, 4, 8, 32]] == pytest.approx([0.6, 1.4, 1.5, 2.0])
    assert added_ms[6] == pytest.approx(1.45)  # halfway between 4 and 8
    assert added_ms[40] == pytest.approx(2.0 + 0.1 * 8)  # the line's 0.1 ms per request


@pytest.mark.parametrize(
    ("points", "expected"),
    [
        ([(1, 1.1), (8, 1.8), (32, 4.2)], (1.0, 0.1)),
        ([(1, 2.0)], (2.0, 0.0)),
        ([(1, 3.0), (32, 1.0)], (2.0, 0.0)),  # falls with b: all of it per batch
        # Below zero at b=0: through the origin, the larger size's overhead per request.
        ([(1, -0.5), (32, 3.2)], (0.0, 0.1)),
    ],
)
def test_the_fit_is_a_non_negative_line(
    points: list[tuple[int, float]], expected: tuple[float, float]
) -> None:
    assert fit_line(points) == pytest.approx(expected, abs=1e-9)


def test_one_size_off_the_line_does_not_tilt_the_fit() -> None:
    """A stall while one size was measured: least squares read 0.92 + 0.030 b (0.1 ms high at
    b=32, 0.4 ms at b=1)."""
    sizes = (1, 4, 8, 16, 32)
    points = [(b, 0.5 + 0.04 * b + (1.5 if b == 8 else 0.0)) for b in sizes]
    per_batch, per_request = fit_line(points)
    assert (per_batch, per_request) == pytest.approx((0.5, 0.04), abs=1e-9)
    assert per_batch + 32 * per_request == pytest.approx(0.5 + 0.04 * 32, abs=1e-9)


def test_each_part_is_timed_from_the_end_of_the_batch_before_it() -> None:
    # 10 ms batches, one 60-ms stall inside the third part: only that part's cycle moves.
    gaps = [0.010] * (PARTS * 4)
    gaps[9] += 0.060
    ends = np.concatenate([[100.0], 100.0 + np.cumsum(gaps)])
    cycles = part_cycles_ms(list(ends))
    assert len(cycles) == PARTS
    assert cycles[2] == pytest.approx(10.0 + 60.0 / 4)
    assert [c for i, c in enumerate(cycles) if i != 2] == pytest.approx([10.0] * (PARTS - 1))
    assert float(np.median(cycles)) == pytest.approx(10.0)


def test_too_few_batch_ends_for_the_parts_are_refused() -> None:
    with pytest.raises(ValueError, match="cannot make"):
        part_cycles_ms([0.0] * PARTS)


def with_spacing(version: int) -> dict[str, Any]:
    data = with_overhead(version)
    data["server_overhead"]["points"][1]["answer_spacing_ms"] = 0.2
    return data


def test_format_4_carries_the_answer_spacing_and_format_3_still_loads_without() -> None:
    assert PROFILE_FORMAT_VERSION == 4
    profile = parse_profile(with_spacing(4))
    assert profile.server_overhead is not None
    assert [p.answer_spacing_ms for p in profile.server_overhead.points] == [None, 0.2]
    assert compute_model(profile).answer_spacing_points_s == ((16, 0.0002),)
    assert compute_model(parse_profile(with_overhead(3))).answer_spacing_points_s == ()


def test_an_answer_spacing_in_format_3_is_refused_with_the_fix() -> None:
    with pytest.raises(SpecError, match="answer_spacing_ms is a format 4 field") as error:
        parse_profile(with_spacing(3))
    assert "set format_version: 4 or remove it" in str(error.value)


def test_the_spacing_follows_the_points_and_holds_past_either_end() -> None:
    data = with_spacing(4)
    data["server_overhead"]["points"] = [
        {**point, "answer_spacing_ms": gap}
        for point, gap in zip(
            [
                {"batch_size": b, "batch_cycle_ms": 9.0, "compute_ms": 5.0, "overhead_ms": 1.0}
                for b in (4, 32)
            ],
            (0.2, 0.1),
            strict=True,
        )
    ]
    spacing_ms = compute_model(parse_profile(data)).spacing(40) * 1000
    assert spacing_ms[[1, 4, 18, 32, 40]] == pytest.approx([0.2, 0.2, 0.15, 0.1, 0.1])


def one_batch_latencies_ms(spacing_points: tuple[tuple[int, float], ...]) -> list[float]:
    """Four requests at t=0 on an idle replica that batches four: each one's latency."""
    compute = compute_model(parse_profile(with_overhead(3)))
    if spacing_points:
        compute = compute_model(parse_profile(with_spacing(4)))
    params = BatcherParams(4, (4,), 1.0, 16, None, 1)
    # No spread: every batch takes its median, so only the spacing tells the answers apart.
    flat = type(compute)(
        sizes=compute.sizes,
        p50_s=compute.p50_s,
        p99_s=compute.p50_s,
        overhead_points_s=compute.overhead_points_s,
        answer_spacing_points_s=spacing_points,
    )
    tables = KernelTables.build(params, flat, budget_s=1.0)
    latencies = []
    for position in range(4):
        recorder = Recorder.empty(1)
        replica = Replica(params, ready_at=0.0)
        arrive = np.zeros(4)
        advance(replica, tables, arrive, arrive, 10.0, np.random.default_rng(0), recorder)
        # The position-th answer: the histogram's value at its share of the four.
        latencies.append(percentile(recorder.fine, (position + 0.5) / 4, FINE_RATIO) * 1000)
    return latencies


def test_a_batchs_answers_leave_one_spacing_apart_after_the_batch_ends() -> None:
    """The server writes a batch's answers one after another: the i-th (from 0) leaves i + 1
    spacings after the batch ends; the replica's occupancy (the next batch's start) is not
    moved."""
    bare = one_batch_latencies_ms(())
    spaced = one_batch_latencies_ms(((16, 0.0002),))
    assert bare == pytest.approx([bare[0]] * 4, rel=0.011)  # one histogram bin
    added = [s - b for s, b in zip(spaced, bare, strict=True)]
    assert added == pytest.approx([0.2, 0.4, 0.6, 0.8], abs=0.011 * bare[0])


def test_the_answer_spacing_is_the_median_batch_spread_over_its_gaps() -> None:
    # Batches of 4: answers 0.1 ms apart, one batch stalled 5 ms between its answers.
    batches = [[t, t + 0.0001, t + 0.0002, t + 0.0003] for t in np.arange(5) * 0.01]
    batches[2][3] += 0.005
    answers = [time for batch in batches for time in batch]
    assert answer_spacing_ms(answers, 4) == pytest.approx(0.1)
    assert answer_spacing_ms(answers, 1) is None
    with pytest.raises(ValueError, match="do not make a batch"):
        answer_spacing_ms(answers[:3], 4)


ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"


@pytest.mark.skipif(sys.platform != "linux", reason="SO_TIMESTAMPNS is Linux's")
def test_answers_are_timed_when_they_arrived_not_when_they_were_read() -> None:
    """A client that falls behind reads two answers (two connections) one after the other;
    their arrival times still lie as far apart as the server sent them."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        clients = [socket.create_connection(listener.getsockname()) for _ in range(2)]
        servers = [listener.accept()[0] for _ in clients]
        try:
            for client in clients:
                _stamp_arrivals(client)
            servers[0].sendall(ANSWER)
            time.sleep(0.05)  # the second answer leaves at least 50 ms after the first
            servers[1].sendall(ANSWER)
            time.sleep(0.01)  # both are in before the client reads either
            first_read, body, first_arrived = _read_response(clients[0])
            second_read, _, second_arrived = _read_response(clients[1])
        finally:
            for each in [*clients, *servers]:
                each.close()
    assert body == b"{}"
    assert first_arrived is not None
    assert second_arrived is not None
    assert second_arrived - first_arrived >= 0.05
    assert second_read - first_read < second_arrived - first_arrived
