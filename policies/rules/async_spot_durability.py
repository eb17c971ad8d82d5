"""async-spot-durability: queue work on spot capacity survives interruptions and poison messages.

Why: spot workers die mid-job. The queue must hand an unfinished message to another worker
(visibility timeout longer than the longest job, or it is redelivered while still running and done
twice), must park messages that keep failing (a dead-letter queue, or they cycle forever and
starve the queue), and the worker's termination grace period must fit inside the provider's
interruption notice (AWS 2 min, GCP and Azure 30 s), or the node is gone before the worker
finishes draining and its in-flight message is abandoned. On GKE the pods get only part of
GCP's 30 s: graceful node shutdown gives non-system pods the first 15 s and keeps the last 15 s
for critical system pods (GKE documentation, "Spot VMs", "Termination and graceful shutdown of
Spot VMs"; a node pool may extend the period on GKE 1.35+, then raise
`gkeNonSystemPodShutdownSeconds`).

Fix: give every SQS queue a redrive policy to a DLQ and a visibility timeout above the max job
time; give every Pub/Sub subscription a dead-letter policy; set `terminationGracePeriodSeconds`
of spot workers at or below the interruption notice.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

from inferstack.contract import resource_types
from inferstack.contract.clouds import INTERRUPTION_NOTICE_SECONDS
from inferstack.contract.labels import MAX_JOB_SECONDS_ANNOTATION
from inferstack.policies import aws, kube
from inferstack.policies.resources import (
    UNKNOWN,
    Finding,
    Resource,
    as_number,
    format_number,
    get_path,
    mapping_of,
)
from inferstack.policies.rule import Rule, config_value

SQS_QUEUE: Final = resource_types.SQS_QUEUE
SQS_REDRIVE_POLICY: Final = "aws:sqs/redrivePolicy:RedrivePolicy"
SQS_REDRIVE_ALLOW_POLICY: Final = "aws:sqs/redriveAllowPolicy:RedriveAllowPolicy"
PUBSUB_SUBSCRIPTION: Final = resource_types.PUBSUB_SUBSCRIPTION
SQS_DEFAULT_VISIBILITY_SECONDS: Final = 30.0
KUBERNETES_DEFAULT_GRACE_SECONDS: Final = 30.0
GKE_NON_SYSTEM_POD_SHUTDOWN_SECONDS: Final = 15
"""GKE's default share of a Spot VM's 30 s shutdown for non-system pods (GKE, "Spot VMs")."""


def _dead_letter_queues(resources: Sequence[Resource]) -> set[str]:
    """URNs of queues that are some other queue's redrive target (or allow being one)."""
    targets: set[str] = set()
    for resource in resources:
        if resource.type in {SQS_QUEUE, SQS_REDRIVE_POLICY}:
            targets.update(resource.property_dependencies.get("redrivePolicy", ()))
        elif resource.type == SQS_REDRIVE_ALLOW_POLICY:
            targets.update(resource.property_dependencies.get("queueUrl", ()))
    return targets


def _redrive_problem(queue: Resource, resources: Sequence[Resource]) -> str | None:
    policy = queue.get("redrivePolicy")
    if policy is None or policy == "":
        attached = any(
            r.type == SQS_REDRIVE_POLICY
            and queue.urn in r.property_dependencies.get("queueUrl", ())
            for r in resources
        )
        if attached:
            return None
        return (
            "SQS queue has no redrivePolicy, so a message that keeps failing is retried forever; "
            "add a redrivePolicy with deadLetterTargetArn (a DLQ) and maxReceiveCount"
        )
    if not isinstance(policy, str):
        return None  # computed in preview (it names the DLQ's ARN): judged after creation
    try:
        document = json.loads(policy)
    except ValueError:
        return "SQS queue redrivePolicy is not JSON; write it with json.dumps({...})"
    if not isinstance(document, Mapping) or not document.get("deadLetterTargetArn"):
        return "SQS queue redrivePolicy names no deadLetterTargetArn; point it at a DLQ's ARN"
    return None


def _max_job_seconds(
    queue: Resource, resources: Sequence[Resource], default: float | None
) -> float | None:
    """The longest job declared for a queue: its tag, its consumers' annotation, or the config."""
    declared: list[float] = []
    tag = as_number(mapping_of(queue.get("tags")).get(MAX_JOB_SECONDS_ANNOTATION))
    if tag is not None:
        declared.append(tag)
    for consumer in resources:
        if consumer.type in resource_types.WORKLOAD_TYPES and consumer.depends_on(queue.urn):
            notes = dict(kube.object_annotations(consumer))
            notes.update(mapping_of(get_path(kube.pod_template(consumer), "metadata.annotations")))
            value = as_number(notes.get(MAX_JOB_SECONDS_ANNOTATION))
            if value is not None:
                declared.append(value)
    if declared:
        return max(declared)
    return default


NOTICE_NAMES: Final = {"gcp": "part of the GCP notice GKE gives non-system pods"}


def _notice_seconds(providers: frozenset[str], config: Mapping[str, Any]) -> tuple[float, str]:
    """The shortest notice among the providers whose spot nodes the pods admit, and whose."""
    notices = {
        "aws": float(config_value(config, RULE, "awsInterruptionNoticeSeconds")),
        # What kubelet's graceful shutdown leaves a non-system pod of the GCP notice.
        "gcp": min(
            float(config_value(config, RULE, "gcpInterruptionNoticeSeconds")),
            float(config_value(config, RULE, "gkeNonSystemPodShutdownSeconds")),
        ),
        "azure": float(config_value(config, RULE, "azureInterruptionNoticeSeconds")),
    }
    candidates = notices if "" in providers else {p: notices[p] for p in providers}
    provider = min(candidates, key=lambda name: candidates[name])
    return candidates[provider], provider


def _sqs_findings(
    queue: Resource,
    resources: Sequence[Resource],
    dead_letter: set[str],
    default_job: float | None,
) -> list[Finding]:
    """A job queue without a DLQ, or whose visibility timeout is shorter than its longest job."""
    findings = []
    is_dlq = queue.urn in dead_letter or queue.get("redriveAllowPolicy") is not None
    problem = None if is_dlq else _redrive_problem(queue, resources)
    if problem:
        findings.append(Finding(problem, queue.urn))
    max_job = _max_job_seconds(queue, resources, default_job)
    raw_visibility = queue.get("visibilityTimeoutSeconds")
    if max_job is None or raw_visibility is UNKNOWN or is_dlq:
        return findings
    visibility = as_number(raw_visibility)
    if visibility is None:
        visibility = SQS_DEFAULT_VISIBILITY_SECONDS
    if visibility < max_job:
        findings.append(
            Finding(
                f"SQS queue visibility timeout ({format_number(visibility)} s) is shorter "
                f"than the max job time ({format_number(max_job)} s), so a message is "
                "redelivered while its first worker still runs it; set "
                f"visibilityTimeoutSeconds to at least {format_number(max_job)}",
                queue.urn,
            )
        )
    return findings


def _subscription_findings(subscription: Resource, dead_letter_topics: set[str]) -> list[Finding]:
    """A subscription without a dead-letter policy (dead-letter topics' own ones excepted)."""
    on_dead_letter_topic = bool(
        dead_letter_topics & set(subscription.property_dependencies.get("topic", ()))
    )
    policy = subscription.get("deadLetterPolicy")
    if on_dead_letter_topic or not (policy is None or policy == {}):
        return []
    return [
        Finding(
            "Pub/Sub subscription has no deadLetterPolicy, so a message that keeps "
            "failing is redelivered forever; add deadLetterPolicy with "
            "deadLetterTopic and maxDeliveryAttempts",
            subscription.urn,
        )
    ]


def _worker_findings(workload: Resource, config: Mapping[str, Any]) -> list[Finding]:
    """A workload on spot whose grace period outlasts the provider's interruption notice."""
    spec = kube.pod_spec(workload)
    admission = kube.spot_admission(spec)
    if admission is None:
        return []
    grace = as_number(spec.get("terminationGracePeriodSeconds"))
    if grace is None:
        grace = KUBERNETES_DEFAULT_GRACE_SECONDS
    notice, provider = _notice_seconds(admission.providers, config)
    if grace <= notice:
        return []
    what = NOTICE_NAMES.get(provider, f"{provider.upper()} interruption notice")
    return [
        Finding(
            f"{kube.kind_of(workload.type)} runs on spot ({admission.reason}) with "
            f"terminationGracePeriodSeconds {format_number(grace)}, longer than the "
            f"{what} ({format_number(notice)} s): the node is "
            "reclaimed before the worker finishes draining; set "
            f"terminationGracePeriodSeconds to at most {format_number(notice)}",
            workload.urn,
        )
    ]


def check(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[Finding]:
    """Findings for queues, subscriptions and spot workers that can lose or loop on work."""
    configured_job = config_value(config, RULE, "maxJobSeconds")
    default_job = float(configured_job) if configured_job is not None else None
    dead_letter = _dead_letter_queues(resources)
    dead_letter_topics = {
        urn
        for r in resources
        if r.type == PUBSUB_SUBSCRIPTION
        for urn in r.property_dependencies.get("deadLetterPolicy", ())
    }
    # Karpenter's interruption queue carries EC2 events, not jobs: nothing to redrive or time.
    interruption = aws.interruption_queues(resources)
    findings = []
    for resource in resources:
        if resource.type == SQS_QUEUE and resource.urn not in interruption:
            findings += _sqs_findings(resource, resources, dead_letter, default_job)
        elif resource.type == PUBSUB_SUBSCRIPTION:
            findings += _subscription_findings(resource, dead_letter_topics)
        elif resource.type in resource_types.WORKLOAD_TYPES:
            findings += _worker_findings(resource, config)
    return findings


def _seconds(description: str, default: int) -> dict[str, Any]:
    return {"type": "integer", "minimum": 1, "default": default, "description": description}


RULE: Final = Rule(
    name="async-spot-durability",
    description="Queue work on spot capacity must survive interruptions and poison messages.",
    doc=__doc__,
    severity="high",
    enforcement="mandatory",
    check_stack=check,
    config_schema={
        "maxJobSeconds": {
            "type": ["integer", "null"],
            "minimum": 1,
            "default": None,
            "description": (
                "max job time for queues whose consumers declare none (annotation or tag "
                f"{MAX_JOB_SECONDS_ANNOTATION}); null skips the visibility check for them"
            ),
        },
        "awsInterruptionNoticeSeconds": _seconds(
            "AWS spot interruption notice", INTERRUPTION_NOTICE_SECONDS["aws"]
        ),
        "gcpInterruptionNoticeSeconds": _seconds(
            "GCP spot/preemptible termination notice", INTERRUPTION_NOTICE_SECONDS["gcp"]
        ),
        "gkeNonSystemPodShutdownSeconds": _seconds(
            "of the GCP notice, what GKE's graceful node shutdown gives non-system pods (the "
            "rest is kept for critical system pods)",
            GKE_NON_SYSTEM_POD_SHUTDOWN_SECONDS,
        ),
        "azureInterruptionNoticeSeconds": _seconds(
            "Azure spot eviction notice", INTERRUPTION_NOTICE_SECONDS["azure"]
        ),
    },
)
