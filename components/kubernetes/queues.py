"""One backend object per queue kind: what the Kubernetes layer needs to know about each queue.

For each kind (the spec's `batch.queue.kind`): which options it needs, the worker's `--queue`
URI (built with the contract's one builder, which the worker parses), the KEDA trigger that
reads its backlog, and the pod identity KEDA reads it with. Adding a queue kind is one more
`QueueBackend` here plus its consumer in `inferstack.runtime.queues`; nothing else branches on
the kind.

The queue's name may be a Pulumi Output (a cloud component passes the queue it creates), so the
builders accept `pulumi.Input[str]` and go through `Output.apply` only when handed one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from typing_extensions import override

from inferstack.components.kubernetes.options import CONFIG_KEY
from inferstack.contract.queues import QueueKind, queue_uri
from inferstack.errors import Problem

if TYPE_CHECKING:
    import pulumi

    from inferstack.components.kubernetes.bindings import QueueWiring
    from inferstack.components.planning.spec import Queue

Manifest = dict[str, Any]

PUBSUB_UNDELIVERED: Final = "pubsub.googleapis.com/subscription/num_undelivered_messages"
"""Pub/Sub backlog, as Cloud Monitoring names it (Google Cloud metrics list, "pubsub"). KEDA's
gcp-pubsub scaler reads it through Cloud Monitoring MQL, which Google deprecated; KEDA's
recommended path is its Prometheus scaler against the Managed Prometheus query API, authenticated
with pod identity, so the query names it as PromQL does (`promql_metric_name`)."""
_PROMQL_SPECIAL: Final = re.compile(r"[^A-Za-z0-9_]")


def promql_string(value: str) -> str:
    """`value` as a double-quoted PromQL string literal, whatever it holds.

    Prometheus, "Querying basics", String literals
    (https://prometheus.io/docs/prometheus/latest/querying/basics/#string-literals): PromQL
    follows Go's escaping rules; in double quotes a backslash begins an escape sequence. So a
    backslash and a double quote are escaped, and control characters written as `\\xNN`: a
    label value then cannot close its string and append to the query (issue 22 item 8).
    """
    escaped = []
    for char in value:
        if char in '\\"':
            escaped.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            escaped.append(f"\\x{ord(char):02x}")
        else:
            escaped.append(char)
    return '"' + "".join(escaped) + '"'


def promql_matchers(matchers: Mapping[str, str]) -> str:
    """`key="value",...` label matchers, each value a `promql_string`: the one way the
    components write a label value into a query."""
    return ",".join(f"{key}={promql_string(value)}" for key, value in matchers.items())


def promql_metric_name(cloud_monitoring_type: str) -> str:
    """The PromQL name of a Cloud Monitoring metric type.

    Google Cloud, "Mapping Cloud Monitoring metrics to PromQL"
    (https://cloud.google.com/monitoring/promql/promql-mapping): replace the first `/` with `:`,
    and every other special character (`.` and the other `/` included) with `_`. A name read any
    other way matches no series, and the query's empty answer would read as no backlog.
    """
    domain, slash, path = cloud_monitoring_type.partition("/")
    if not slash or not domain or not path:
        raise ValueError(f"{cloud_monitoring_type!r} is not a Cloud Monitoring metric type")
    return f"{_PROMQL_SPECIAL.sub('_', domain)}:{_PROMQL_SPECIAL.sub('_', path)}"


TRIGGER_NAME: Final = "backlog"
NULL_IS_ERROR: Final[Mapping[str, str]] = {"ignoreNullValues": "false"}
"""KEDA's Prometheus scaler reads an empty answer as 0 unless told otherwise (`ignoreNullValues`,
default true, `pkg/scalers/prometheus_scaler.go`): a misspelled metric or a lost scrape would look
like no demand. As an error it counts towards `fallback` and shows on the ScaledObject."""


def apply(value: pulumi.Input[str], function: Callable[[str], str]) -> pulumi.Input[str]:
    """`function(value)` for a plain string; `Output.apply(function)` for a Pulumi input."""
    if isinstance(value, str):
        return function(value)
    return _output(value).apply(function)


def _output(value: pulumi.Input[str]) -> pulumi.Output[str]:
    import pulumi  # deferred: only a cloud target hands an Output, and it has Pulumi

    return pulumi.Output.from_input(value)


@dataclass(frozen=True)
class QueueBackend:
    """What one queue kind needs from the options, and what it renders."""

    kind: QueueKind

    def problems(self, queue: Queue, wiring: QueueWiring) -> list[Problem]:
        """Options this kind needs that are missing, each naming the option and the fix."""
        return []

    def worker_uri(
        self, name: pulumi.Input[str], queue: Queue, wiring: QueueWiring
    ) -> pulumi.Input[str]:
        """The worker's `--queue` URI for the queue called `name`."""
        return apply(name, lambda text: queue_uri(self.kind, text))

    def pod_identity(self, wiring: QueueWiring) -> Manifest | None:
        """KEDA's TriggerAuthentication `podIdentity`, or None when no cloud identity is needed."""
        return None

    def trigger_metadata(
        self, name: pulumi.Input[str], target: str, queue: Queue, wiring: QueueWiring
    ) -> tuple[str, Mapping[str, Any]]:
        """The KEDA scaler type and its metadata: backlog per replica, active from one message."""
        raise NotImplementedError


@dataclass(frozen=True)
class SqsBackend(QueueBackend):
    """Amazon SQS, read by KEDA's aws-sqs-queue scaler."""

    @override
    def problems(self, queue: Queue, wiring: QueueWiring) -> list[Problem]:
        if wiring.aws_region:
            return []
        return [
            Problem(
                f"{CONFIG_KEY}.queue.aws_region",
                "an sqs queue needs the AWS region KEDA queries (e.g. us-east-1)",
            )
        ]

    @override
    def pod_identity(self, wiring: QueueWiring) -> Manifest:
        identity: Manifest = {"provider": "aws"}
        if wiring.aws_role_arn:
            identity["roleArn"] = wiring.aws_role_arn
        else:
            # The scaled Deployment's own service account role (IRSA), which already reads the
            # queue, so no second role needs queue permissions.
            identity["identityOwner"] = "workload"
        return identity

    @override
    def trigger_metadata(
        self, name: pulumi.Input[str], target: str, queue: Queue, wiring: QueueWiring
    ) -> tuple[str, Mapping[str, Any]]:
        return "aws-sqs-queue", {
            "queueURL": name,
            "awsRegion": str(wiring.aws_region),
            "queueLength": target,
            "activationQueueLength": "0",
            # Count messages being worked too, so busy workers are not scaled away.
            "scaleOnInFlight": "true",
        }


@dataclass(frozen=True)
class PubSubBackend(QueueBackend):
    """Google Pub/Sub, its backlog read from Managed Prometheus by KEDA's Prometheus scaler."""

    @override
    def problems(self, queue: Queue, wiring: QueueWiring) -> list[Problem]:
        if wiring.gcp_project:
            return []
        return [
            Problem(
                f"{CONFIG_KEY}.queue.gcp_project",
                "a pubsub queue needs the GCP project that holds the subscription",
            )
        ]

    @override
    def worker_uri(
        self, name: pulumi.Input[str], queue: Queue, wiring: QueueWiring
    ) -> pulumi.Input[str]:
        project = str(wiring.gcp_project)
        return apply(name, lambda text: queue_uri("pubsub", text, gcp_project=project))

    @override
    def pod_identity(self, wiring: QueueWiring) -> Manifest:
        return {"provider": "gcp"}

    @override
    def trigger_metadata(
        self, name: pulumi.Input[str], target: str, queue: Queue, wiring: QueueWiring
    ) -> tuple[str, Mapping[str, Any]]:
        project = str(wiring.gcp_project)

        metric = promql_metric_name(PUBSUB_UNDELIVERED)

        def query(subscription: str) -> str:
            matchers = promql_matchers(
                {
                    "monitored_resource": "pubsub_subscription",
                    "project_id": project,
                    "subscription_id": subscription,
                }
            )
            return f"sum({metric}{{{matchers}}})"

        return "prometheus", {
            "serverAddress": (
                f"https://monitoring.googleapis.com/v1/projects/{project}/location/global/prometheus"
            ),
            "query": apply(name, query),
            "threshold": target,
            "activationThreshold": "0",
            **NULL_IS_ERROR,
        }


@dataclass(frozen=True)
class RedisStreamsBackend(QueueBackend):
    """Redis Streams in the cluster: no cloud identity, KEDA's redis-streams scaler."""

    @override
    def worker_uri(
        self, name: pulumi.Input[str], queue: Queue, wiring: QueueWiring
    ) -> pulumi.Input[str]:
        address = str(queue.redis_address)
        return apply(name, lambda text: queue_uri("redis-streams", text, redis_address=address))

    @override
    def trigger_metadata(
        self, name: pulumi.Input[str], target: str, queue: Queue, wiring: QueueWiring
    ) -> tuple[str, Mapping[str, Any]]:
        return "redis-streams", {
            "address": str(queue.redis_address),
            "stream": name,
            "consumerGroup": wiring.redis_consumer_group,
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
