"""One backend object per queue kind: what the Kubernetes layer needs to know about each queue.

For each kind (the spec's `batch.queue.kind`): which options it needs, the worker's `--queue`
URI (built with the contract's one builder, which the worker parses), the KEDA trigger that
reads its backlog, and the pod identity KEDA reads it with. Adding a queue kind is one more
`QueueBackend` here plus its consumer in `inferstack.runtime.queues`; nothing else branches on
the kind.

The queue's name may be a Pulumi Output (a cloud component passes the queue it creates), so the
builders accept `Any` and go through `Output.apply` only when handed one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from inferstack.contract.queues import QueueKind, queue_uri
from inferstack.errors import Problem

if TYPE_CHECKING:
    from inferstack.components.kubernetes.options import KubernetesOptions
    from inferstack.components.planning.spec import Queue

Manifest = dict[str, Any]

GMP_UNDELIVERED: Final = "pubsub.googleapis.com:subscription_num_undelivered_messages"
"""Pub/Sub backlog as Google Cloud Managed Service for Prometheus names it. KEDA's gcp-pubsub
scaler reads it through Cloud Monitoring MQL, which Google deprecated; KEDA's recommended path is
its Prometheus scaler against the Managed Prometheus query API, authenticated with pod identity."""
TRIGGER_NAME: Final = "backlog"


def apply(value: Any, function: Callable[[str], str]) -> Any:
    """`function(value)` for a plain string; `value.apply(function)` for a Pulumi Output."""
    if isinstance(value, str):
        return function(value)
    return value.apply(function)


@dataclass(frozen=True)
class QueueBackend:
    """What one queue kind needs from the options, and what it renders."""

    kind: QueueKind

    def problems(self, queue: Queue, options: KubernetesOptions) -> list[Problem]:
        """Options this kind needs that are missing, each naming the option and the fix."""
        return []

    def worker_uri(self, name: Any, queue: Queue, options: KubernetesOptions) -> Any:
        """The worker's `--queue` URI for the queue called `name`."""
        return apply(name, lambda text: queue_uri(self.kind, text))

    def pod_identity(self, options: KubernetesOptions) -> Manifest | None:
        """KEDA's TriggerAuthentication `podIdentity`, or None when no cloud identity is needed."""
        return None

    def trigger_metadata(
        self, name: Any, target: str, queue: Queue, options: KubernetesOptions
    ) -> tuple[str, Mapping[str, Any]]:
        """The KEDA scaler type and its metadata: backlog per replica, active from one message."""
        raise NotImplementedError


@dataclass(frozen=True)
class SqsBackend(QueueBackend):
    """Amazon SQS, read by KEDA's aws-sqs-queue scaler."""

    def problems(self, queue: Queue, options: KubernetesOptions) -> list[Problem]:
        if options.queue.aws_region:
            return []
        return [
            Problem(
                "options.queue.aws_region",
                "an sqs queue needs the AWS region KEDA queries (e.g. us-east-1)",
            )
        ]

    def pod_identity(self, options: KubernetesOptions) -> Manifest:
        identity: Manifest = {"provider": "aws"}
        if options.queue.aws_role_arn:
            identity["roleArn"] = options.queue.aws_role_arn
        else:
            # The scaled Deployment's own service account role (IRSA), which already reads the
            # queue, so no second role needs queue permissions.
            identity["identityOwner"] = "workload"
        return identity

    def trigger_metadata(
        self, name: Any, target: str, queue: Queue, options: KubernetesOptions
    ) -> tuple[str, Mapping[str, Any]]:
        return "aws-sqs-queue", {
            "queueURL": name,
            "awsRegion": str(options.queue.aws_region),
            "queueLength": target,
            "activationQueueLength": "0",
            # Count messages being worked too, so busy workers are not scaled away.
            "scaleOnInFlight": "true",
        }


@dataclass(frozen=True)
class PubSubBackend(QueueBackend):
    """Google Pub/Sub, its backlog read from Managed Prometheus by KEDA's Prometheus scaler."""

    def problems(self, queue: Queue, options: KubernetesOptions) -> list[Problem]:
        if options.queue.gcp_project:
            return []
        return [
            Problem(
                "options.queue.gcp_project",
                "a pubsub queue needs the GCP project that holds the subscription",
            )
        ]

    def worker_uri(self, name: Any, queue: Queue, options: KubernetesOptions) -> Any:
        project = str(options.queue.gcp_project)
        return apply(name, lambda text: queue_uri("pubsub", text, gcp_project=project))

    def pod_identity(self, options: KubernetesOptions) -> Manifest:
        return {"provider": "gcp"}

    def trigger_metadata(
        self, name: Any, target: str, queue: Queue, options: KubernetesOptions
    ) -> tuple[str, Mapping[str, Any]]:
        project = str(options.queue.gcp_project)

        def query(subscription: str) -> str:
            return (
                f'sum({{"__name__"="{GMP_UNDELIVERED}","monitored_resource"="pubsub_subscription",'
                f'"project_id"="{project}","subscription_id"="{subscription}"}})'
            )

        return "prometheus", {
            "serverAddress": (
                f"https://monitoring.googleapis.com/v1/projects/{project}/location/global/prometheus"
            ),
            "query": apply(name, query),
            "threshold": target,
            "activationThreshold": "0",
            "ignoreNullValues": "true",
        }


@dataclass(frozen=True)
class RedisStreamsBackend(QueueBackend):
    """Redis Streams in the cluster: no cloud identity, KEDA's redis-streams scaler."""

    def worker_uri(self, name: Any, queue: Queue, options: KubernetesOptions) -> Any:
        address = str(queue.redis_address)
        return apply(name, lambda text: queue_uri("redis-streams", text, redis_address=address))

    def trigger_metadata(
        self, name: Any, target: str, queue: Queue, options: KubernetesOptions
    ) -> tuple[str, Mapping[str, Any]]:
        return "redis-streams", {
            "address": str(queue.redis_address),
            "stream": name,
            "consumerGroup": options.queue.redis_consumer_group,
            # Entries not yet delivered to the group (Redis >= 7): from zero, pending-entry
            # counts are zero because no consumer has read anything.
            "lagCount": target,
            "activationLagCount": "0",
        }


QUEUE_BACKENDS: Final[Mapping[QueueKind, QueueBackend]] = {
    "sqs": SqsBackend("sqs"),
    "pubsub": PubSubBackend("pubsub"),
    "redis-streams": RedisStreamsBackend("redis-streams"),
}


def backend(queue: Queue) -> QueueBackend:
    """The backend of the spec's queue kind."""
    return QUEUE_BACKENDS[queue.kind]
