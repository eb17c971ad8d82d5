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

from inferstack.components.aws.names import parse_arn
from inferstack.components.kubernetes.addons import (
    KEDA_CHART,
    KEDA_HTTP_ADDON_CHART,
    AddOnName,
    ClusterAddOns,
)
from inferstack.components.planning import validation
from inferstack.components.planning.spec import InferenceServiceSpec
from inferstack.components.planning.validation import StrictModel
from inferstack.contract.clouds import GCP_PROJECT_ID
from inferstack.contract.images import ImageReferenceError, parse_image
from inferstack.contract.pods import DEFAULT_GRPC_PORT
from inferstack.errors import Problem

CONFIG_KEY: Final = "inferstack:kubernetes"
"""The stack config key of these options; every problem's path starts with it."""
_NAMESPACE: Final = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
"""Kubernetes' DNS-1123 label: k8s.io/apimachinery/pkg/util/validation `IsDNS1123Label`
(`dns1123LabelFmt` `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, `DNS1123LabelMaxLength` 63), the rule the
API server applies to a namespace's name."""
_SQS_QUEUE: Final = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
_SQS_FIFO_QUEUE: Final = re.compile(r"^[A-Za-z0-9_-]{1,75}\.fifo$")
_PUBSUB_NAME: Final = re.compile(r"^[A-Za-z][A-Za-z0-9_.~+%-]{2,254}$")
_URI_UNSAFE: Final = re.compile(r"[\s\"'`\\{}<>^|\x00-\x1f\x7f]")
"""Characters no queue name or queue URI of any kind carries (RFC 3986 leaves them out): they
could only break out of a KEDA trigger's query or metadata."""
_HELM_RELEASE_MAX: Final = 53
"""Helm's limit on a release name (helm `pkg/chartutil` `ValidateReleaseName`)."""
DEFAULT_PROMETHEUS_URL = "http://prometheus-operated.monitoring.svc:9090"
"""The Service the Prometheus Operator creates for every Prometheus it runs."""
DEFAULT_KEDA_NAMESPACE = "keda"
KEDA_CHART_VERSION: Final = KEDA_CHART.version
"""Pinned KEDA Helm chart (`addons.KEDA_CHART`; CRDs match ../shared/schemas/keda)."""
HTTP_ADDON_CHART_VERSION: Final = KEDA_HTTP_ADDON_CHART.version
"""Pinned KEDA HTTP add-on chart (`addons.KEDA_HTTP_ADDON_CHART`)."""

MetricsScraping = Literal["podmonitor", "pod_monitoring", "annotations"]
DEFAULT_PROMETHEUS_RELEASE: Final = "kube-prometheus-stack"
"""The Helm release name kube-prometheus-stack's own install instructions use."""
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

    @field_validator("aws_role_arn")
    @classmethod
    def _aws_role_arn(cls, value: str | None) -> str | None:
        # KEDA assumes this role: a wildcard or another service's ARN would name no one role.
        if value is not None:
            try:
                parse_arn(value, "iam", "role", regional=False)
            except ValueError as error:
                raise ValueError(f"{error}; expected arn:aws:iam::ACCOUNT:role/NAME") from None
        return value

    @field_validator("gcp_project")
    @classmethod
    def _gcp_project(cls, value: str | None) -> str | None:
        # It becomes a label value of KEDA's PromQL query and the worker's queue URI: Google's
        # own project-ID rule (GCP_PROJECT_ID) keeps anything else out.
        if value is not None and not GCP_PROJECT_ID.match(value):
            raise ValueError(
                f"{value!r} is not a Google Cloud project ID (6-30 lowercase letters, digits or "
                "hyphens, starting with a letter, no trailing hyphen); set the project's ID, "
                "not its name or number"
            )
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        # The name lands in KEDA's trigger (a PromQL query for Pub/Sub): see queue_name_problem.
        if value is not None and _URI_UNSAFE.search(value):
            raise ValueError(
                f"{value!r} has a character no queue name or URI carries (space, quote, "
                "backslash, brace, control); set the queue's name or its URI"
            )
        return value


class PoolPlacement(StrictModel):
    """Where one pool's pods must run, beyond the spot rules: the nodes a cloud target created.

    The AWS and GCP components set it to the NodePool / node pool / ComputeClass they create for
    the pool; a plain-Kubernetes stack may set it to its own GPU node labels and taints.
    """

    node_selector: dict[str, str] = Field(default_factory=dict)
    """Node labels the pool's pods require, e.g. a dedicated GPU node pool's."""
    tolerations: list[dict[str, Any]] = Field(default_factory=list)
    """Extra tolerations (wire form), e.g. for the taints of a dedicated node pool."""
    spread_label: str | None = None
    """A node label whose values split the pool between capacity types (the AWS component's
    spot share): the pods spread evenly over its values, at most one pod apart."""


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
    grpc_port: int = DEFAULT_GRPC_PORT
    """The runtime's gRPC port (KServe v2 gRPC and gRPC health) in the pods and on the Service."""
    metrics: MetricsScraping | None = None
    """How the realtime pool is scraped (`inferstack.components.kubernetes.scraping`):
    `podmonitor` (Prometheus Operator / kube-prometheus-stack), `pod_monitoring` (GKE Managed
    Prometheus) or `annotations` (a Prometheus with the `kubernetes-pods` job). None: the target's
    own (`pod_monitoring` on gcp, `podmonitor` elsewhere)."""
    prometheus_url: str = DEFAULT_PROMETHEUS_URL
    """Where KEDA's Prometheus trigger sends the demand query (the gcp target's
    `pod_monitoring` queries the project's Managed Prometheus instead)."""
    prometheus_release: str = DEFAULT_PROMETHEUS_RELEASE
    """`podmonitor`: the Helm release name of the cluster's kube-prometheus-stack; its Prometheus
    selects PodMonitors labelled `release: <this>` (the chart's default podMonitorSelector)."""
    keda_namespace: str = DEFAULT_KEDA_NAMESPACE
    """Namespace of the KEDA HTTP add-on's interceptor and external scaler."""
    install_keda: bool = False
    """Also install KEDA and the HTTP add-on as Helm releases (pinned chart versions); the same
    as `addons.keda.install` and `addons.keda_http_addon.install`."""
    addons: ClusterAddOns = Field(default_factory=ClusterAddOns)
    """The cluster add-ons this stack installs (pinned charts) or states present with the
    version it expects (`inferstack.components.kubernetes.addons`); `inferstack check` warns
    about a needed one that is neither."""
    cpu_per_gpu: str = "3"
    """CPU requested per GPU of a replica (no CPU limit: a quota would throttle batching)."""
    memory_per_gpu: str = "12Gi"
    """Memory requested and limited per GPU of a replica."""
    acceptors: int | None = None
    """Processes that parse HTTP and gRPC in each realtime pod, in front of its one model
    (`inferstack serve --acceptors`, docs/runtime/server.md); each takes a CPU from the model's
    automatic torch threads. None: the runtime's default, 1 (all in the server process, the
    best measured on 2 CPUs). 0: automatic, counted from the CPUs the replica requests (the pods
    set no CPU limit, and pass their request to the runtime as INFERSTACK_CPUS): the request
    less one CPU for the model."""
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
        # The namespace is part of every workload identity's subject (IRSA, Workload Identity)
        # and a label value of KEDA's PromQL queries: the API server's own rule (_NAMESPACE)
        # keeps quotes and braces out of both.
        if not _NAMESPACE.match(value):
            raise ValueError(
                f"{value!r} is not a Kubernetes namespace (lowercase letters, digits, '-'; "
                "at most 63)"
            )
        return value

    @field_validator("prometheus_release")
    @classmethod
    def _release(cls, value: str) -> str:
        # Helm release names are DNS-1123 labels (helm `chartutil.ValidateReleaseName`), and the
        # value becomes a label value the Prometheus selector compares verbatim.
        if not _NAMESPACE.match(value) or len(value) > _HELM_RELEASE_MAX:
            raise ValueError(
                f"{value!r} is not a Helm release name (lowercase letters, digits, '-'; at most "
                "53); set the name kube-prometheus-stack was installed under"
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

    @field_validator("acceptors")
    @classmethod
    def _acceptors(cls, value: int | None) -> int | None:
        if value is not None and value < 0:
            raise ValueError(
                f"{value} acceptors: set 1 or more, up to the CPUs a replica requests "
                "(cpu_per_gpu x GPUs), 0 for automatic (from the request), or leave it unset "
                "for the runtime's 1"
            )
        return value

    @field_validator("port", "grpc_port")
    @classmethod
    def _port(cls, value: int) -> int:
        if not 1 <= value <= 65535:
            raise ValueError(f"{value} is not a TCP port (1-65535)")
        return value

    def installs(self, name: AddOnName) -> bool:
        """Whether this stack installs the add-on `name` (`addons`, or `install_keda`)."""
        declared = self.addons.declared(name)
        if declared is not None and declared.install:
            return True
        return self.install_keda and name in ("keda", "keda_http_addon")

    def problems(self, spec: InferenceServiceSpec) -> list[Problem]:
        """Everything wrong with these options for `spec`, each naming the option and the fix.

        The queue section is judged with the wiring it becomes (`KubernetesBindings.problems`),
        because a cloud target fills it in from the queue it creates.
        """
        problems = _queue_name_problems(spec, self.queue)
        karpenter = self.addons.karpenter
        if karpenter is not None and karpenter.install:
            problems.append(
                Problem(
                    f"{CONFIG_KEY}.addons.karpenter.install",
                    "Karpenter is installed by the AWS target (inferstack:aws.install_karpenter, "
                    "with its interruption queue and roles); here state the version present",
                )
            )
        for name in ("keda", "keda_http_addon"):
            declared = self.addons.declared(name)
            if self.install_keda and declared is not None and declared.present is not None:
                problems.append(
                    Problem(
                        f"{CONFIG_KEY}.addons.{name}.present",
                        "install_keda installs it, so it cannot be stated present too; drop "
                        "install_keda or the present version",
                    )
                )
        if self.grpc_port == self.port:
            problems.append(
                Problem(
                    f"{CONFIG_KEY}.grpc_port",
                    f"the gRPC port {self.grpc_port} is the HTTP port too; pick another one",
                )
            )
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


def _queue_name_problems(spec: InferenceServiceSpec, binding: QueueBinding) -> list[Problem]:
    """The spec's queue name and a `url` given as a bare name, by the rules of the queue's kind."""
    if spec.batch is None:
        return []
    kind = spec.batch.queue.kind
    problems: list[Problem] = []
    named = [("batch.queue.name", spec.batch.queue.name)]
    if binding.url is not None and "://" not in binding.url and "/" not in binding.url:
        named.append((f"{CONFIG_KEY}.queue.url", binding.url))
    for path, name in named:
        problem = queue_name_problem(kind, name) if name is not None else ""
        if problem:
            problems.append(Problem(path, f"{problem}; rename the queue"))
    return problems


def queue_name_problem(kind: str, name: str) -> str:
    """Why `name` is not a queue name of `kind` as its cloud names queues, or "".

    - sqs: Amazon SQS API Reference, CreateQueue, `QueueName`
      (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_CreateQueue.html):
      up to 80 alphanumeric characters, hyphens and underscores; a FIFO queue ends in `.fifo`.
    - pubsub: Google Cloud, Pub/Sub "Resource names"
      (https://cloud.google.com/pubsub/docs/pubsub-basics#resource_names, the Topic and
      Subscription `name` fields of google.pubsub.v1): start with a letter, 3 to 255 letters,
      digits, `-_.~+%`, not starting with `goog`.
    - redis-streams: any key, but not one with a space, quote or control character (see
      `_URI_UNSAFE`): it travels in a queue URI and in KEDA's metadata.
    """
    if kind == "sqs" and not (_SQS_QUEUE.match(name) or _SQS_FIFO_QUEUE.match(name)):
        return (
            f"{name!r} is not an SQS queue name (1-80 letters, digits, '-' and '_', "
            "optionally ending in .fifo)"
        )
    if kind == "pubsub" and (not _PUBSUB_NAME.match(name) or name.startswith("goog")):
        return (
            f"{name!r} is not a Pub/Sub name (3-255 letters, digits and -_.~+%, starting with "
            "a letter, not with goog)"
        )
    if kind == "redis-streams" and (not name or _URI_UNSAFE.search(name)):
        return f"{name!r} is not a stream name usable here (no space, quote or control character)"
    return ""


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
    "DEFAULT_PROMETHEUS_RELEASE",
    "DEFAULT_PROMETHEUS_URL",
    "HTTP_ADDON_CHART_VERSION",
    "KEDA_CHART_VERSION",
    "KubernetesOptions",
    "MetricsScraping",
    "PoolPlacement",
    "QueueBinding",
    "ServiceType",
    "parse_options",
    "queue_name_problem",
]
