"""The captured resources come out in one order whatever order the program registered them in."""

from __future__ import annotations

import random

from inferstack.offline.capture import CapturedResource, default_providers, tree_order


def resource(kind: str, name: str, parent: str = "", **extra: object) -> CapturedResource:
    return CapturedResource(
        type=kind,
        name=name,
        urn=f"urn:pulumi:s::p::{kind}::{name}",
        parent=parent,
        custom=not kind.startswith(("inferstack:", "pulumi:pulumi:")),
        provider=str(extra.get("provider", "")),
        inputs={},
        dependencies=list(extra.get("dependencies", [])),  # type: ignore[call-overload]
    )


def test_tree_order_is_the_same_for_any_registration_order() -> None:
    stack = resource("pulumi:pulumi:Stack", "p-s")
    component = resource("inferstack:kubernetes:InferenceService", "svc", stack.urn)
    provider = resource("pulumi:providers:kubernetes", "k8s", component.urn)
    deployment = resource(
        "kubernetes:apps/v1:Deployment", "svc-a", component.urn, provider=f"{provider.urn}::id"
    )
    scaler = resource(
        "kubernetes:keda.sh/v1alpha1:ScaledObject",
        "svc-a-scaler",
        component.urn,
        dependencies=[deployment.urn],
    )
    service = resource("kubernetes:core/v1:Service", "svc-b", component.urn)
    everything = [stack, component, provider, deployment, scaler, service]
    orders = set()
    for seed in range(20):
        shuffled = everything[:]
        random.Random(seed).shuffle(shuffled)
        orders.add(tuple(r.name for r in tree_order(shuffled)))
    assert len(orders) == 1
    [order] = orders
    assert order[0] == "p-s"
    assert (
        order.index("svc") < order.index("k8s") < order.index("svc-a") < order.index("svc-a-scaler")
    )


def test_default_providers_are_named_as_the_engine_names_them() -> None:
    plain = resource("kubernetes:core/v1:Service", "a")
    versioned = CapturedResource(**{**plain.__dict__, "name": "b", "version": "4.18.1"})
    assert default_providers([plain, versioned]) == [
        ("pulumi:providers:kubernetes", "default"),
        ("pulumi:providers:kubernetes", "default_4_18_1"),
    ]
