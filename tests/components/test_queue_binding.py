"""`QueueBinding.url`: a name or a queue URI of the spec's kind, read one way and said which."""

from __future__ import annotations

import pytest

from inferstack.components.kubernetes.bindings import (
    KubernetesBindings,
    queue_binding,
    queue_name,
    queue_uri,
)
from inferstack.components.kubernetes.options import KubernetesOptions, QueueBinding
from inferstack.components.planning.spec import InferenceServiceSpec, parse_spec
from inferstack.contract.queues import parse_queue_uri
from tests.components.factories import spec_data

REDIS = {"kind": "redis-streams", "redis_address": "redis.data:6379"}


def spec(**queue: str) -> InferenceServiceSpec:
    return parse_spec(spec_data(batch__queue=queue))


def options(url: str, **binding: str) -> KubernetesBindings:
    """The wiring a plain stack declares with `url` (and more of its queue options)."""
    queue = QueueBinding(url=url, results_uri="s3://b/p", **binding)
    return KubernetesBindings.from_options(KubernetesOptions(queue=queue))


def url_problems(service: InferenceServiceSpec, bound: KubernetesBindings) -> list[str]:
    path = "inferstack:kubernetes.queue.url"
    return [p.message for p in bound.problems(service) if p.path == path]


def test_the_issue_case_a_redis_uri_is_read_as_a_uri_not_wrapped_again() -> None:
    service, bound = spec(**REDIS), options("redis://redis.data:6379/0?stream=x")
    assert queue_binding(service, bound).form == "uri"
    assert queue_name(service, bound) == "x"
    assert queue_uri(service, bound) == "redis://redis.data:6379/0?stream=x"
    assert url_problems(service, bound) == []


@pytest.mark.parametrize(
    ("queue", "url", "binding", "name"),
    [
        ({"kind": "sqs"}, "jobs", {"aws_region": "us-east-1"}, "jobs"),
        ({"kind": "sqs"}, "sqs://jobs", {"aws_region": "us-east-1"}, "jobs"),
        (
            {"kind": "sqs"},
            "https://sqs.us-east-1.amazonaws.com/123456789012/jobs",
            {"aws_region": "us-east-1"},
            "https://sqs.us-east-1.amazonaws.com/123456789012/jobs",
        ),
        ({"kind": "pubsub"}, "jobs-sub", {"gcp_project": "proj-1"}, "jobs-sub"),
        (
            {"kind": "pubsub"},
            "pubsub://projects/proj-1/subscriptions/jobs-sub",
            {"gcp_project": "proj-1"},
            "jobs-sub",
        ),
        (REDIS, "jobs", {}, "jobs"),
    ],
)
def test_either_form_is_accepted_and_the_worker_reads_the_same_queue(
    queue: dict[str, str], url: str, binding: dict[str, str], name: str
) -> None:
    service, bound = spec(**queue), options(url, **binding)
    assert url_problems(service, bound) == []
    assert queue_binding(service, bound).form == (
        "uri" if url.startswith(("sqs:", "pubsub:", "redis:")) else "name"
    )
    assert queue_name(service, bound) == name
    assert parse_queue_uri(queue_uri(service, bound)).name == name


@pytest.mark.parametrize(
    ("queue", "url", "binding", "expected"),
    [
        (
            {"kind": "sqs"},
            "redis://redis.data:6379/0?stream=x",
            {"aws_region": "us-east-1"},
            "read as a queue URI (redis://) names a redis-streams queue, but batch.queue.kind "
            "is sqs",
        ),
        (
            {"kind": "pubsub"},
            "pubsub://projects/other/subscriptions/s",
            {"gcp_project": "proj-1"},
            "is in project 'other', but inferstack:kubernetes.queue.gcp_project is 'proj-1'",
        ),
        (
            REDIS,
            "redis://elsewhere:6379/0?stream=x",
            {},
            "is stream 'x' at elsewhere:6379/0, but the worker reads batch.queue.redis_address "
            "redis.data:6379/0",
        ),
        (REDIS, "redis://redis.data:6379/0", {}, "read as a queue URI (redis://): queue URI"),
        ({"kind": "sqs"}, "kafka://broker/topic", {"aws_region": "us-east-1"}, "is not understood"),
        (
            {"kind": "pubsub"},
            "projects/proj-1/subscriptions/s",
            {"gcp_project": "proj-1"},
            "read as a name (no scheme://) is not a subscription ID",
        ),
        (REDIS, "x?stream=y", {}, "read as a name (no scheme://) has characters"),
    ],
)
def test_a_contradictory_or_malformed_url_is_refused_with_the_form_it_was_read_as(
    queue: dict[str, str], url: str, binding: dict[str, str], expected: str
) -> None:
    problems = url_problems(spec(**queue), options(url, **binding))
    assert len(problems) == 1, problems
    assert expected in problems[0]
