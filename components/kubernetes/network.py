"""A NetworkPolicy per pool: who may reach the model and its metrics, and where the pods may go.

Without one, any pod in the cluster can call a GPU endpoint and read its metrics, and a
compromised pod can reach anything. Each pool admits ingress only from the peers the options
name and sends egress only where it needs to:

- realtime: its HTTP port (the v2 API and /metrics) from the pods of its own namespace
  (`ingress_own_namespace`, on by default: a stack that names no caller would otherwise serve
  no one), `ingress_namespaces` and `ingress_peers` (a gateway, the calling apps), the HTTP
  add-on's interceptor (KEDA's namespace) when the pool scales to zero, and Prometheus
  (`prometheus_namespace`);
- batch: nothing calls the worker; its metrics port from Prometheus only;
- both: DNS (kube-dns in kube-system); HTTPS and the node endpoints the target names
  (`KubernetesBindings.node_endpoints`: the instance metadata endpoint by default, the EKS Pod
  Identity agent on AWS) where the pool reads a cloud service: the queue, the result store, a
  model in object storage; a Redis queue or result store on its own port.

Peers outside the cluster cannot be named by address here (cloud endpoints move), so cloud
egress is TCP 443 to any address; what the policy removes is everything else.
`network_policy: false` in the options turns the objects off (a mesh or a cluster-wide policy
already does the job).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from inferstack.components.kubernetes.bindings import KubernetesBindings, NodeEndpoint
from inferstack.components.kubernetes.options import KubernetesOptions
from inferstack.components.kubernetes.workloads import (
    Manifest,
    labels,
    metadata,
    selector,
    workload_name,
)
from inferstack.components.planning.pools import BatchPool, Pool
from inferstack.components.planning.spec import InferenceServiceSpec
from inferstack.contract.pods import WORKER_METRICS_PORT

if TYPE_CHECKING:
    import pulumi

NAMESPACE_NAME_LABEL: Final = "kubernetes.io/metadata.name"
"""Set by the API server on every namespace (1.22+): selects a namespace by its name."""
DNS_NAMESPACE: Final = "kube-system"
DNS_POD_LABELS: Final = {"k8s-app": "kube-dns"}
"""kube-dns and CoreDNS both carry it on EKS, GKE and kubeadm clusters."""
METADATA_ENDPOINT: Final = NodeEndpoint("169.254.169.254/32", 80)
"""The instance metadata endpoint (GKE's metadata server answers there for Workload Identity):
credentials and spot notices."""
EKS_POD_IDENTITY_AGENT: Final = NodeEndpoint("169.254.170.23/32", 80)
"""The EKS Pod Identity agent, a host-network DaemonSet: Amazon EKS User Guide, "Set up the
Amazon EKS Pod Identity Agent" (listens on 169.254.170.23 for IPv4; [fd00:ec2::23] for IPv6,
which these IPv4 node classes do not use) and "Understand how EKS Pod Identity works" (the SDKs
read AWS_CONTAINER_CREDENTIALS_FULL_URI, http://169.254.170.23/v1/credentials: port 80). An
egress policy that does not name it blocks it (cilium/cilium#34387)."""
HTTPS_PORT: Final = 443
REDIS_DEFAULT_PORT: Final = 6379
CLOUD_SCHEMES: Final = frozenset({"s3", "gs", "hf", "http", "https"})
"""URI schemes whose service is reached over HTTPS on the internet or the cloud's network (hf: the
Hugging Face Hub, where the runtime fetches an hf:// model)."""


def _namespace(name: str) -> Manifest:
    return {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: name}}}


def _tcp(port: int | str) -> Manifest:
    return {"protocol": "TCP", "port": port}


def _dns() -> Manifest:
    return {
        "to": [{**_namespace(DNS_NAMESPACE), "podSelector": {"matchLabels": dict(DNS_POD_LABELS)}}],
        "ports": [{"protocol": "UDP", "port": 53}, _tcp(53)],
    }


def _redis_port(address: str | None) -> int:
    """The port of `host:port[/db]` (a queue's redis_address, a redis:// result store)."""
    host_port = (address or "").rsplit("@", 1)[-1].split("/", 1)[0]
    _, colon, port = host_port.rpartition(":")
    return int(port) if colon and port.isdigit() else REDIS_DEFAULT_PORT


def _scheme(uri: pulumi.Input[str] | None) -> str:
    return uri.partition("://")[0].lower() if isinstance(uri, str) and "://" in uri else ""


def node_endpoints(bindings: KubernetesBindings) -> tuple[NodeEndpoint, ...]:
    """The node endpoints a pool that reaches a cloud service may call."""
    if bindings.node_endpoints is None:
        return (METADATA_ENDPOINT,)
    return bindings.node_endpoints


def _node_endpoint(endpoint: NodeEndpoint) -> Manifest:
    return {"to": [{"ipBlock": {"cidr": endpoint.cidr}}], "ports": [_tcp(endpoint.port)]}


def egress_rules(
    spec: InferenceServiceSpec, pool: Pool, bindings: KubernetesBindings
) -> list[Manifest]:
    """DNS always; the cloud and Redis endpoints the pool's model, queue and results live at."""
    cloud = _scheme(spec.model.uri) in CLOUD_SCHEMES
    metadata_endpoint = cloud
    redis_ports: set[int] = set()
    if isinstance(pool, BatchPool):
        queue = pool.spec.queue
        if queue.kind == "redis-streams":
            redis_ports.add(_redis_port(queue.redis_address))
        else:
            cloud = True  # SQS and Pub/Sub are HTTPS APIs
        results = bindings.queue.results_uri
        if _scheme(results) == "redis":
            redis_ports.add(_redis_port(str(results).partition("://")[2]))
        elif _scheme(results) in CLOUD_SCHEMES:
            cloud = True
        # The spot watcher polls the metadata endpoint for the interruption notice.
        metadata_endpoint = cloud or pool.spec.capacity.spot
    rules: list[Manifest] = [_dns()]
    if cloud:
        rules.append({"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [_tcp(HTTPS_PORT)]})
    if metadata_endpoint:
        rules += [_node_endpoint(endpoint) for endpoint in node_endpoints(bindings)]
    rules += [{"ports": [_tcp(port)]} for port in sorted(redis_ports)]
    return rules


def ingress_rules(
    pool: Pool, options: KubernetesOptions, bindings: KubernetesBindings | None = None
) -> list[Manifest]:
    """Prometheus on the metrics port; for realtime, the named callers and the interceptor.

    The realtime pool's scraper is the one its scrape mode uses (`bindings.scrape`: GKE's
    managed collectors for Managed Prometheus), not necessarily `prometheus_namespace`.
    """
    scraper = (bindings or KubernetesBindings.from_options(options)).scrape.scraper_namespace
    if isinstance(pool, BatchPool):
        return [
            {
                "from": [_namespace(options.prometheus_namespace)],
                "ports": [_tcp(WORKER_METRICS_PORT)],
            }
        ]
    # A podSelector alone selects pods of the policy's own namespace (NetworkPolicy semantics).
    callers: list[Manifest] = [{"podSelector": {}}] if options.ingress_own_namespace else []
    callers += [_namespace(name) for name in options.ingress_namespaces]
    callers += [dict(peer) for peer in options.ingress_peers]
    if pool.spec.scale_to_zero:
        callers.append(_namespace(options.keda_namespace))
    callers.append(_namespace(scraper))
    return [{"from": callers, "ports": [_tcp(options.port), _tcp(options.grpc_port)]}]


def network_policy(
    spec: InferenceServiceSpec,
    pool: Pool,
    options: KubernetesOptions,
    bindings: KubernetesBindings,
) -> Manifest:
    """One pool's NetworkPolicy: both directions denied except the rules above."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(workload_name(spec, pool.tier), options, labels(spec, pool.tier)),
        "spec": {
            "podSelector": {"matchLabels": selector(spec, pool.tier)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": ingress_rules(pool, options, bindings),
            "egress": egress_rules(spec, pool, bindings),
        },
    }
