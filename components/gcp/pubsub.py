"""The batch queue on Pub/Sub: topic, subscription, dead-letter topic and the subscription that
keeps dead letters, plus the Pub/Sub service agent's two bindings.

Dead-lettering is done by Pub/Sub's own service agent (`service-<number>@gcp-sa-pubsub...`),
not by the caller: it must be able to publish to the dead-letter topic and to acknowledge on the
source subscription. Without those two bindings the console shows the policy, and messages that
keep failing are silently redelivered forever: the most common way this goes wrong. A dead-letter
topic without a subscription drops what reaches it, so it gets one that keeps messages as long
as Pub/Sub allows.

`queue_settings` derives the numbers, each with its reason, from the plan and the options.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Protocol

from inferstack.components.planning.plan import ServicePlan
from inferstack.components.planning.pools import BatchPool, queue_name
from inferstack.components.planning.sizing import Derived
from inferstack.contract.clouds import pubsub_service_agent

if TYPE_CHECKING:
    import pulumi
    import pulumi_gcp as gcp

MAX_ACK_DEADLINE_SECONDS: Final = 600
MIN_ACK_DEADLINE_SECONDS: Final = 10
"""Pub/Sub's bounds for a subscription's ack deadline."""
QUEUE_RETENTION_SECONDS: Final = 7 * 24 * 3600
DEAD_LETTER_RETENTION_SECONDS: Final = 31 * 24 * 3600
"""The longest a subscription may keep messages."""
RETRY_MIN_BACKOFF_SECONDS: Final = 10
RETRY_MAX_BACKOFF_SECONDS: Final = 600
NEVER_EXPIRE: Final = ""
"""An `expirationPolicy.ttl` of "" keeps an idle subscription forever; the default deletes it
after 31 days without a pull (a batch pool at zero for a month would lose its queue)."""
PUBLISHER_ROLE: Final = "roles/pubsub.publisher"
SUBSCRIBER_ROLE: Final = "roles/pubsub.subscriber"


class QueueProject(Protocol):
    """What the queue reads of a target's options (the GCP and Cloud Run targets' both have it)."""

    @property
    def project(self) -> str:
        """The project ID the topics and subscriptions are created in."""

    @property
    def project_number(self) -> str:
        """The project number (names the Pub/Sub service agent)."""

    @property
    def max_delivery_attempts(self) -> int:
        """Deliveries before Pub/Sub dead-letters a message."""


@dataclass(frozen=True)
class QueueSettings:
    """Names and numbers of the batch queue, each number with its reason."""

    topic: str
    subscription: str
    dead_letter_topic: str
    dead_letter_subscription: str
    ack_deadline_seconds: Derived[int]
    retention_seconds: Derived[int]
    dead_letter_retention_seconds: Derived[int]
    max_delivery_attempts: Derived[int]
    min_backoff_seconds: Derived[int]
    max_backoff_seconds: Derived[int]


def _duration(seconds: int) -> str:
    return f"{seconds}s"


def queue_settings(plan: ServicePlan, pool: BatchPool, options: QueueProject) -> QueueSettings:
    """The batch queue's names and numbers for the batch `pool` of `plan`."""
    spec = plan.spec
    subscription = queue_name(spec, pool.spec.queue)
    max_job = pool.spec.max_job_seconds
    ack = min(MAX_ACK_DEADLINE_SECONDS, max(MIN_ACK_DEADLINE_SECONDS, max_job))
    ack_reason = (
        f"batch.max_job_seconds ({max_job} s): a message outlives its worker's first lease "
        "only if the worker dies"
        if ack == max_job
        else f"Pub/Sub's bound closest to batch.max_job_seconds ({max_job} s); the worker "
        "extends its lease itself while a job runs"
    )
    return QueueSettings(
        topic=f"{spec.name}-jobs",
        subscription=subscription,
        dead_letter_topic=f"{spec.name}-jobs-dead-letter",
        dead_letter_subscription=f"{spec.name}-jobs-dead-letter",
        ack_deadline_seconds=Derived(ack, ack_reason),
        retention_seconds=Derived(
            QUEUE_RETENTION_SECONDS,
            "Pub/Sub's default of 7 days: a backlog the pool cannot drain in a week is an "
            "incident, not a queue",
        ),
        dead_letter_retention_seconds=Derived(
            DEAD_LETTER_RETENTION_SECONDS,
            "the longest Pub/Sub keeps messages (31 days), so dead letters can be inspected "
            "and replayed",
        ),
        max_delivery_attempts=Derived(
            options.max_delivery_attempts,
            "inferstack:gcp.max_delivery_attempts: deliveries before Pub/Sub dead-letters it",
        ),
        min_backoff_seconds=Derived(
            RETRY_MIN_BACKOFF_SECONDS, "exponential retry from 10 s: a transient failure waits"
        ),
        max_backoff_seconds=Derived(
            RETRY_MAX_BACKOFF_SECONDS, "to Pub/Sub's maximum of 600 s: a poison message waits"
        ),
    )


@dataclass(frozen=True)
class PubSubQueue:
    """The queue's Pulumi resources."""

    topic: gcp.pubsub.Topic
    subscription: gcp.pubsub.Subscription
    dead_letter_topic: gcp.pubsub.Topic
    dead_letter_subscription: gcp.pubsub.Subscription
    agent_bindings: Sequence[pulumi.Resource]


def pubsub_queue(
    name: str,
    settings: QueueSettings,
    options: QueueProject,
    labels: dict[str, str],
    opts: pulumi.ResourceOptions,
) -> PubSubQueue:
    """The topic, subscription, dead letters and service-agent bindings, children of `opts`."""
    import pulumi
    import pulumi_gcp as gcp

    pubsub = gcp.pubsub
    project = options.project
    topic = pubsub.Topic(
        f"{name}-topic",
        name=settings.topic,
        project=project,
        labels=labels,
        opts=opts,
    )
    dead_letter_topic = pubsub.Topic(
        f"{name}-dead-letter-topic",
        name=settings.dead_letter_topic,
        project=project,
        labels=labels,
        opts=opts,
    )
    subscription = pubsub.Subscription(
        f"{name}-subscription",
        name=settings.subscription,
        project=project,
        topic=topic.id,
        labels=labels,
        ack_deadline_seconds=settings.ack_deadline_seconds.value,
        message_retention_duration=_duration(settings.retention_seconds.value),
        retain_acked_messages=False,
        expiration_policy=pubsub.SubscriptionExpirationPolicyArgs(ttl=NEVER_EXPIRE),
        retry_policy=pubsub.SubscriptionRetryPolicyArgs(
            minimum_backoff=_duration(settings.min_backoff_seconds.value),
            maximum_backoff=_duration(settings.max_backoff_seconds.value),
        ),
        dead_letter_policy=pubsub.SubscriptionDeadLetterPolicyArgs(
            dead_letter_topic=dead_letter_topic.id,
            max_delivery_attempts=settings.max_delivery_attempts.value,
        ),
        opts=opts,
    )
    dead_letter_subscription = pubsub.Subscription(
        f"{name}-dead-letter-subscription",
        name=settings.dead_letter_subscription,
        project=project,
        topic=dead_letter_topic.id,
        labels=labels,
        ack_deadline_seconds=MAX_ACK_DEADLINE_SECONDS,
        message_retention_duration=_duration(settings.dead_letter_retention_seconds.value),
        expiration_policy=pubsub.SubscriptionExpirationPolicyArgs(ttl=NEVER_EXPIRE),
        opts=opts,
    )
    agent = pubsub_service_agent(options.project_number)
    agent_opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(parent=subscription))
    bindings = [
        pubsub.TopicIAMMember(
            f"{name}-dead-letter-agent-publisher",
            project=project,
            topic=dead_letter_topic.name,
            role=PUBLISHER_ROLE,
            member=agent,
            opts=pulumi.ResourceOptions.merge(
                opts, pulumi.ResourceOptions(parent=dead_letter_topic)
            ),
        ),
        pubsub.SubscriptionIAMMember(
            f"{name}-dead-letter-agent-subscriber",
            project=project,
            subscription=subscription.name,
            role=SUBSCRIBER_ROLE,
            member=agent,
            opts=agent_opts,
        ),
    ]
    return PubSubQueue(
        topic=topic,
        subscription=subscription,
        dead_letter_topic=dead_letter_topic,
        dead_letter_subscription=dead_letter_subscription,
        agent_bindings=bindings,
    )


__all__ = ["PubSubQueue", "QueueProject", "QueueSettings", "pubsub_queue", "queue_settings"]
