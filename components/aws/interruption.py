"""Karpenter's interruption queue and the EventBridge rules that feed it.

EC2 announces what is about to happen to an instance on EventBridge: a spot interruption
warning (two minutes ahead), a rebalance recommendation (elevated risk, no deadline), an
instance state change (stopping, terminated) and an AWS Health scheduled change (maintenance).
Karpenter reads them from one SQS queue (its `settings.interruptionQueue`); for all but the
rebalance recommendation, which it only records as an event, it cordons the node, launches a
replacement and drains the old node at once: the batch worker gets SIGTERM with the
notice still ahead of it. Without the queue Karpenter learns of a spot loss only when the node
vanishes, and the worker is killed mid-job (eksctl #7697: a wrong Helm key left it unset).

The queue is encrypted, keeps messages five minutes (an event older than that is stale), and
admits sends only from EventBridge on behalf of these four rules, over TLS.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

import pulumi
import pulumi_aws as aws

from inferstack.components.aws import iam
from inferstack.components.aws.options import AwsOptions
from inferstack.components.aws.queue import queue_arn
from inferstack.components.aws.tags import resource_tags
from inferstack.components.planning.plan import ServicePlan

RETENTION_SECONDS: Final = 300
EVENT_PATTERNS: Final[dict[str, dict[str, Any]]] = {
    "spot-interruption": {
        "source": ["aws.ec2"],
        "detail-type": ["EC2 Spot Instance Interruption Warning"],
    },
    "rebalance": {
        "source": ["aws.ec2"],
        "detail-type": ["EC2 Instance Rebalance Recommendation"],
    },
    "state-change": {
        "source": ["aws.ec2"],
        "detail-type": ["EC2 Instance State-change Notification"],
    },
    "scheduled-change": {"source": ["aws.health"], "detail-type": ["AWS Health Event"]},
}
"""The four event kinds Karpenter handles, as its own reference CloudFormation matches them."""


@dataclass(frozen=True)
class InterruptionQueue:
    """Karpenter's interruption queue: its name (for `settings.interruptionQueue`) and ARN."""

    queue: aws.sqs.Queue
    name: str
    arn: pulumi.Output[str]


def queue_name(plan: ServicePlan) -> str:
    """The interruption queue's name."""
    return f"{plan.spec.name}-karpenter-interruption"


def rule_name(plan: ServicePlan, kind: str) -> str:
    """An EventBridge rule's name."""
    return f"{plan.spec.name}-karpenter-{kind}"


def rule_arn(name: str, region: str, account_id: str, partition: str = "aws") -> str:
    """The ARN EventBridge gives a rule on the default bus."""
    return f"arn:{partition}:events:{region}:{account_id}:rule/{name}"


def create_interruption_queue(
    name: str,
    plan: ServicePlan,
    options: AwsOptions,
    account_id: pulumi.Output[str],
    opts: pulumi.ResourceOptions,
) -> InterruptionQueue:
    """Create the queue, its policy, and one rule plus target per event kind."""
    region = options.region
    tags = resource_tags(plan)
    queue = aws.sqs.Queue(
        f"{name}-interruption",
        name=queue_name(plan),
        message_retention_seconds=RETENTION_SECONDS,
        sqs_managed_sse_enabled=True,
        tags=tags,
        opts=opts,
    )
    arn = account_id.apply(lambda a: queue_arn(queue_name(plan), region, a))
    rule_arns = account_id.apply(
        lambda a: [rule_arn(rule_name(plan, kind), region, a) for kind in EVENT_PATTERNS]
    )
    on_queue = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(parent=queue))
    aws.sqs.QueuePolicy(
        f"{name}-interruption-policy",
        queue_url=queue.url,
        policy=pulumi.Output.all(arn, rule_arns).apply(
            lambda values: json.dumps(iam.interruption_queue_policy(values[0], values[1]))
        ),
        opts=on_queue,
    )
    for kind, pattern in EVENT_PATTERNS.items():
        rule = aws.cloudwatch.EventRule(
            f"{name}-{kind}",
            name=rule_name(plan, kind),
            description=f"Karpenter interruption handling ({kind}) for {plan.spec.name}",
            event_pattern=json.dumps(pattern),
            tags=tags,
            opts=on_queue,
        )
        aws.cloudwatch.EventTarget(
            f"{name}-{kind}-target",
            rule=rule.name,
            arn=queue.arn,
            target_id="karpenter-interruption-queue",
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(parent=rule)),
        )
    return InterruptionQueue(queue=queue, name=queue_name(plan), arn=arn)


__all__ = [
    "EVENT_PATTERNS",
    "InterruptionQueue",
    "create_interruption_queue",
    "queue_name",
    "rule_arn",
    "rule_name",
]
