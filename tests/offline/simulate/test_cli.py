"""`inferstack simulate` on the repository's stacks, and the errors bad input gets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inferstack.cli import SUBCOMMANDS, main
from inferstack.offline.simulate.cli import DEFAULT_START, parse_start
from inferstack.offline.simulate.inputs import load_stack

REPO = Path(__file__).resolve().parents[3]


def _simulate(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["simulate", "--project-dir", str(REPO), *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_simulate_is_a_subcommand():
    assert SUBCOMMANDS["simulate"].module == "inferstack.offline.simulate.cli"


def test_the_dev_stack_prints_the_three_way_table(capsys):
    code, out, err = _simulate(capsys, "--stack", "dev", "--days", "0.002")
    assert code == 0, err
    header = out.splitlines()[1]
    for name in ("configured", "naive", "competent default"):
        assert name in header
    assert "p99" in out
    assert "monthly cost" in out


def test_json_is_one_document_with_a_timeline_and_the_same_seed_repeats(capsys):
    args = ("--stack", "dev", "--days", "0.002", "--json", "--seed", "4")
    _, first, _ = _simulate(capsys, *args)
    _, second, _ = _simulate(capsys, *args)
    document = json.loads(first)
    assert first == second
    assert [s["scenario"] for s in document["scenarios"]] == [
        "configured",
        "naive",
        "competent default",
    ]
    assert len(document["scenarios"][0]["timeline"]) == 3


def test_the_rendered_scaled_object_is_what_runs():
    inputs = load_stack("dev", REPO, parse_start(DEFAULT_START))
    assert inputs.configured.realtime is not None
    scaler = inputs.configured.realtime.scaler
    assert scaler is not None
    assert scaler.polling_seconds == 10
    assert scaler.cooldown_seconds == 300
    assert scaler.behavior.scale_down.stabilization_seconds == 300
    assert [p.type for p in scaler.behavior.scale_up.policies] == ["Percent", "Pods"]
    assert inputs.sizing.realtime is not None
    assert scaler.demand_threshold == inputs.sizing.realtime.target_per_replica.value
    assert len(scaler.crons) == 1
    assert scaler.crons[0].timezone == "America/New_York"
    batch = inputs.configured.batch
    assert batch is not None
    assert batch.spot
    assert batch.notice_s == 120


def test_scale_to_zero_stack_wakes_through_the_http_add_on():
    inputs = load_stack("scale-to-zero", REPO, parse_start(DEFAULT_START))
    pool = inputs.configured.realtime
    assert pool is not None
    assert pool.scale_to_zero
    assert pool.scaler is not None
    assert pool.scaler.http_wake
    assert pool.scaler.min_replicas == 0
    assert pool.hold_timeout_s > inputs.configured.cold_start.new_node_s


def _trace(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "trace.csv"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--rate-scale", "-2"), "--rate-scale"),
        (("--days", "0"), "--days"),
        (("--stack", "nope"), "no stack 'nope'"),
    ],
)
def test_bad_flags_name_the_input(capsys, tmp_path, args, needle):
    trace = _trace(tmp_path, "TIMESTAMP\n2023-11-16 18:17:03\n2023-11-16 18:17:04\n")
    code, _, err = _simulate(capsys, "--trace", str(trace), *args)
    assert code == 2
    assert needle in err


def test_a_trace_without_timestamps_is_refused(capsys, tmp_path):
    trace = _trace(tmp_path, "ContextTokens,GeneratedTokens\n10,2\n11,3\n")
    code, _, err = _simulate(capsys, "--trace", str(trace))
    assert code == 2
    assert "no column 'TIMESTAMP'" in err
    assert "--timestamp-column" in err


def test_an_unsorted_trace_is_sorted_and_says_so(capsys, tmp_path):
    trace = _trace(
        tmp_path, "TIMESTAMP\n2023-11-16 18:17:05\n2023-11-16 18:17:03\n2023-11-16 18:17:06\n"
    )
    code, out, err = _simulate(capsys, "--trace", str(trace), "--days", "0.001")
    assert code == 0, err
    assert "1 row(s) were out of time order and were sorted" in out


def test_a_bad_row_is_named_by_row_and_column(capsys, tmp_path):
    trace = _trace(tmp_path, "id,when\n1,2023-11-16 18:17:05\n2,soon\n")
    code, _, err = _simulate(capsys, "--trace", str(trace), "--timestamp-column", "WHEN")
    assert code == 2
    assert "trace.csv:3: column 'when': 'soon' is not ISO 8601" in err


def test_a_stack_without_a_realtime_pool_cannot_be_asked_for_latency(capsys, tmp_path):
    (tmp_path / "Pulumi.yaml").write_text(
        "name: t\nruntime: python\nmain: stacks/\nstackConfigDir: stacks\n"
    )
    stacks = tmp_path / "stacks"
    stacks.mkdir()
    # A stack the stack program accepts (simulate reads it as the program does): the plain
    # Kubernetes target binds its SQS queue by hand.
    (stacks / "Pulumi.queue.yaml").write_text(
        "config:\n"
        "  inferstack:kubernetes:\n"
        "    queue: {aws_region: us-east-1, results_uri: s3://jobs-results/out}\n"
        "  inferstack:service:\n"
        "    name: jobs\n"
        "    model: {uri: builtin://mlp}\n"
        "    latency_budget_ms: 100\n"
        "    traffic: {baseline_rps: 0, peak_rps: 1}\n"
        "    batch:\n"
        "      gpu: {type: nvidia-l4}\n"
        "      queue: {kind: sqs, name: jobs}\n"
        "      scaling: {max_replicas: 4}\n"
    )
    code = main(["simulate", "--project-dir", str(tmp_path), "--stack", "queue", "--diurnal"])
    err = capsys.readouterr().err
    assert code == 2
    assert "no realtime pool" in err
    assert "realtime" in err


def test_plot_writes_a_png(capsys, tmp_path):
    target = tmp_path / "sim.png"
    code, out, err = _simulate(capsys, "--stack", "dev", "--days", "0.002", "--plot", str(target))
    assert code == 0, err
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"plot: {target}" in out


def test_plot_runs_the_levers_one_at_a_time(capsys, tmp_path):
    target = tmp_path / "sim.png"
    code, out, err = _simulate(
        capsys, "--stack", "dev", "--days", "0.002", "--plot", str(target), "--json"
    )
    assert code == 0, err
    document = json.loads(out)
    levers = document["levers"]
    assert [row["lever"] for row in levers] == ["naive", "batching", "autoscaling", "spot"]
    configured, naive = document["scenarios"][0], document["scenarios"][1]
    assert levers[0]["monthly_usd"] == naive["monthly_usd"]
    assert levers[-1]["monthly_usd"] == configured["monthly_usd"]
    assert levers[1]["saves_usd"] > 0  # batching carries the peak on fewer replicas


def test_the_simulator_runs_the_plan_the_stack_program_builds():
    inputs = load_stack("dev", REPO, parse_start(DEFAULT_START))
    plan = inputs.plan
    assert inputs.sizing is plan.sizing
    assert inputs.configured.realtime is not None
    scaler = inputs.configured.realtime.scaler
    assert scaler is not None
    assert plan.sizing.realtime is not None
    assert scaler.max_replicas == plan.sizing.realtime.max_replicas.value
    assert inputs.configured.batch is not None
    assert inputs.configured.batch.notice_s == plan.price_cloud.spot_notice_seconds
