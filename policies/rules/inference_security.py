"""inference-security: inference endpoints are not public, pods are not root, GPUs are bounded.

Why: a public LoadBalancer exposes an expensive GPU endpoint to the internet (cost abuse, model
extraction). A root or privileged container on a GPU node can reach the driver and the host.
A GPU request without an equal limit is rejected by Kubernetes for extended resources, or, when
the limit differs, schedules on a wrong assumption about how many devices the pod holds.

Fix: mark inference LoadBalancers internal (or restrict `loadBalancerSourceRanges`), run
containers with `runAsNonRoot: true` and a non-zero `runAsUser`, never `privileged`, and set GPU
limits equal to GPU requests.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from inferstack.contract import resource_types
from inferstack.contract.labels import SERVICE_LABEL
from inferstack.policies import kube
from inferstack.policies.resources import Resource, as_number, is_true, list_of, mapping_of
from inferstack.policies.rule import TIER_CONFIG_SCHEMA, Rule, config_value

INTERNAL_LB_ANNOTATIONS: Final = {
    "service.beta.kubernetes.io/aws-load-balancer-internal": {"true", "0.0.0.0/0"},
    "service.beta.kubernetes.io/aws-load-balancer-scheme": {"internal"},
    "networking.gke.io/load-balancer-type": {"internal"},
    "cloud.google.com/load-balancer-type": {"internal"},
    "service.beta.kubernetes.io/azure-load-balancer-internal": {"true"},
}
_OPEN_RANGES: Final = {"0.0.0.0/0", "::/0"}


def _service_messages(service: Resource, tier_key: str) -> list[str]:
    if service.get("spec.type") != "LoadBalancer":
        return []
    selector = mapping_of(service.get("spec.selector"))
    service_labels = kube.labels(service)
    inference = any(
        key in m for m in (selector, service_labels) for key in (tier_key, SERVICE_LABEL)
    )
    if not inference:
        return []
    notes = kube.object_annotations(service)
    internal = any(
        isinstance(notes.get(key), str) and str(notes[key]).lower() in values
        for key, values in INTERNAL_LB_ANNOTATIONS.items()
    )
    ranges = [str(r) for r in list_of(service.get("spec.loadBalancerSourceRanges"))]
    restricted = bool(ranges) and not (_OPEN_RANGES & set(ranges))
    if internal or restricted:
        return []
    return [
        "inference Service of type LoadBalancer is reachable from the internet; add an "
        "internal load balancer annotation (e.g. service.beta.kubernetes.io/"
        "aws-load-balancer-scheme: internal, networking.gke.io/load-balancer-type: Internal) "
        "or restrict spec.loadBalancerSourceRanges"
    ]


def _security_messages(resource: Resource) -> list[str]:
    spec = kube.pod_spec(resource)
    pod_context = mapping_of(spec.get("securityContext"))
    messages = []
    for container in kube.containers(spec):
        name = container.get("name", "?")
        context = mapping_of(container.get("securityContext"))
        if is_true(context.get("privileged")):
            messages.append(
                f"container {name} is privileged; remove securityContext.privileged (the GPU "
                "device plugin exposes the devices without it)"
            )
        user = as_number(context.get("runAsUser", pod_context.get("runAsUser")))
        non_root = context.get("runAsNonRoot", pod_context.get("runAsNonRoot"))
        if user == 0:
            messages.append(
                f"container {name} runs as root (runAsUser 0); set runAsUser to a non-zero UID "
                "and runAsNonRoot: true"
            )
        elif user is None and not is_true(non_root):
            messages.append(
                f"container {name} may run as root (neither runAsNonRoot: true nor a non-zero "
                "runAsUser in its or the pod's securityContext); set runAsNonRoot: true"
            )
    return messages


def _gpu_messages(resource: Resource) -> list[str]:
    messages = []
    for container in kube.containers(kube.pod_spec(resource)):
        requests = kube.gpu_quantities(container, "requests")
        limits = kube.gpu_quantities(container, "limits")
        for gpu, requested in requests.items():
            if gpu not in limits:
                messages.append(
                    f"container {container.get('name', '?')} requests {gpu} without a limit; "
                    f"set resources.limits[{gpu}] equal to the request"
                )
            elif requested is not None and limits[gpu] is not None and limits[gpu] != requested:
                messages.append(
                    f"container {container.get('name', '?')} requests {gpu} "
                    f"{requested:g} but limits it to {limits[gpu]:g}; make them equal"
                )
    return messages


def check(resource: Resource, config: Mapping[str, Any]) -> list[str]:
    """Messages for public inference endpoints, root/privileged containers and GPU limits."""
    tier_key = str(config_value(config, RULE, "tierLabel"))
    if resource.type == resource_types.SERVICE:
        return _service_messages(resource, tier_key)
    if resource.type not in resource_types.WORKLOAD_TYPES:
        return []
    messages = _gpu_messages(resource)
    if kube.is_inference_workload(resource, tier_key):
        messages = _security_messages(resource) + messages
    return messages


RULE: Final = Rule(
    name="inference-security",
    description="Inference endpoints must not be public, pods not root, GPU requests bounded.",
    doc=__doc__,
    severity="high",
    enforcement="mandatory",
    check_resource=check,
    config_schema={"tierLabel": TIER_CONFIG_SCHEMA["tierLabel"]},
)
