"""A small evaluator of NetworkPolicy semantics: is one flow allowed by one policy's rules?

Kubernetes documentation, "Network Policies" (kubernetes.io/docs/concepts/services-networking/
network-policies): the rules of a direction are OR'd; a rule without `to`/`from` matches every
peer and one without `ports` every port; within one peer, `namespaceSelector` and `podSelector`
are AND'd; an `ipBlock` matches addresses in `cidr` outside every `except`. A selector here is
`matchLabels` only (the only form the components render); `matchExpressions` is refused.
Tested on the documentation's own example in test_conformance.py.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

Labels = dict[str, str]


@dataclass(frozen=True)
class Peer:
    """The other end of a flow: an in-cluster pod (its namespace's and its own labels) or an
    address outside the cluster."""

    namespace_labels: Labels | None = None
    pod_labels: Labels = field(default_factory=dict)
    ip: str | None = None


def _selects(selector: dict[str, Any], labels: Labels) -> bool:
    if "matchExpressions" in selector:
        raise NotImplementedError("matchExpressions: not rendered by the components")
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def _peer_matches(peer_rule: dict[str, Any], peer: Peer, own_namespace: Labels) -> bool:
    if "ipBlock" in peer_rule:
        if peer.ip is None:
            return False  # ipBlock is meant for addresses outside the cluster's pods
        address = ipaddress.ip_address(peer.ip)
        block = peer_rule["ipBlock"]
        inside = address in ipaddress.ip_network(block["cidr"])
        return inside and not any(
            address in ipaddress.ip_network(cidr) for cidr in block.get("except", [])
        )
    if peer.namespace_labels is None:
        return False  # a selector matches pods only
    if "namespaceSelector" in peer_rule:
        if not _selects(peer_rule["namespaceSelector"], peer.namespace_labels):
            return False
    elif peer.namespace_labels != own_namespace:
        return False  # a podSelector alone selects pods in the policy's own namespace
    return _selects(peer_rule.get("podSelector", {}), peer.pod_labels)


def _port_matches(ports: list[dict[str, Any]] | None, port: int, protocol: str) -> bool:
    if not ports:
        return True
    for rule in ports:
        if rule.get("protocol", "TCP") != protocol:
            continue
        wanted = rule.get("port")
        if wanted is None:
            return True
        if isinstance(wanted, str):
            raise NotImplementedError("named ports need the pod's container ports")
        if wanted <= port <= rule.get("endPort", wanted):
            return True
    return False


def allows(
    policy: dict[str, Any],
    direction: str,
    peer: Peer,
    port: int,
    *,
    protocol: str = "TCP",
    own_namespace: Labels | None = None,
) -> bool:
    """Whether `policy` (selecting the pod) lets the flow to or from `peer` on `port` through.

    `direction` is "Ingress" or "Egress"; a policy that does not list it does not restrict it.
    """
    spec = policy["spec"]
    types = spec.get("policyTypes") or (["Ingress"] + (["Egress"] if "egress" in spec else []))
    if direction not in types:
        return True
    rules = spec.get("ingress" if direction == "Ingress" else "egress") or []
    peers_key = "from" if direction == "Ingress" else "to"
    namespace = own_namespace or {}
    for rule in rules:
        peers = rule.get(peers_key)
        peer_ok = not peers or any(_peer_matches(p, peer, namespace) for p in peers)
        if peer_ok and _port_matches(rule.get("ports"), port, protocol):
            return True
    return False
