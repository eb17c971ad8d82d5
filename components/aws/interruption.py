"""Karpenter's interruption queue and the EventBridge rules that feed it: one per cluster.

EC2 announces what is about to happen to an instance on EventBridge: a spot interruption
warning (two minutes ahead), a rebalance recommendation (elevated risk, no deadline), an
instance state change (stopping, terminated) and an AWS Health scheduled change (maintenance).
Karpenter reads them from one SQS queue (its `--interruption-queue`, chart value
`settings.interruptionQueue`). It acts on three of the four: for a spot warning, a scheduled
change or a stopping/terminated state change it cordons the node, launches a replacement and
drains the old node at once, so the batch worker gets SIGTERM with the notice still ahead of it.
A rebalance recommendation it does not act on: aws/karpenter-provider-aws
`pkg/controllers/interruption/controller.go` (`actionForMessage`) gives it `NoAction`; the rule
exists because Karpenter's reference CloudFormation routes it, and Karpenter counts it in its
metrics. Without the queue Karpenter learns of a spot loss only when the node vanishes, and the
worker is killed mid-job (eksctl #7697: a wrong Helm key left it unset).

Karpenter reads exactly one queue, so the queue and its four region-wide rules belong to the
cluster's Karpenter (`KarpenterController`), named after the cluster, never one per service.

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
from inferstack.components.aws.tags import MANAGED_BY

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
"""The four event kinds Karpenter's reference CloudFormation routes to its queue (it acts on all
but the rebalance recommendation; see the module docstring)."""
MAX_QUEUE_NAME: Final = 80
"""SQS CreateQueue `QueueName`: at most 80 characters."""
MAX_RULE_NAME: Final = 64
"""EventBridge PutRule `Name`: at most 64 characters."""


@dataclass(frozen=True)
class InterruptionQueue:
    """Karpenter's interruption queue: its name (for `settings.interruptionQueue`) and ARN."""

    queue: aws.sqs.Queue
    name: str
    arn: pulumi.Output[str]


def queue_name(cluster_name: str) -> str:
    """The cluster's interruption queue (the cluster name cut to fit SQS's 80 characters)."""
    suffix = "-karpenter-interruption"
    return f"{cluster_name[: MAX_QUEUE_NAME - len(suffix)]}{suffix}"


def rule_name(cluster_name: str, kind: str) -> str:
    """An EventBridge rule's name (the cluster name cut to fit EventBridge's 64 characters)."""
    suffix = f"-karpenter-{kind}"
    return f"{cluster_name[: MAX_RULE_NAME - len(suffix)]}{suffix}"


def rule_arn(name: str, region: str, account_id: str, partition: str = "aws") -> str:
    """The ARN EventBridge gives a rule on the default bus."""
    return f"arn:{partition}:events:{region}:{account_id}:rule/{name}"


def create_interruption_queue(
    name: str,
    options: AwsOptions,
    account_id: pulumi.Output[str],
    opts: pulumi.ResourceOptions,
) -> InterruptionQueue:
    """Create the cluster's queue, its policy, and one rule plus target per event kind."""
    region, cluster = options.region, options.cluster_name
    tags = dict(MANAGED_BY)
    queue = aws.sqs.Queue(
        f"{name}-interruption",
        name=queue_name(cluster),
        message_retention_seconds=RETENTION_SECONDS,
        sqs_managed_sse_enabled=True,
        tags=tags,
        opts=opts,
    )
    arn = account_id.apply(lambda a: queue_arn(queue_name(cluster), region, a))
    rule_arns = account_id.apply(
        lambda a: [rule_arn(rule_name(cluster, kind), region, a) for kind in EVENT_PATTERNS]
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
            name=rule_name(cluster, kind),
            description=f"Karpenter interruption handling ({kind}) for cluster {cluster}",
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
    return InterruptionQueue(queue=queue, name=queue_name(cluster), arn=arn)


__all__ = [
    "EVENT_PATTERNS",
    "InterruptionQueue",
    "create_interruption_queue",
    "queue_name",
    "rule_arn",
    "rule_name",
]
