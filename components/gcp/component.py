"""`GcpInferenceStack`: one planned service on an existing GKE Standard cluster.

Creates the capacity, the queue and the identities on GCP, then hands them to the Kubernetes
layer (`KubernetesInferenceService`) as `KubernetesBindings`: the subscription (a Pulumi Output),
the project, the results URI, the registry image, and node placement that matches the pools.

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

import pulumi
import pulumi_gcp as gcp

from inferstack.components.gcp import compute_class as gke_class
from inferstack.components.gcp import identity, registry, storage
from inferstack.components.gcp import node_pools as pools_module
from inferstack.components.gcp.labels import resource_labels
from inferstack.components.gcp.options import GcpOptions
from inferstack.components.gcp.pubsub import PubSubQueue, pubsub_queue, queue_settings
from inferstack.components.kubernetes.bindings import KubernetesBindings, QueueWiring
from inferstack.components.kubernetes.component import KubernetesInferenceService, custom_resource
from inferstack.components.kubernetes.options import KubernetesOptions, PoolPlacement
from inferstack.components.kubernetes.scraping import scrape_for
from inferstack.components.kubernetes.workloads import workload_name
from inferstack.components.planning.plan import ServicePlan, target_problems
from inferstack.components.planning.pools import BatchPool
from inferstack.contract import resource_types
from inferstack.errors import Problem, SpecError

TYPE_TOKEN = resource_types.GCP_STACK


def plan_problems(plan: ServicePlan, options: GcpOptions) -> list[Problem]:
    """What this target cannot build for `plan`, with `options`: each with its field and fix."""
    return options.problems(plan.spec) + target_problems(plan, "gcp")


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
    service: KubernetesInferenceService
    """The workloads and KEDA objects on the cluster (`service`, as on `AwsInferenceStack`)."""

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
        problems = plan_problems(plan, options) + kubernetes.problems(plan.spec)
        if problems:
            raise SpecError(problems, source="GcpInferenceStack")
        self.plan, self.options = plan, options
        spec = plan.spec
        self._labels = resource_labels(spec.name)

        node_email, node_ready = self._nodes(name)
        self.pool_plans = pools_module.pool_plans(plan, options)
        capacity = self._capacity(name, node_email, node_ready)
        bindings = self._placement(KubernetesBindings.from_options(kubernetes))
        bindings = dataclasses.replace(
            bindings,
            image=kubernetes.image or registry.deployment_image(spec, options) or spec.image,
            # Managed Prometheus unless the options chose another scrape mode.
            scrape=scrape_for(
                kubernetes, "gcp", gcp_project=options.project, gke_cluster=options.cluster
            ),
        )
        subscription_id: pulumi.Input[str] | None = None
        dead_letter_id: pulumi.Input[str] | None = None
        results_uri: str | None = None
        worker_ready: list[pulumi.Resource] = []
        if plan.batch is not None:
            queue = self._queue(name, plan.batch)
            where = storage.results_location(spec.name, options)
            bindings, worker_ready = self._worker(name, kubernetes, bindings, queue, where)
            subscription_id = queue.subscription.id
            dead_letter_id = queue.dead_letter_subscription.id
            results_uri = where.uri
        if plan.batch is not None or bindings.scrape.pod_identity is not None:
            worker_ready += self._keda_grants(name)
        if plan.realtime is not None and identity.model_location(spec.model.uri) is not None:
            bindings, reader_ready = self._model_reader(name, kubernetes, bindings)
            worker_ready += reader_ready

        self.service = KubernetesInferenceService(
            name,
            plan,
            kubernetes,
            bindings=bindings,
            opts=pulumi.ResourceOptions(parent=self, depends_on=capacity + worker_ready),
        )

        self.subscription = pulumi.Output.from_input(subscription_id)
        self.dead_letter_subscription = pulumi.Output.from_input(dead_letter_id)
        self.results_uri = pulumi.Output.from_input(results_uri)
        self.image = pulumi.Output.from_input(bindings.image or spec.image)
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

    # -----------------------------------------------------------------------------------------

    def _bound_to(
        self, resource: pulumi.Resource | None, *also: pulumi.Resource
    ) -> pulumi.ResourceOptions:
        """A binding's options: parented to what it sits on, and ordered after it.

        Members are known strings (emails, principals), so nothing orders a binding after the
        account it names or the resource it sits on unless it is said here.
        """
        if resource is None:
            return pulumi.ResourceOptions(parent=self, depends_on=list(also))
        return pulumi.ResourceOptions(parent=resource, depends_on=[resource, *also])

    def _nodes(self, name: str) -> tuple[str, list[pulumi.Resource]]:
        """The nodes' own service account with GKE's minimal node role (and registry reads)."""
        options, service = self.options, self.plan.spec.name
        node_account = gcp.serviceaccount.Account(
            f"{name}-nodes",
            account_id=identity.node_account_id(service),
            project=options.project,
            display_name=f"GKE GPU nodes of {service}",
            opts=pulumi.ResourceOptions(parent=self),
        )
        node_email = identity.account_email(identity.node_account_id(service), options)
        repository = None
        if options.create_registry:
            repository = registry.repository(
                name, service, options, self._labels, pulumi.ResourceOptions(parent=self)
            )
        ready: list[pulumi.Resource] = [node_account]
        for grant in identity.node_grants(node_email, repository is not None):
            target = repository if grant.on == "repository" else None
            ready.append(
                identity.bind(
                    _binding_name(name, "nodes", grant),
                    grant,
                    identity.GrantTargets(repository=repository),
                    options,
                    self._bound_to(target or node_account, node_account),
                )
            )
        return node_email, ready

    def _capacity(
        self, name: str, node_email: str, node_ready: list[pulumi.Resource]
    ) -> list[pulumi.Resource]:
        """The GPU node pools, and the ComputeClass that fills spot first when batch has one."""
        pools: list[pulumi.Resource] = [
            pools_module.node_pool(
                f"{name}-{pool.role}-pool",
                pool,
                self.options,
                node_email,
                pulumi.ResourceOptions(parent=self, depends_on=node_ready),
            )
            for pool in self.pool_plans
        ]
        by_role = pools_module.pools_by_role(self.pool_plans)
        if "spot" not in by_role and "fallback" not in by_role:
            return pools
        compute_class = custom_resource(
            f"{name}-compute-class",
            gke_class.compute_class(self.plan.spec.name, self.pool_plans),
            pulumi.ResourceOptions(parent=self, depends_on=pools),
        )
        return [*pools, compute_class]

    def _placement(self, bindings: KubernetesBindings) -> KubernetesBindings:
        """Each pool on its node pools' nodes, on top of what the options already asked for."""
        placement = pools_module.pod_placement(self.pool_plans)
        return dataclasses.replace(
            bindings,
            realtime_placement=_placement(bindings.realtime_placement, placement.get("realtime")),
            batch_placement=_placement(bindings.batch_placement, placement.get("batch")),
        )

    def _queue(self, name: str, pool: BatchPool) -> PubSubQueue:
        """The Pub/Sub topic, subscription and dead letters of the batch pool."""
        settings = queue_settings(self.plan, pool, self.options)
        self.queue_settings = settings
        return pubsub_queue(
            name, settings, self.options, self._labels, pulumi.ResourceOptions(parent=self)
        )

    def _batch_account(self, name: str) -> gcp.serviceaccount.Account:
        """The batch worker's own Google service account (`identity: service_account`)."""
        service = self.plan.spec.name
        return gcp.serviceaccount.Account(
            f"{name}-batch-identity",
            account_id=identity.batch_account_id(service),
            project=self.options.project,
            display_name=f"batch worker of {service}",
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _keda_grants(self, name: str) -> list[pulumi.Resource]:
        """KEDA's operator reads Managed Prometheus: the batch backlog, the realtime demand."""
        return [
            identity.bind(
                _binding_name(name, "keda", grant),
                grant,
                identity.GrantTargets(),
                self.options,
                pulumi.ResourceOptions(parent=self),
            )
            for grant in identity.keda_grants(self.options)
        ]

    def _model_reader(
        self, name: str, kubernetes: KubernetesOptions, bindings: KubernetesBindings
    ) -> tuple[KubernetesBindings, list[pulumi.Resource]]:
        """The realtime pool reads its model in Cloud Storage with its own identity: that one
        object (the pool otherwise has no GCP binding at all)."""
        options, spec = self.options, self.plan.spec
        ksa = workload_name(spec, "realtime")
        member = identity.realtime_member(options, spec.name, kubernetes.namespace, ksa)
        grants = identity.model_grants(member, spec.model.uri)
        targets = identity.GrantTargets(model_bucket=_model_bucket(spec.model.uri))
        annotations = dict(bindings.realtime_service_account_annotations)
        account = None
        if options.identity == "service_account":
            account = gcp.serviceaccount.Account(
                f"{name}-realtime-identity",
                account_id=identity.realtime_account_id(spec.name),
                project=options.project,
                display_name=f"realtime pool of {spec.name}: reads its model",
                opts=pulumi.ResourceOptions(parent=self),
            )
            targets = dataclasses.replace(targets, gsa=account)
            grants.append(identity.impersonation_grant(options, kubernetes.namespace, ksa))
            email = identity.account_email(identity.realtime_account_id(spec.name), options)
            annotations[identity.GKE_SA_ANNOTATION] = email
        after = [account] if account is not None else []
        ready: list[pulumi.Resource] = [
            identity.bind(
                _binding_name(name, "realtime", grant),
                grant,
                targets,
                options,
                self._bound_to(account if grant.on == "gsa" else None, *after),
            )
            for grant in grants
        ]
        return (
            dataclasses.replace(bindings, realtime_service_account_annotations=annotations),
            ready,
        )

    def _worker(
        self,
        name: str,
        kubernetes: KubernetesOptions,
        bindings: KubernetesBindings,
        queue: PubSubQueue,
        where: storage.ResultsLocation,
    ) -> tuple[KubernetesBindings, list[pulumi.Resource]]:
        """The results bucket and the worker's and KEDA's grants; the queue bound to the pool."""
        options, service = self.options, self.plan.spec.name
        bucket = None
        if where.create:
            bucket = storage.results_bucket(
                name, where, options, self._labels, pulumi.ResourceOptions(parent=self)
            )
        ksa = workload_name(self.plan.spec, "batch")
        member = identity.batch_member(options, service, kubernetes.namespace, ksa)
        grants = identity.worker_grants(member, where)
        grants += identity.model_grants(member, self.plan.spec.model.uri)
        targets = identity.GrantTargets(
            subscription=queue.subscription,
            dead_letter_topic=queue.dead_letter_topic,
            results_bucket=bucket.name if bucket is not None else where.bucket,
            model_bucket=_model_bucket(self.plan.spec.model.uri),
        )
        annotations: dict[str, pulumi.Input[str]] = dict(bindings.batch_service_account_annotations)
        account = None
        if options.identity == "service_account":
            account = self._batch_account(name)
            targets = dataclasses.replace(targets, gsa=account)
            grants.append(identity.impersonation_grant(options, kubernetes.namespace, ksa))
            annotations.update(identity.batch_service_account_annotations(options, service))
        parents: dict[identity.On, pulumi.Resource | None] = {
            "subscription": queue.subscription,
            "dead_letter_topic": queue.dead_letter_topic,
            "results_bucket": bucket,
            "model_bucket": None,
            "gsa": account,
        }
        after_account = [account] if account is not None else []
        ready: list[pulumi.Resource] = list(queue.agent_bindings)
        for grant in grants:
            ready.append(
                identity.bind(
                    _binding_name(name, "worker", grant),
                    grant,
                    targets,
                    options,
                    self._bound_to(parents[grant.on], *after_account),
                )
            )
        wiring = QueueWiring(
            url=queue.subscription.name,
            gcp_project=options.project,
            redis_consumer_group=bindings.queue.redis_consumer_group,
            results_uri=where.uri,
        )
        bound = dataclasses.replace(
            bindings, queue=wiring, batch_service_account_annotations=annotations
        )
        return bound, ready


def _model_bucket(uri: str) -> str | None:
    location = identity.model_location(uri)
    return location[0] if location is not None else None


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
