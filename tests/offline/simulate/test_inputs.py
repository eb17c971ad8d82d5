"""The simulator reads a stack through the stack program's reader: every target's options count."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from inferstack.offline.discovery import ProgramLocation, engine_config, read_project
from inferstack.offline.simulate.cli import DEFAULT_START, parse_start
from inferstack.offline.simulate.engine import run_exact
from inferstack.offline.simulate.errors import SimulateError
from inferstack.offline.simulate.inputs import load_location, load_stack
from inferstack.offline.simulate.report import summarize

REPO = Path(__file__).resolve().parents[3]
START = parse_start(DEFAULT_START)


def _aws_prod(**aws: object) -> ProgramLocation:
    project = read_project(REPO)
    config = engine_config(project, "aws-prod")
    options = {**json.loads(config["inferstack:aws"]), **aws}
    config["inferstack:aws"] = json.dumps(options)
    return ProgramLocation(project, REPO, project.program_dir, "aws-prod", config)


def test_the_aws_queue_retention_option_reaches_the_simulated_queue():
    default = load_location(_aws_prod(), START).configured.batch
    short = load_location(_aws_prod(message_retention_seconds=60), START).configured.batch
    assert default is not None
    assert short is not None
    assert default.retention_s == 4 * 24 * 3600  # SQS's default, as the AWS component sets it
    assert short.retention_s == 60


def test_a_backlog_older_than_the_retention_is_lost():
    """A freshly deployed batch pool starts at zero: items wait out a cold start, over 60 s."""
    runs = {}
    for retention in (None, 60):
        changes = {} if retention is None else {"message_retention_seconds": retention}
        scenario = load_location(_aws_prod(**changes), START).configured
        batch_only = replace(
            scenario, realtime=None, spot_interruptions_per_node_hour=0.0, opening="floor"
        )
        runs[retention] = summarize(
            run_exact(batch_only, np.zeros(900), START, seed=4), timeline=False
        )["batch"]
    assert runs[None]["items_lost"] == 0
    assert runs[60]["items_lost"] > 0
    assert runs[60]["processed"] < runs[None]["processed"]


def test_the_gcp_stack_simulates_with_its_subscription_retention():
    batch = load_stack("gcp-prod", REPO, START).configured.batch
    assert batch is not None
    assert batch.retention_s == 7 * 24 * 3600


def test_the_kubernetes_stack_keeps_its_backlog():
    batch = load_stack("dev", REPO, START).configured.batch
    assert batch is not None
    assert batch.retention_s == float("inf")


def test_bad_aws_options_are_refused_by_simulate_as_by_preview():
    with pytest.raises(SimulateError) as caught:
        load_location(_aws_prod(region="af-south-1"), START)
    assert "inferstack:aws.region: af-south-1 has no g6 instances" in str(caught.value)


def test_a_pod_start_measured_on_a_cpu_is_flagged_for_the_gpu_pools():
    # The dev stack's profile is the demo model on a CPU: a pod on a kept node starts in 0.32 s
    # there, which would make every scale-down and scale-up on the pool's GPU look free.
    inputs = load_stack("dev", REPO, START)
    assert len(inputs.warnings) == 2  # the realtime and the batch pool
    realtime = inputs.warnings[0]
    assert "0.32 s" in realtime
    assert "cpu: AMD EPYC" in realtime
    assert inputs.plan.realtime is not None
    assert inputs.plan.realtime.spec.gpu.type in realtime
    assert "looks nearly free" in realtime
