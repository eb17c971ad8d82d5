"""Every validation rule of the spec: the field path and the fix are in the message."""

from __future__ import annotations

from pathlib import Path

import pytest

from inferstack.components.planning.spec import load_spec_file, parse_spec
from inferstack.errors import SpecError
from tests.components.factories import VALID_SPEC, make_spec, spec_data


def problems_of(data: object) -> list[str]:
    with pytest.raises(SpecError) as caught:
        parse_spec(data)  # type: ignore[arg-type]
    return [str(problem) for problem in caught.value.problems]


def assert_one_problem(data: object, path: str, *fragments: str) -> None:
    problems = problems_of(data)
    matching = [p for p in problems if p.startswith(f"{path}:")]
    assert matching, f"no problem at {path}; got {problems}"
    for fragment in fragments:
        assert fragment in matching[0], matching[0]


def test_valid_spec_parses_with_defaults() -> None:
    spec = make_spec()
    assert spec.name == "embedder"
    assert spec.batching.queue_limit == 1024
    assert spec.realtime is not None
    assert spec.realtime.scaling.min_replicas == "auto"
    assert spec.batch is not None
    assert spec.batch.capacity.spot is True
    assert spec.batch.capacity.fallback == "on_demand"


@pytest.mark.parametrize(
    ("changes", "path", "fragments"),
    [
        ({"replicas": 3}, "replicas", ["unknown field"]),
        ({"batching__max_batch": 3}, "batching.max_batch", ["unknown field"]),
        ({"latency_budget_ms": None}, "latency_budget_ms", ["required field is missing"]),
        ({"latency_budget_ms": 0}, "latency_budget_ms", ["greater than 0"]),
        ({"name": "Embedder_1"}, "name", ["DNS label"]),
        (
            {"traffic__spikes__0__cron": "0 9 * *"},
            "traffic.spikes[0].cron",
            ["five-field", "0 9 * * 1-5"],
        ),
        (
            {"traffic__spikes__0__cron": "*/5 9 * * *"},
            "traffic.spikes[0].cron",
            ["single minute and hour"],
        ),
        ({"traffic__spikes__0__cron": "61 9 * * *"}, "traffic.spikes[0].cron", ["five-field"]),
        ({"traffic__spikes__0__timezone": "Mars/Olympus"}, "traffic.spikes[0].timezone", ["IANA"]),
        (
            {"traffic__spikes__0__duration_minutes": 0},
            "traffic.spikes[0].duration_minutes",
            ["greater than 0"],
        ),
        ({"traffic__peak_rps": 100}, "traffic.peak_rps", ["below baseline_rps", "at least"]),
        (
            {"traffic__spikes__0__rps": 30000},
            "traffic.spikes",
            ["spikes[0].rps", "raise peak_rps to at least 30000"],
        ),
        (
            {"batching__preferred_batch_sizes": [16, 64]},
            "batching.preferred_batch_sizes",
            ["[64]", "max_batch_size 32"],
        ),
        (
            {"batching__queue_limit": 8},
            "batching.queue_limit",
            ["queue_limit (8)", "raise queue_limit"],
        ),
        (
            {"realtime__gpu__type": "nvidia-rtx9000"},
            "realtime.gpu.type",
            ["unknown GPU type", "nvidia-l4"],
        ),
        ({"realtime__gpu__count": 9}, "realtime.gpu.count", ["less than or equal to 8"]),
        (
            {"realtime__scaling__target_per_replica": 0},
            "realtime.scaling.target_per_replica",
            ["> 0"],
        ),
        (
            {"realtime__scaling__min_replicas": 5, "realtime__scaling__max_replicas": 2},
            "realtime.scaling.max_replicas",
            ["min_replicas (5) exceeds max_replicas (2)"],
        ),
        (
            {"realtime__scaling__max_replicas": 0},
            "realtime.scaling.max_replicas",
            ["max_replicas is 0"],
        ),
        (
            {"realtime__scaling__metric": "gpu_utilization"},
            "realtime.scaling.metric",
            ["queue_depth"],
        ),
        (
            {"realtime__scaling__min_replicas": 0},
            "realtime.scale_to_zero",
            ["scale_to_zero: true"],
        ),
        (
            {"realtime__scale_to_zero": True, "realtime__scaling__min_replicas": 2},
            "realtime.scale_to_zero",
            ["min_replicas to 0"],
        ),
        (
            {"batch__queue": {"kind": "redis-streams"}},
            "batch.queue.redis_address",
            ["redis_address"],
        ),
        ({"batch__queue": {"kind": "kafka"}}, "batch.queue.kind", ["sqs"]),
        (
            {"batch__scaling": {"min_replicas": 4, "max_replicas": 2}},
            "batch.scaling.max_replicas",
            ["exceeds"],
        ),
        ({"batch__scaling": {"min_replicas": 0}}, "batch.scaling.max_replicas", ["missing"]),
        (
            {"batch__scaling": {"max_replicas": 2, "target_per_replica": 0}},
            "batch.scaling.target_per_replica",
            [">= 1"],
        ),
        ({"batch__max_job_seconds": 0}, "batch.max_job_seconds", ["greater than or equal to 1"]),
        ({"realtime": None, "batch": None}, "realtime", ["at least one pool"]),
        (
            {"batching__max_queue_delay_ms": 20},
            "batching.max_queue_delay_ms",
            ["20 is not below latency_budget_ms (20)", "lower max_queue_delay_ms"],
        ),
        (
            {"model": {"uri": "s3://bucket/model.pt"}},
            "model.profile",
            ["required for a non-built-in model", "inferstack profile"],
        ),
        ({"image": "runtime:0.1@sha256:abc"}, "image", ["[registry/]repository[:tag][@sha256:"]),
    ],
)
def test_each_rule_names_the_field_and_the_fix(
    changes: dict[str, object], path: str, fragments: list[str]
) -> None:
    assert_one_problem(spec_data(**changes), path, *fragments)


def test_every_problem_is_reported_at_once() -> None:
    problems = problems_of(
        spec_data(name="BAD", realtime__gpu__type="tpu", batch__max_job_seconds=-1, extra=1)
    )
    paths = {problem.split(":")[0] for problem in problems}
    assert {"name", "realtime.gpu.type", "batch.max_job_seconds", "extra"} <= paths


def test_an_unknown_field_and_a_queue_delay_over_the_guardrail_are_listed_in_one_run() -> None:
    # The two rounds: the unknown fields first, the guardrail only after fixing them.
    data = spec_data(latency_budget_ms=20, batching__max_queue_delay_ms=15, batching__typo=1)
    data["replicas"] = 3
    with pytest.raises(SpecError) as caught:
        parse_spec(data, prefix="inferstack:service")
    paths = [problem.path for problem in caught.value.problems]
    assert paths == [
        "inferstack:service.batching.typo",
        "inferstack:service.replicas",
        "inferstack:service.batching.max_queue_delay_ms",
    ]
    assert "queue-delay-within-budget" in caught.value.problems[2].message
    assert "(spec)" not in str(caught.value)


def test_cross_field_problems_are_all_listed_with_their_fields() -> None:
    problems = problems_of(
        spec_data(
            latency_budget_ms=20,
            batching__max_queue_delay_ms=15,
            realtime__scaling__max_replicas=1000,
            model={"uri": "s3://models/m.pt"},
        )
    )
    paths = [problem.split(": ")[0] for problem in problems]
    assert paths == [
        "batching.max_queue_delay_ms",
        "realtime.scaling.max_replicas",
        "model.profile",
    ]


def test_a_field_that_fails_skips_only_the_checks_that_read_it() -> None:
    # latency_budget_ms is invalid, so the queue-delay check (which reads it) says nothing more,
    # while the GPU ceiling (which does not) is still reported.
    problems = problems_of(spec_data(latency_budget_ms=-1, realtime__scaling__max_replicas=1000))
    paths = [problem.split(": ")[0] for problem in problems]
    assert paths == ["latency_budget_ms", "realtime.scaling.max_replicas"]


def test_not_a_mapping_is_rejected() -> None:
    assert problems_of(["name"]) == ["(spec): expected a mapping of fields, got list"]


def test_error_message_lists_each_problem_on_its_own_line() -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(spec_data(name="BAD", realtime__gpu__type="tpu"))
    text = str(caught.value)
    assert text.startswith("invalid spec: 2 problems")
    assert "\n  - name: " in text
    assert "\n  - realtime.gpu.type: " in text


def test_load_from_yaml_file_plain_and_under_the_config_key(tmp_path: Path) -> None:
    import yaml

    plain = tmp_path / "service.yaml"
    plain.write_text(yaml.safe_dump(VALID_SPEC))
    nested = tmp_path / "nested.yaml"
    nested.write_text(yaml.safe_dump({"inferstack:service": VALID_SPEC}))
    assert load_spec_file(plain) == load_spec_file(nested) == make_spec()


def test_load_from_yaml_file_reports_syntax_errors(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    with pytest.raises(SpecError) as caught:
        load_spec_file(broken)
    assert "not valid YAML" in str(caught.value)


def test_load_from_a_missing_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as caught:
        load_spec_file(tmp_path / "service.yaml")
    assert caught.value.problems[0].path == str(tmp_path / "service.yaml")
    assert "cannot read the spec file (No such file or directory)" in str(caught.value)


@pytest.mark.parametrize(
    "image",
    [
        "ghcr.io/inferstack/runtime:0.1.0",
        "ghcr.io/inferstack/runtime@sha256:" + "a" * 64,
        "ghcr.io/inferstack/runtime:0.1.0@sha256:" + "a" * 64,
        "localhost:5000/runtime:cpu",
    ],
)
def test_an_image_by_tag_digest_or_both_is_accepted(image: str) -> None:
    assert make_spec(image=image).image == image


def test_a_section_rule_and_the_guardrail_are_each_at_their_field_in_one_run() -> None:
    problems = problems_of(
        spec_data(traffic__peak_rps=100, latency_budget_ms=20, batching__max_queue_delay_ms=15)
    )
    paths = [problem.split(": ")[0] for problem in problems]
    assert paths == ["traffic.peak_rps", "batching.max_queue_delay_ms"]
