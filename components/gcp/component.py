"""`GcpInferenceStack`: one planned service on an existing GKE Standard cluster.

Creates the capacity, the queue and the identities on GCP, then hands them to the Kubernetes
layer (`KubernetesInferenceService`) as options: the subscription (a Pulumi Output), the project,
the results URI, the registry image, and node placement that matches the pools.

- GPU node pools (node_pools): realtime on-demand; batch on Spot VMs; batch on-demand fallback.
- A ComputeClass (compute_class) that fills the spot pool first, falls back, and migrates back.
- Pub/Sub (pubsub): topic, subscription, dead letters, the service agent's two bindings.
- Results bucket (storage) and Artifact Registry repository (registry).
- IAM (identity): bindings on the resources themselves; nothing for the realtime pool.

Constructor order (see DESIGN.md): every problem of the options (and of the plan for this
target) is raised before any child exists; children are named `{name}-{role}` and parented to
this component (bindings to the resource they sit on); outputs; `register_outputs` last.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s

from inferstack.components.gcp import checks, identity, registry, storage
from inferstack.components.gcp import compute_class as gke_class
from inferstack.components.gcp import node_pools as pools_module
from inferstack.components.gcp.options import GcpOptions
from inferstack.components.gcp.pubsub import pubsub_queue, queue_settings
from inferstack.components.kubernetes.component import KubernetesInferenceService
from inferstack.components.kubernetes.options import KubernetesOptions, PoolPlacement
from inferstack.components.kubernetes.workloads import workload_name
from inferstack.components.planning.plan import ServicePlan
from inferstack.contract import resource_types
from inferstack.errors import Problem, SpecError

TYPE_TOKEN = resource_types.GCP_STACK


def plan_problems(plan: ServicePlan, options: GcpOptions) -> list[Problem]:
    """What this target cannot build for `plan`, with `options`: each with its field and fix."""
    found = checks.problems(plan.spec, options)
    if plan.target != "gcp":
        found.append(
            Problem(
                "inferstack:target",
                f"the plan was made for {plan.target!r}; plan the service with target gcp",
            )
        )
    return found


class GcpInferenceStack(pulumi.ComponentResource):
    """GPU node pools, a ComputeClass, Pub/Sub, GCS, Artifact Registry and IAM, plus workloads."""

    subscription: pulumi.Output[str | None]
    """The batch subscription's ID (`projects/P/subscriptions/S`), or None without a batch pool."""
    dead_letter_subscription: pulumi.Output[str | None]
    """Where dead letters are kept, or None without a batch pool."""
    results_uri: pulumi.Output[str | None]
    """The worker's `gs://BUCKET/PREFIX`, or None without a batch pool."""
    image: pulumi.Output[str]
    """The runtime image the Deployments pull."""
    node_pools: pulumi.Output[list[str]]
    """GKE names of the GPU node pools."""
    kubernetes: KubernetesInferenceService
    """The workloads and KEDA objects on the cluster."""

    def __init__(
        self,
        name: str,
        plan: ServicePlan,
        options: GcpOptions,
        kubernetes: KubernetesOptions | None = None,
        *,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(TYPE_TOKEN, name, {}, opts)
        kubernetes = kubernetes or KubernetesOptions()
        problems = plan_problems(plan, options)
        if problems:
            raise SpecError(problems, source="GcpInferenceStack")
        spec = plan.spec
        self.plan = plan
        self.options = options
        namespace = kubernetes.namespace
        labels = {"inferstack-service": spec.name, "managed-by": "inferstack"}
        child = pulumi.ResourceOptions(parent=self)

        def on(resource: Any, *also: pulumi.Resource) -> pulumi.ResourceOptions:
            # Members are known strings (emails, principals), so nothing orders a binding after
            # the account it names or the resource it sits on unless it is said here.
            after = [resource] if resource is not self else []
            return pulumi.ResourceOptions(parent=resource, depends_on=[*after, *also])

        # Nodes: their own service account, with GKE's minimal node role.
        node_account = gcp.serviceaccount.Account(
            f"{name}-nodes",
            account_id=identity.node_account_id(spec.name),
            project=options.project,
            display_name=f"GKE GPU nodes of {spec.name}",
            opts=child,
        )
        node_email = identity.account_email(identity.node_account_id(spec.name), options)
        grants_done: list[pulumi.Resource] = []
        repository = None
        if options.create_registry:
            repository = registry.repository(name, spec.name, options, labels, child)
        for grant in identity.node_grants(node_email, repository is not None):
            target = repository if grant.on == "repository" else None
            grants_done.append(
                identity.bind(
                    _binding_name(name, "nodes", grant),
                    grant,
                    {"repository": target},
                    options,
                    on(target if target is not None else node_account, node_account),
                )
            )

        # Capacity.
        self.pool_plans = pools_module.pool_plans(plan, options)
        pools: list[pulumi.Resource] = [
            pools_module.node_pool(
                f"{name}-{pool.role}-pool",
                pool,
                options,
                node_email,
                pulumi.ResourceOptions(parent=self, depends_on=[node_account, *grants_done]),
            )
            for pool in self.pool_plans
        ]
        by_role = pools_module.pools_by_role(self.pool_plans)
        placement_deps: list[pulumi.Resource] = list(pools)
        if "spot" in by_role or "fallback" in by_role:
            manifest = gke_class.compute_class(spec.name, self.pool_plans)
            placement_deps.append(
                k8s.apiextensions.CustomResource(
                    f"{name}-compute-class",
                    api_version=manifest["apiVersion"],
                    kind=manifest["kind"],
                    metadata=manifest["metadata"],
                    spec=manifest["spec"],
                    opts=pulumi.ResourceOptions(parent=self, depends_on=pools),
                )
            )

        # Queue, results and the worker's identity.
        queue_binding = kubernetes.queue
        batch_annotations = dict(kubernetes.batch_service_account_annotations)
        subscription_id: Any = None
        dead_letter_id: Any = None
        results_uri: str | None = None
        worker_deps: list[pulumi.Resource] = []
        if spec.batch is not None:
            settings = queue_settings(plan, options)
            self.queue_settings = settings
            queue = pubsub_queue(name, settings, options, labels, child)
            worker_deps += queue.agent_bindings
            where = storage.results_location(spec.name, options)
            bucket_name: Any = where.bucket
            bucket = None
            if where.create:
                bucket = storage.results_bucket(name, where, options, labels, child)
                bucket_name = bucket.name
            ksa = workload_name(spec, "batch")
            member = identity.batch_member(options, spec.name, namespace, ksa)
            grants = identity.worker_grants(member, where)
            targets: dict[identity.On, Any] = {
                "subscription": queue.subscription,
                "dead_letter_topic": queue.dead_letter_topic,
                "results_bucket": bucket_name,
            }
            member_account: list[pulumi.Resource] = []
            if options.identity == "service_account":
                account = gcp.serviceaccount.Account(
                    f"{name}-batch-identity",
                    account_id=identity.batch_account_id(spec.name),
                    project=options.project,
                    display_name=f"batch worker of {spec.name}",
                    opts=child,
                )
                targets["gsa"] = account
                member_account.append(account)
                grants.append(identity.impersonation_grant(options, namespace, ksa))
                batch_annotations.update(
                    identity.batch_service_account_annotations(options, spec.name)
                )
            parents = {
                "subscription": queue.subscription,
                "dead_letter_topic": queue.dead_letter_topic,
                "results_bucket": bucket if bucket is not None else self,
                "gsa": targets.get("gsa"),
            }
            for grant in grants:
                worker_deps.append(
                    identity.bind(
                        _binding_name(name, "worker", grant),
                        grant,
                        targets,
                        options,
                        on(parents[grant.on], *member_account),
                    )
                )
            for grant in identity.keda_grants(options):
                worker_deps.append(
                    identity.bind(_binding_name(name, "keda", grant), grant, {}, options, child)
                )
            subscription_id = queue.subscription.id
            dead_letter_id = queue.dead_letter_subscription.id
            results_uri = where.uri
            queue_binding = dataclasses.replace(
                kubernetes.queue,
                url=queue.subscription.name,
                gcp_project=options.project,
                results_uri=where.uri,
            )

        image = kubernetes.image or registry.deployment_image(spec, options) or spec.image
        placement = pools_module.pod_placement(self.pool_plans)
        workload_options = dataclasses.replace(
            kubernetes,
            image=image,
            queue=queue_binding,
            batch_service_account_annotations=batch_annotations,
            realtime_placement=_placement(kubernetes.realtime_placement, placement.get("realtime")),
            batch_placement=_placement(kubernetes.batch_placement, placement.get("batch")),
        )
        self.kubernetes = KubernetesInferenceService(
            name,
            plan,
            workload_options,
            opts=pulumi.ResourceOptions(parent=self, depends_on=placement_deps + worker_deps),
        )

        self.subscription = pulumi.Output.from_input(subscription_id)
        self.dead_letter_subscription = pulumi.Output.from_input(dead_letter_id)
        self.results_uri = pulumi.Output.from_input(results_uri)
        self.image = pulumi.Output.from_input(image)
        self.node_pools = pulumi.Output.from_input([pool.name for pool in self.pool_plans])
        self.register_outputs(
            {
                "subscription": self.subscription,
                "dead_letter_subscription": self.dead_letter_subscription,
                "results_uri": self.results_uri,
                "image": self.image,
                "node_pools": self.node_pools,
            }
        )


def _placement(given: PoolPlacement, pools: pools_module.Placement | None) -> PoolPlacement:
    """The pools' placement, on top of what the Kubernetes options already asked for."""
    if pools is None:
        return given
    return PoolPlacement(
        node_selector={**given.node_selector, **pools.node_selector},
        tolerations=[*given.tolerations, *pools.tolerations],
    )


def _binding_name(name: str, who: str, grant: identity.Grant) -> str:
    """`{name}-{who}-{resource}-{role}`: stable when grants are added or reordered."""
    role = grant.role.removeprefix("roles/").replace(".", "-").lower()
    return f"{name}-{who}-{grant.on.replace('_', '-')}-{role}"


__all__ = ["TYPE_TOKEN", "GcpInferenceStack", "plan_problems"]
