"""What the Kubernetes layer needs besides the spec: where things live on the cluster.

The spec says what to serve and how fast; these options say which namespace, which Prometheus,
where the batch queue and result store are, and which cloud identity reads them. The AWS and GCP
components fill them from the resources they create (queue URL, IAM role, service account); a
plain-Kubernetes stack sets them by hand. Kept free of Pulumi imports so the manifest builders
stay pure functions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from inferstack.components.kubernetes.queues import backend
from inferstack.components.planning.spec import InferenceServiceSpec
from inferstack.contract.images import ImageReferenceError, parse_image
from inferstack.contract.queues import (
    KIND_OF_SCHEME,
    REDIS_DEFAULT_DB,
    SCHEMES,
    QueueUriError,
    parse_queue_uri,
)
from inferstack.errors import Problem, SpecError

DEFAULT_PROMETHEUS_URL = "http://prometheus-operated.monitoring.svc:9090"
"""The Service the Prometheus Operator creates for every Prometheus it runs."""
DEFAULT_KEDA_NAMESPACE = "keda"
KEDA_CHART_VERSION = "2.19.0"
"""Pinned KEDA Helm chart, used with `install_keda=True` (CRDs match ../shared/schemas/keda)."""
HTTP_ADDON_CHART_VERSION = "0.14.0"
"""Pinned KEDA HTTP add-on chart: 0.14 introduced InterceptorRoute (v1beta1), used here."""

MetricsScraping = Literal["annotations", "podmonitor"]
ServiceType = Literal["ClusterIP", "NodePort", "LoadBalancer"]


@dataclass(frozen=True)
class QueueBinding:
    """Where the batch queue lives and who may read it, for both the worker and KEDA's scaler.

    `url` is either a name (an SQS queue URL or name, a Pub/Sub subscription ID, a Redis stream
    name) or the worker's queue URI of the spec's kind (`sqs://...`, `pubsub://projects/P/
    subscriptions/S`, `redis://HOST:PORT/DB?stream=NAME`), whose name is then used; a URI of
    another kind, or one whose project or Redis address contradicts the spec and options, is
    refused with the form it was read as. It may be a Pulumi Output (the AWS and GCP components
    pass the queue they create), taken as a name. When None, the spec's `batch.queue.name` is
    used, then `<service>-jobs`.
    """

    url: Any = None
    aws_region: str | None = None
    aws_role_arn: str | None = None
    """IAM role KEDA assumes to read queue length; None: the workload's own (IRSA) identity."""
    gcp_project: str | None = None
    redis_consumer_group: str = "inferstack"
    results_uri: str | None = None
    """Where the worker writes results: s3://, gs://, redis:// or file:// (`inferstack work`);
    the AWS component passes an Output (its bucket's name carries the account ID)."""


@dataclass(frozen=True)
class PoolPlacement:
    """Where one pool's pods must run, beyond the spot rules: the nodes a cloud target created.

    The AWS and GCP components set it to the NodePool / node pool / ComputeClass they create for
    the pool; a plain-Kubernetes stack may set it to its own GPU node labels and taints.
    """

    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[dict[str, Any]] = field(default_factory=list)
    """Extra tolerations (wire form), e.g. for the taints of a dedicated node pool."""


@dataclass(frozen=True)
class KubernetesOptions:
    """Cluster-side settings of a `KubernetesInferenceService`; every field has a safe default."""

    namespace: str = "default"
    image: str | None = None
    """Runtime image; None: the spec's `image`. A tag, a digest or both
    (`repository:tag@sha256:...`, what the stacks use: one image for good)."""
    service_type: ServiceType = "ClusterIP"
    service_annotations: dict[str, str] = field(default_factory=dict)
    port: int = 8000
    metrics: MetricsScraping = "annotations"
    """`annotations` (prometheus.io/* on the pods) or `podmonitor` (Prometheus Operator)."""
    prometheus_url: str = DEFAULT_PROMETHEUS_URL
    """Where KEDA's Prometheus trigger sends the demand query."""
    keda_namespace: str = DEFAULT_KEDA_NAMESPACE
    """Namespace of the KEDA HTTP add-on's interceptor and external scaler."""
    install_keda: bool = False
    """Also install KEDA and the HTTP add-on as Helm releases (pinned chart versions)."""
    cpu_per_gpu: str = "3"
    memory_per_gpu: str = "12Gi"
    realtime_service_account_annotations: dict[str, str] = field(default_factory=dict)
    batch_service_account_annotations: dict[str, str] = field(default_factory=dict)
    """e.g. `eks.amazonaws.com/role-arn` (IRSA) or `iam.gke.io/gcp-service-account` (GKE WI)."""
    queue: QueueBinding = field(default_factory=QueueBinding)
    network_policy: bool = True
    """A NetworkPolicy per pool (see `inferstack.components.kubernetes.network`); False when a
    mesh or a cluster-wide policy already restricts the pods' traffic."""
    ingress_namespaces: list[str] = field(default_factory=list)
    """Namespaces whose pods may call the realtime pool (a gateway's, the calling apps')."""
    ingress_peers: list[dict[str, Any]] = field(default_factory=list)
    """More callers of the realtime pool, as NetworkPolicy peers (wire form), e.g. a gateway's
    pods: `{namespaceSelector: {...}, podSelector: {matchLabels: {...}}}`."""
    prometheus_namespace: str = "monitoring"
    """Namespace of the Prometheus that scrapes the pools (admitted to the metrics ports only)."""
    realtime_placement: PoolPlacement = field(default_factory=PoolPlacement)
    batch_placement: PoolPlacement = field(default_factory=PoolPlacement)
    spot_labels: tuple[tuple[str, str], ...] | None = None
    """(key, value) of the spot node labels the batch pool prefers; None: every platform's
    (`inferstack.contract.clouds`). A cloud target sets its own cloud's."""

    def problems(self, spec: InferenceServiceSpec) -> list[Problem]:
        """Everything wrong with these options for `spec`, each naming the option and the fix."""
        problems: list[Problem] = []
        if isinstance(self.image, str):
            try:
                parse_image(self.image)
            except ImageReferenceError as error:
                problems.append(Problem("options.image", str(error)))
        if not 1 <= self.port <= 65535:
            problems.append(Problem("options.port", f"{self.port} is not a TCP port (1-65535)"))
        if self.service_type == "LoadBalancer" and not self.service_annotations:
            problems.append(
                Problem(
                    "options.service_annotations",
                    "a LoadBalancer Service for inference needs an internal-load-balancer "
                    "annotation (e.g. service.beta.kubernetes.io/aws-load-balancer-scheme: "
                    "internal, or networking.gke.io/load-balancer-type: Internal); set one or "
                    "use service_type ClusterIP",
                )
            )
        if spec.batch is None:
            return problems
        queue = self.queue
        problems += queue_binding(spec, self).problems
        if not queue.results_uri:
            problems.append(
                Problem(
                    "options.queue.results_uri",
                    "the batch pool needs a result store; set it to s3://BUCKET/PREFIX, "
                    "gs://BUCKET/PREFIX, redis://HOST:PORT/DB or file:///DIR",
                )
            )
        problems += backend(spec.batch.queue).problems(spec.batch.queue, self)
        return problems


def queue_name(spec: InferenceServiceSpec, options: KubernetesOptions) -> Any:
    """The queue, subscription or stream the batch pool reads (a string or a Pulumi Output)."""
    assert spec.batch is not None
    if options.queue.url is not None:
        return queue_binding(spec, options).name
    return spec.batch.queue.name or f"{spec.name}-jobs"


@dataclass(frozen=True)
class ResolvedQueueBinding:
    """How `options.queue.url` was read: as a name or as a queue URI, and what it names."""

    name: Any
    form: Literal["name", "uri"]
    problems: list[Problem]


_URL_PATH = "options.queue.url"


def queue_binding(spec: InferenceServiceSpec, options: KubernetesOptions) -> ResolvedQueueBinding:
    """Read `options.queue.url` as a name or a queue URI of the spec's kind (see QueueBinding)."""
    assert spec.batch is not None
    url, queue, binding = options.queue.url, spec.batch.queue, options.queue
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
    elif address.kind == "pubsub" and address.gcp_project != binding.gcp_project:
        problems.append(
            Problem(
                _URL_PATH,
                f"{url!r} {form} is in project {address.gcp_project!r}, but "
                f"options.queue.gcp_project is {binding.gcp_project!r}; make them agree, or set "
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


def queue_uri(spec: InferenceServiceSpec, options: KubernetesOptions) -> Any:
    """The worker's `--queue` URI (see `inferstack work`): one naming rule for worker and KEDA."""
    assert spec.batch is not None
    queue = spec.batch.queue
    return backend(queue).worker_uri(queue_name(spec, options), queue, options)


def parse_options(data: Mapping[str, Any] | None, *, source: str) -> KubernetesOptions:
    """Options from a config mapping (`inferstack:kubernetes`); unknown keys are errors."""
    data = dict(data or {})
    known = {f.name for f in fields(KubernetesOptions)}
    problems = [
        Problem(f"{source}.{key}", f"unknown option; known options are {', '.join(sorted(known))}")
        for key in data
        if key not in known
    ]
    queue_data = data.pop("queue", None) or {}
    queue_known = {f.name for f in fields(QueueBinding)}
    if not isinstance(queue_data, Mapping):
        problems.append(Problem(f"{source}.queue", "expected a mapping of queue options"))
        queue_data = {}
    problems += [
        Problem(f"{source}.queue.{key}", f"unknown option; known: {', '.join(sorted(queue_known))}")
        for key in queue_data
        if key not in queue_known
    ]
    if problems:
        raise SpecError(problems, source=source)
    placements: dict[str, PoolPlacement] = {}
    placement_known = {f.name for f in fields(PoolPlacement)}
    for key in ("realtime_placement", "batch_placement"):
        raw = data.pop(key, None) or {}
        if not isinstance(raw, Mapping):
            problems.append(Problem(f"{source}.{key}", "expected a mapping of placement options"))
            continue
        problems += [
            Problem(
                f"{source}.{key}.{name}",
                f"unknown option; known: {', '.join(sorted(placement_known))}",
            )
            for name in raw
            if name not in placement_known
        ]
        placements[key] = PoolPlacement(**{k: v for k, v in raw.items() if k in placement_known})
    if problems:
        raise SpecError(problems, source=source)
    values = {key: value for key, value in data.items() if key in known}
    return KubernetesOptions(
        **values,
        queue=QueueBinding(**dict(queue_data)),
        realtime_placement=placements.get("realtime_placement", PoolPlacement()),
        batch_placement=placements.get("batch_placement", PoolPlacement()),
    )
