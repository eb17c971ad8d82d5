"""`inferstack serve` and `inferstack profile` from the command line."""

from __future__ import annotations

import json
import socket

import pytest

from inferstack.cli import main
from inferstack.profile import load_profile


def test_serve_refuses_bad_settings_before_loading_anything(capsys, monkeypatch):
    monkeypatch.setenv("INFERSTACK_MAX_QUEUE_DELAY_MS", "-3")
    assert main(["serve", "--model", "builtin://mlp"]) == 2
    error = capsys.readouterr().err
    assert "environment variable INFERSTACK_MAX_QUEUE_DELAY_MS" in error
    assert "greater than or equal to 0" in error


@pytest.mark.parametrize("model_process", ["true", "false"])
def test_serve_reports_a_model_that_cannot_load_and_exits_2(capsys, model_process):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    code = main(
        ["serve", "--model", "builtin://resnet", "--host", "127.0.0.1", "--port", port]
        + ["--model-process", model_process]
    )
    assert code == 2
    error = capsys.readouterr().err
    assert "inferstack serve: cannot load the model: unknown built-in model" in error
    assert "Traceback" not in error


@pytest.mark.parametrize(
    ("model_process", "where"), [("true", "in a model process"), ("false", "in this process")]
)
def test_profile_writes_a_valid_profile_with_measured_and_assumed_parts(
    tmp_path, model_process, where
):
    out = tmp_path / "doubler.json"
    code = main(
        [
            "profile",
            "--model",
            "tests.runtime.handlers:Doubler",
            "--out",
            str(out),
            "--batch-sizes",
            "4,1,2",
            "--seconds",
            "0.01",
            "--threads",
            "1",
            "--model-process",
            model_process,
        ]
    )
    assert code == 0
    profile = load_profile(out)
    assert profile.cold_start.model_load.note.endswith(where)
    assert [point.batch_size for point in profile.batches] == [1, 2, 4]
    assert profile.hardware.kind == "cpu"
    assert profile.hardware.threads == 1
    parts = profile.cold_start
    assert parts.model_load.source == parts.warmup.source == "measured"
    assert parts.node_provision.source == parts.image_pull.source == "assumed"
    assert "not measurable" in parts.node_provision.note
    assert json.loads(out.read_text())["model"] == "tests.runtime.handlers:Doubler"


def test_profile_rejects_bad_batch_sizes(tmp_path, capsys):
    args = ["profile", "--model", "builtin://mlp", "--out", str(tmp_path / "p.json")]
    assert main([*args, "--batch-sizes", "8,zero"]) == 2
    assert "--batch-sizes: expected comma-separated positive integers" in capsys.readouterr().err
