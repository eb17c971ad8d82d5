"""What the Kubernetes layer needs besides the spec: where things live on the cluster.

The spec says what to serve and how fast; these options say which namespace, which Prometheus,
where the batch queue and result store are, and which cloud identity reads them: plain values
a user writes (`inferstack:kubernetes`). What a cloud component wires in from the resources it
creates (a queue URL, a role ARN, an image in its registry) is a `KubernetesBindings`
(`inferstack.components.kubernetes.bindings`), not these options. Kept free of Pulumi imports so
the manifest builders stay pure functions.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final, Literal

from pydantic import Field, field_validator

from inferstack.components.planning import validation
from inferstack.components.planning.spec import InferenceServiceSpec
from inferstack.components.planning.validation import StrictModel
from inferstack.contract.images import ImageReferenceError, parse_image
from inferstack.errors import Problem

CONFIG_KEY: Final = "inferstack:kubernetes"
_NAMESPACE: Final = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
"""The stack config key of these options; every problem's path starts with it."""
DEFAULT_PROMETHEUS_URL = "http://prometheus-operated.monitoring.svc:9090"
"""The Service the Prometheus Operator creates for every Prometheus it runs."""
DEFAULT_KEDA_NAMESPACE = "keda"
KEDA_CHART_VERSION = "2.19.0"
"""Pinned KEDA Helm chart, used with `install_keda=True` (CRDs match ../shared/schemas/keda)."""
HTTP_ADDON_CHART_VERSION = "0.14.0"
"""Pinned KEDA HTTP add-on chart: 0.14 introduced InterceptorRoute (v1beta1), used here."""

MetricsScraping = Literal["annotations", "podmonitor"]
ServiceType = Literal["ClusterIP", "NodePort", "LoadBalancer"]


class QueueBinding(StrictModel):
    """Where the batch queue lives and who may read it, for both the worker and KEDA's scaler.

    `url` is either a name (an SQS queue URL or name, a Pub/Sub subscription ID, a Redis stream
    name) or the worker's queue URI of the spec's kind (`sqs://...`, `pubsub://projects/P/
    subscriptions/S`, `redis://HOST:PORT/DB?stream=NAME`), whose name is then used; a URI of
    another kind, or one whose project or Redis address contradicts the spec and options, is
    refused with the form it was read as. When None, the spec's `batch.queue.name` is used, then
    `<service>-jobs`. The AWS and GCP targets bind their own queue instead.
    """

    url: str | None = None
    """The queue's name or the worker's queue URI; None: the spec's `batch.queue.name`."""
    aws_region: str | None = None
    """Region of the SQS queue (kind sqs), where KEDA reads its length."""
    aws_role_arn: str | None = None
    """IAM role KEDA assumes to read queue length; None: the workload's own (IRSA) identity."""
    gcp_project: str | None = None
    """Project of the Pub/Sub subscription (kind pubsub)."""
    redis_consumer_group: str = "inferstack"
    """Consumer group the workers read the stream with (kind redis-streams)."""
    results_uri: str | None = None
    """Where the worker writes results: s3://, gs://, redis:// or file:// (`inferstack work`)."""


class PoolPlacement(StrictModel):
    """Where one pool's pods must run, beyond the spot rules: the nodes a cloud target created.

    The AWS and GCP components set it to the NodePool / node pool / ComputeClass they create for
    the pool; a plain-Kubernetes stack may set it to its own GPU node labels and taints.
    """

    node_selector: dict[str, str] = Field(default_factory=dict)
    """Node labels the pool's pods require, e.g. a dedicated GPU node pool's."""
    tolerations: list[dict[str, Any]] = Field(default_factory=list)
    """Extra tolerations (wire form), e.g. for the taints of a dedicated node pool."""


class KubernetesOptions(StrictModel):
    """Cluster-side settings of a `KubernetesInferenceService`; every field has a safe default."""

    namespace: str = "default"
    """Namespace of the service's workloads, Services, scalers and policies."""
    image: str | None = None
    """Runtime image; None: the spec's `image`. A tag, a digest or both
    (`repository:tag@sha256:...`, what the stacks use: one image for good)."""
    service_type: ServiceType = "ClusterIP"
    """Type of the realtime pool's Service; a LoadBalancer should be internal (the pack checks)."""
    service_annotations: dict[str, str] = Field(default_factory=dict)
    """Annotations of that Service, e.g. the cloud's internal load balancer annotation."""
    port: int = 8000
    """The runtime's HTTP port in the pods and on the Service."""
    metrics: MetricsScraping = "annotations"
    """`annotations` (prometheus.io/* on the pods) or `podmonitor` (Prometheus Operator)."""
    prometheus_url: str = DEFAULT_PROMETHEUS_URL
    """Where KEDA's Prometheus trigger sends the demand query."""
    keda_namespace: str = DEFAULT_KEDA_NAMESPACE
    """Namespace of the KEDA HTTP add-on's interceptor and external scaler."""
    install_keda: bool = False
    """Also install KEDA and the HTTP add-on as Helm releases (pinned chart versions)."""
    cpu_per_gpu: str = "3"
    """CPU requested per GPU of a replica (no CPU limit: a quota would throttle batching)."""
    memory_per_gpu: str = "12Gi"
    """Memory requested and limited per GPU of a replica."""
    realtime_service_account_annotations: dict[str, str] = Field(default_factory=dict)
    """Annotations of the realtime pool's service account (it needs no cloud identity)."""
    batch_service_account_annotations: dict[str, str] = Field(default_factory=dict)
    """e.g. `eks.amazonaws.com/role-arn` (IRSA) or `iam.gke.io/gcp-service-account` (GKE WI)."""
    queue: QueueBinding = Field(default_factory=QueueBinding)
    """Where the batch pool's queue lives and where its results go."""
    network_policy: bool = True
    """A NetworkPolicy per pool (see `inferstack.components.kubernetes.network`); False when a
    mesh or a cluster-wide policy already restricts the pods' traffic."""
    ingress_own_namespace: bool = True
    """Pods of the service's own namespace may call the realtime pool. On by default so that a
    stack that declares no callers still serves the apps beside it; other namespaces stay out
    unless named below. False: only the callers named below (and the interceptor, Prometheus)."""
    ingress_namespaces: list[str] = Field(default_factory=list)
    """Namespaces whose pods may call the realtime pool (a gateway's, the calling apps')."""
    ingress_peers: list[dict[str, Any]] = Field(default_factory=list)
    """More callers of the realtime pool, as NetworkPolicy peers (wire form), e.g. a gateway's
    pods: `{namespaceSelector: {...}, podSelector: {matchLabels: {...}}}`."""
    prometheus_namespace: str = "monitoring"
    """Namespace of the Prometheus that scrapes the pools (admitted to the metrics ports only)."""
    realtime_placement: PoolPlacement = Field(default_factory=PoolPlacement)
    """Nodes the realtime pool must run on, beyond the on-demand rule."""
    batch_placement: PoolPlacement = Field(default_factory=PoolPlacement)
    """Nodes the batch pool must run on, beyond the spot preference."""
    spot_labels: tuple[tuple[str, str], ...] | None = None
    """(key, value) of the spot node labels the batch pool prefers; None: every platform's
    (`inferstack.contract.clouds`). A cloud target sets its own cloud's."""

    @field_validator("namespace", "keda_namespace", "prometheus_namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        # The namespace is part of every workload identity's subject (IRSA, Workload Identity).
        if not _NAMESPACE.match(value):
            raise ValueError(
                f"{value!r} is not a Kubernetes namespace (lowercase letters, digits, '-'; "
                "at most 63)"
            )
        return value

    @field_validator("image")
    @classmethod
    def _image(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                parse_image(value)
            except ImageReferenceError as error:
                raise ValueError(str(error)) from None
        return value

    @field_validator("port")
    @classmethod
    def _port(cls, value: int) -> int:
        if not 1 <= value <= 65535:
            raise ValueError(f"{value} is not a TCP port (1-65535)")
        return value

    def problems(self, spec: InferenceServiceSpec) -> list[Problem]:
        """Everything wrong with these options for `spec`, each naming the option and the fix.

        The queue section is judged with the wiring it becomes (`KubernetesBindings.problems`),
        because a cloud target fills it in from the queue it creates.
        """
        problems: list[Problem] = []
        if self.service_type == "LoadBalancer" and not self.service_annotations:
            problems.append(
                Problem(
                    f"{CONFIG_KEY}.service_annotations",
                    "a LoadBalancer Service for inference needs an internal-load-balancer "
                    "annotation (e.g. service.beta.kubernetes.io/aws-load-balancer-scheme: "
                    "internal, or networking.gke.io/load-balancer-type: Internal); set one or "
                    "use service_type ClusterIP",
                )
            )
        return problems


def parse_options(
    data: Mapping[str, Any] | None, *, source: str, spec: InferenceServiceSpec | None = None
) -> KubernetesOptions:
    """Options from a config mapping (`inferstack:kubernetes`); unknown keys are errors.

    With `spec`, a refusal also lists what `KubernetesOptions.problems(spec)` finds in the rest.
    """
    return validation.parse_options(KubernetesOptions, data, source=source, spec=spec)


__all__ = [
    "CONFIG_KEY",
    "DEFAULT_KEDA_NAMESPACE",
    "DEFAULT_PROMETHEUS_URL",
    "HTTP_ADDON_CHART_VERSION",
    "KEDA_CHART_VERSION",
    "KubernetesOptions",
    "MetricsScraping",
    "PoolPlacement",
    "QueueBinding",
    "ServiceType",
    "parse_options",
]
