"""The knobs' ranges and the fields a candidate sets: a floor may rise above the stack's ceiling
(bursty traffic needs one near its peak), and then the ceiling rises with it."""

from __future__ import annotations

from pathlib import Path

from inferstack.offline.simulate.cli import DEFAULT_START, parse_start
from inferstack.offline.simulate.inputs import load_stack
from inferstack.offline.tune.knobs import MAX_REPLICAS_PATH, field_values, realtime_knobs

REPO = Path(__file__).resolve().parents[3]
SERVICE = {"realtime": {"scaling": {"metric": "rps", "min_replicas": "auto", "max_replicas": 12}}}


def _knobs():
    spec = load_stack("dev", REPO, parse_start(DEFAULT_START)).spec
    return realtime_knobs(spec, 12, (1, 8, 16, 32, 64))


def test_the_floor_ranges_up_to_the_ceiling_knob_not_the_stack_max():
    knobs = _knobs()
    assert max(knobs["min_replicas"].values) == max(knobs["max_replicas"].values)
    assert max(knobs["min_replicas"].values) > 12


def test_a_floor_above_the_stacks_max_raises_the_max_with_it():
    knobs = _knobs()
    floor_path = knobs["min_replicas"].path
    fields = field_values((("min_replicas", 20),), knobs, {}, SERVICE)
    assert fields == {floor_path: 20, MAX_REPLICAS_PATH: 20}
    # Within the ceiling, or with a searched max above it, the max is left alone.
    assert field_values((("min_replicas", 8),), knobs, {}, SERVICE) == {floor_path: 8}
    both = field_values((("max_replicas", 24), ("min_replicas", 20)), knobs, {}, SERVICE)
    assert both == {floor_path: 20, MAX_REPLICAS_PATH: 24}
