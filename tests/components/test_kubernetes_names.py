"""Names that reach a label value or a query are checked, and label values are escaped.

Issue 22 item 8: namespace `x"}) or vector(1000) #` passed and landed in KEDA's PromQL query.
"""

from __future__ import annotations

import ast
import re

import pytest

from inferstack.components.kubernetes.options import (
    KubernetesOptions,
    parse_options,
    queue_name_problem,
)
from inferstack.components.kubernetes.queues import promql_matchers, promql_string
from inferstack.components.kubernetes.workloads import scraped_label_selector
from inferstack.errors import SpecError
from tests.components.factories import make_spec

INJECTION = 'x"}) or vector(1000) #'


@pytest.mark.parametrize("field", ["namespace", "keda_namespace", "prometheus_namespace"])
def test_a_namespace_that_is_not_a_dns1123_label_is_refused(field: str) -> None:
    with pytest.raises(SpecError, match=f"inferstack:kubernetes.{field}: .*not a Kubernetes"):
        parse_options({field: INJECTION}, source="inferstack:kubernetes")
    for bad in ("Inference", "-inference", "inference-", "a" * 64, "in.ference"):
        with pytest.raises(SpecError):
            parse_options({field: bad}, source="inferstack:kubernetes")
    assert parse_options({field: "a" * 63}, source="inferstack:kubernetes")


def test_a_queue_url_that_could_break_out_of_a_query_is_refused() -> None:
    for bad in (INJECTION, "jobs sub", "jobs\\sub", "jobs'", "jobs\n", "{jobs}"):
        with pytest.raises(SpecError, match="inferstack:kubernetes.queue.url"):
            parse_options({"queue": {"url": bad}}, source="inferstack:kubernetes")
    uri = "pubsub://projects/p-123456/subscriptions/jobs"
    assert parse_options({"queue": {"url": uri}}, source="s").queue.url == uri


@pytest.mark.parametrize(
    ("kind", "good", "bad"),
    [
        ("sqs", ["jobs", "jobs_1-a", "a" * 80, "jobs.fifo"], ["a" * 81, "jobs.x", "jo bs", ""]),
        ("pubsub", ["jobs", "j~o+b%s.1_-", "a" * 255], ["1jobs", "jo", "goog-jobs", "a" * 256]),
        ("redis-streams", ["jobs:1", "jobs/a"], ["jobs x", 'jobs"', ""]),
    ],
)
def test_queue_names_follow_their_clouds_rules(kind: str, good: list[str], bad: list[str]) -> None:
    assert [name for name in good if queue_name_problem(kind, name)] == []
    assert all(queue_name_problem(kind, name) for name in bad)


def test_a_queue_name_of_the_wrong_form_names_its_field() -> None:
    spec = make_spec(batch__queue={"kind": "pubsub", "name": "goog-jobs"})
    options = KubernetesOptions.model_validate({"queue": {"url": "9jobs"}})
    problems = {p.path: p.message for p in options.problems(spec)}
    assert "not a Pub/Sub name" in problems["batch.queue.name"]
    assert "not a Pub/Sub name" in problems["inferstack:kubernetes.queue.url"]


@pytest.mark.parametrize(
    "value", ['a"b', "a\\b", 'a\\"b', '\\"}) or vector(1) #', "line\nbreak\x7f", "ünï"]
)
def test_a_label_value_is_escaped_as_a_promql_string(value: str) -> None:
    literal = promql_string(value)
    assert literal[0] == literal[-1] == '"'
    # PromQL follows Go's escaping; for these escapes Python's literal syntax reads the same.
    assert ast.literal_eval(literal) == value
    assert '"' not in re.sub(r"\\.", "", literal[1:-1]), "an unescaped quote ends the string"


def test_the_query_builders_escape_every_label_value() -> None:
    assert promql_matchers({"a": 'x"y', "b": "z"}) == 'a="x\\"y",b="z"'
    selector = scraped_label_selector(make_spec(), "realtime", 'ns"x')
    assert selector.startswith('namespace="ns\\"x",')


def test_the_role_keda_assumes_is_a_full_role_arn() -> None:
    for bad in ("arn:aws:iam::*:role/keda", "arn:aws:iam::123456789012:root", "keda"):
        with pytest.raises(SpecError, match="inferstack:kubernetes.queue.aws_role_arn"):
            parse_options({"queue": {"aws_role_arn": bad}}, source="inferstack:kubernetes")
    role = "arn:aws:iam::123456789012:role/keda-reader"
    assert parse_options({"queue": {"aws_role_arn": role}}, source="s").queue.aws_role_arn == role


@pytest.mark.parametrize(
    "project",
    ["Acme", "acme", "1acme-prod", "acme-prod-", "a" * 31, 'p"} or vector(1)', "acme_prod"],
)
def test_queue_gcp_project_follows_googles_project_id_rule(project: str) -> None:
    """Issue 22: `queue.gcp_project` lands in KEDA's query and the worker's queue URI; Google's
    rule (6-30 lowercase letters, digits, hyphens; a letter first; no trailing hyphen)."""
    with pytest.raises(SpecError, match=r"queue\.gcp_project: .*not a Google Cloud project ID"):
        parse_options({"queue": {"gcp_project": project}}, source="inferstack:kubernetes")


def test_queue_gcp_project_accepts_a_project_id() -> None:
    options = parse_options({"queue": {"gcp_project": "acme-prod-1"}}, source="test")
    assert options.queue.gcp_project == "acme-prod-1"
