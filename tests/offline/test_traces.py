"""One trace reader for fit-traffic, simulate and tune: the new user's log export runs unchanged.

The export the issue's user had: epoch milliseconds in a `ts_ms` column, rows out of time order
(several servers interleaved), extra columns. The same file goes through all three commands,
and a tab-separated copy and a 1% sample of it read the same way.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from inferstack.cli import main
from inferstack.components.planning.traces import TraceError, read_trace

REPO = Path(__file__).resolve().parents[2]
START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
RPS = 4.0
MINUTES = 20


def export(path: Path, *, delimiter: str = ",", keep: float = 1.0) -> Path:
    """A log export: request id, epoch-ms time, status, latency; rows not in time order."""
    rng = random.Random(7)
    rows, at = [], 0.0
    while (at := at + rng.expovariate(RPS)) < MINUTES * 60:
        if rng.random() < keep:
            stamp = round((START.timestamp() + at) * 1000)
            rows.append([f"r{len(rows)}", str(stamp), "200", f"{rng.uniform(5, 40):.1f}"])
    # Two servers' logs concatenated, each in order: the whole is not.
    rows = rows[::2] + rows[1::2]
    lines = [delimiter.join(["request_id", "ts_ms", "status", "latency_ms"])]
    lines += [delimiter.join(row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_the_reader_detects_column_format_order_and_delimiter(tmp_path: Path) -> None:
    comma = read_trace(export(tmp_path / "log.csv"))
    tab = read_trace(export(tmp_path / "log.tsv", delimiter="\t"))
    assert (comma.column, comma.timestamp_format) == ("ts_ms", "epoch-ms")
    assert comma.unsorted_rows > 0
    assert comma.stamps == sorted(comma.stamps)
    assert comma.stamps[0] >= START
    assert tab.stamps == comma.stamps
    assert tab.delimiter == "\t"
    assert "tab-separated" in tab.notes()
    assert any("were sorted" in note for note in comma.notes())


def test_a_sample_rate_outside_zero_to_one_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match=r"--sample-rate: 100 is not a share in \(0, 1\]"):
        read_trace(export(tmp_path / "log.csv"), sample_rate=100)


def test_the_new_users_trace_runs_unchanged_through_all_three(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    trace = str(export(tmp_path / "log.csv"))

    code, out, err = run(capsys, "fit-traffic", "--trace", trace)
    assert code == 0, err
    assert "# read epoch milliseconds from column 'ts_ms'" in out
    assert "were sorted" in out
    fitted = yaml.safe_load(out)["traffic"]
    assert fitted["peak_rps"] >= RPS

    flags = ("--project-dir", str(REPO), "--stack", "dev", "--trace", trace)
    code, out, err = run(capsys, "simulate", *flags, "--days", "0.005", "--json")
    assert code == 0, err
    document: dict[str, Any] = json.loads(out)
    assert "epoch milliseconds from column 'ts_ms'" in document["traffic"]
    assert "were sorted" in document["traffic"]
    assert document["scenarios"][0]["requests"] > 0

    code, out, err = run(
        capsys,
        "tune",
        *flags,
        "--days",
        "0.003",
        "--seeds",
        "2",
        "--knobs",
        "min_replicas",
        "--json",
    )
    assert code in (0, 1), err  # 1: nothing met the SLO, still a full report
    tuned = json.loads(out)
    assert "epoch milliseconds from column 'ts_ms'" in tuned["traffic"]
    assert tuned["simulations"] > 0


def test_a_one_percent_sample_fits_the_full_logs_rates(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    full = str(export(tmp_path / "full.csv"))
    sample = str(export(tmp_path / "sample.tsv", delimiter="\t", keep=0.1))
    _, out, _ = run(capsys, "fit-traffic", "--trace", full)
    code, sampled_out, err = run(capsys, "fit-traffic", "--trace", sample, "--sample-rate", "0.1")
    assert code == 0, err
    assert "each row counts as 10 requests" in sampled_out
    whole = yaml.safe_load(out)["traffic"]["baseline_rps"]
    sampled = yaml.safe_load(sampled_out)["traffic"]["baseline_rps"]
    # The median minute of a 10% sample is within Poisson noise of the full log's.
    assert sampled == pytest.approx(whole, rel=0.35)
