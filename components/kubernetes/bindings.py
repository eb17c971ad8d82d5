"""What the workloads are wired to: the queue, its identities, the image, the nodes.

A plain-Kubernetes stack takes all of it from its options (`KubernetesBindings.from_options`);
a cloud component (AWS, GCP) creates the queue, the roles, the registry and the node pools and
hands them over here, as Pulumi inputs where the value is known only after the resource exists
(a queue URL, a role ARN, a bucket name). Keeping these apart from `KubernetesOptions` keeps the
user's options plain values and gives every Pulumi Output a type. Pulumi is imported for the
types only, so the manifest builders stay pure functions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from inferstack.components.kubernetes.options import CONFIG_KEY, KubernetesOptions, PoolPlacement
from inferstack.components.kubernetes.queues import backend
from inferstack.components.kubernetes.scraping import Scrape, scrape_for
from inferstack.components.planning.pools import Tier
from inferstack.components.planning.pools import queue_name as default_queue_name
from inferstack.components.planning.spec import InferenceServiceSpec, Queue
from inferstack.contract.queues import (
    KIND_OF_SCHEME,
    REDIS_DEFAULT_DB,
    SCHEMES,
    QueueUriError,
    parse_queue_uri,
)
from inferstack.errors import Problem

if TYPE_CHECKING:
    import pulumi

_QUEUE_PATH = f"{CONFIG_KEY}.queue"
_URL_PATH = f"{_QUEUE_PATH}.url"


@dataclass(frozen=True)
class QueueWiring:
    """The batch queue as the worker and KEDA's scaler reach it (see `QueueBinding` for forms)."""

    url: pulumi.Input[str] | None = None
    """A name or a queue URI of the spec's kind; a cloud target's queue as an Output."""
    aws_region: str | None = None
    aws_role_arn: pulumi.Input[str] | None = None
    """IAM role KEDA assumes to read queue length; None: the workload's own (IRSA) identity."""
    gcp_project: str | None = None
    redis_consumer_group: str = "inferstack"
    results_uri: pulumi.Input[str] | None = None
    """Where the worker writes results; the AWS target's bucket name is known only after apply."""


@dataclass(frozen=True)
class NodeEndpoint:
    """An endpoint on the pod's own node (link-local) that a pod fetches credentials or notices
    from: an egress NetworkPolicy must name it, since it is neither DNS nor a cloud API."""

    cidr: str
    port: int


@dataclass(frozen=True)
class KubernetesBindings:
    """What a target hands the Kubernetes layer besides the options: typed Pulumi inputs."""

    queue: QueueWiring = field(default_factory=QueueWiring)
    image: pulumi.Input[str] | None = None
    """Runtime image; None: the spec's `image`."""
    realtime_service_account_annotations: Mapping[str, pulumi.Input[str]] = field(
        default_factory=dict
    )
    batch_service_account_annotations: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    """e.g. `eks.amazonaws.com/role-arn` (IRSA) or `iam.gke.io/gcp-service-account` (GKE WI)."""
    realtime_placement: PoolPlacement = field(default_factory=PoolPlacement)
    batch_placement: PoolPlacement = field(default_factory=PoolPlacement)
    spot_labels: tuple[tuple[str, str], ...] | None = None
    """(key, value) of the spot node labels the batch pool prefers; None: every platform's."""
    scrape: Scrape = field(default_factory=Scrape)
    """How the realtime pool is scraped and where KEDA queries its demand (`scraping`)."""
    node_endpoints: tuple[NodeEndpoint, ...] | None = None
    """What a pool that reaches a cloud service reads on its node (credentials, spot notices);
    None: the instance metadata endpoint (GKE's metadata server, a plain cluster's IMDS)."""

    @classmethod
    def from_options(cls, options: KubernetesOptions) -> KubernetesBindings:
        """The wiring a plain-Kubernetes stack declares in its options."""
        queue = options.queue
        return cls(
            queue=QueueWiring(
                url=queue.url,
                aws_region=queue.aws_region,
                aws_role_arn=queue.aws_role_arn,
                gcp_project=queue.gcp_project,
                redis_consumer_group=queue.redis_consumer_group,
                results_uri=queue.results_uri,
            ),
            image=options.image,
            realtime_service_account_annotations=dict(options.realtime_service_account_annotations),
            batch_service_account_annotations=dict(options.batch_service_account_annotations),
            realtime_placement=options.realtime_placement,
            batch_placement=options.batch_placement,
            spot_labels=options.spot_labels,
            scrape=scrape_for(options),
        )

    def placement(self, tier: Tier) -> PoolPlacement:
        """The nodes the pool of `tier` must run on."""
        return self.realtime_placement if tier == "realtime" else self.batch_placement

    def service_account_annotations(self, tier: Tier) -> Mapping[str, pulumi.Input[str]]:
        """The annotations that bind the pool of `tier` to a cloud identity."""
        if tier == "realtime":
            return self.realtime_service_account_annotations
        return self.batch_service_account_annotations

    def problems(self, spec: InferenceServiceSpec) -> list[Problem]:
        """What the batch pool's queue lacks, named by the option that would set it."""
        if spec.batch is None:
            return []
        problems = queue_binding(spec, self).problems
        if not self.queue.results_uri:
            problems.append(
                Problem(
                    f"{_QUEUE_PATH}.results_uri",
                    "the batch pool needs a result store; set it to s3://BUCKET/PREFIX, "
                    "gs://BUCKET/PREFIX, redis://HOST:PORT/DB or file:///DIR",
                )
            )
        problems += backend(spec.batch.queue).problems(spec.batch.queue, self.queue)
        return problems


def _queue(spec: InferenceServiceSpec) -> Queue:
    if spec.batch is None:
        raise ValueError(f"{spec.name} has no batch pool, so no queue")
    return spec.batch.queue


def queue_name(spec: InferenceServiceSpec, bindings: KubernetesBindings) -> pulumi.Input[str]:
    """The queue, subscription or stream the batch pool reads (a string or a Pulumi Output)."""
    if bindings.queue.url is not None:
        return queue_binding(spec, bindings).name
    return default_queue_name(spec, _queue(spec))


def queue_uri(spec: InferenceServiceSpec, bindings: KubernetesBindings) -> pulumi.Input[str]:
    """The worker's `--queue` URI (see `inferstack work`): one naming rule for worker and KEDA."""
    queue = _queue(spec)
    return backend(queue).worker_uri(queue_name(spec, bindings), queue, bindings.queue)


@dataclass(frozen=True)
class ResolvedQueueBinding:
    """How the queue's `url` was read: as a name or as a queue URI, and what it names."""

    name: pulumi.Input[str]
    form: Literal["name", "uri"]
    problems: list[Problem]


def queue_binding(spec: InferenceServiceSpec, bindings: KubernetesBindings) -> ResolvedQueueBinding:
    """Read the queue's `url` as a name or a queue URI of the spec's kind (see QueueBinding)."""
    url, queue, wiring = bindings.queue.url, _queue(spec), bindings.queue
    if url is None:
        return ResolvedQueueBinding(queue_name(spec, bindings), "name", [])
    if not isinstance(url, str):
        return ResolvedQueueBinding(url, "name", [])  # an Output: the cloud component's queue
    scheme, separator, _ = url.partition("://")
    if not separator or (queue.kind == "sqs" and scheme in {"https", "http"}):
        return ResolvedQueueBinding(url, "name", _name_problems(queue.kind, url))
    form = f"read as a queue URI ({scheme}://)"
    try:
        address = parse_queue_uri(url)
    except QueueUriError as error:
        return ResolvedQueueBinding(url, "uri", [Problem(_URL_PATH, f"{url!r} {form}: {error}")])
    problems = []
    if address.kind != queue.kind:
        problems.append(
            Problem(
                _URL_PATH,
                f"{url!r} {form} names a {address.kind} queue, but batch.queue.kind is "
                f"{queue.kind}; set url to the queue's name or to a URI of the form "
                f"{_form_of(queue.kind)}",
            )
        )
    elif address.kind == "pubsub" and address.gcp_project != wiring.gcp_project:
        problems.append(
            Problem(
                _URL_PATH,
                f"{url!r} {form} is in project {address.gcp_project!r}, but "
                f"{_QUEUE_PATH}.gcp_project is {wiring.gcp_project!r}; make them agree, or set "
                f"url to the subscription ID {address.name!r}",
            )
        )
    elif address.kind == "redis-streams" and (
        address.redis_address != queue.redis_address or address.redis_db != REDIS_DEFAULT_DB
    ):
        problems.append(
            Problem(
                _URL_PATH,
                f"{url!r} {form} is stream {address.name!r} at {address.redis_address}/"
                f"{address.redis_db}, but the worker reads batch.queue.redis_address "
                f"{queue.redis_address}/{REDIS_DEFAULT_DB}; make them agree, or set url to the "
                f"stream name {address.name!r}",
            )
        )
    return ResolvedQueueBinding(address.name, "uri", problems)


def _form_of(kind: str) -> str:
    return next(SCHEMES[scheme] for scheme, of in KIND_OF_SCHEME.items() if of == kind)


def _name_problems(kind: str, name: str) -> list[Problem]:
    form = "read as a name (no scheme://)"
    if not name.strip():
        return [Problem(_URL_PATH, "is empty; set the queue's name or leave url unset")]
    if kind == "pubsub" and "/" in name:
        return [
            Problem(
                _URL_PATH,
                f"{name!r} {form} is not a subscription ID (it has '/'); set the ID alone, or the "
                "URI pubsub://projects/PROJECT/subscriptions/ID",
            )
        ]
    if kind == "redis-streams" and any(char in name for char in "?&# "):
        return [
            Problem(
                _URL_PATH,
                f"{name!r} {form} has characters a stream name in a URI cannot carry; set the "
                "stream name alone, or the URI redis://HOST:PORT/DB?stream=NAME",
            )
        ]
    return []


__all__ = [
    "KubernetesBindings",
    "NodeEndpoint",
    "QueueWiring",
    "ResolvedQueueBinding",
    "queue_binding",
    "queue_name",
    "queue_uri",
]
