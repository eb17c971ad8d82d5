"""`AwsInferenceStack`: a planned service on an existing EKS cluster, with the capacity it needs.

From the same plan as the Kubernetes target, it creates what a platform team otherwise builds
by hand: GPU capacity with Karpenter (an EC2NodeClass, an on-demand realtime NodePool, a
spot-first batch NodePool), Karpenter's interruption queue and its EventBridge rules, the node
role and its EKS access entry, the job queue with its dead-letter queue, the results bucket,
scoped identities (EKS Pod Identity, or IRSA) for the batch worker and KEDA's queue scaler, an
ECR repository for the runtime image, and optionally Karpenter itself. Then it hands the queue
URL, the region, the identities, the image and the node placement to a
`KubernetesInferenceService` as `KubernetesBindings` (Pulumi inputs where a value exists only
once its resource does), which creates the workloads and their KEDA autoscalers.

Needs a cluster with the EKS Pod Identity agent add-on (or an IAM OIDC provider for IRSA), the
NVIDIA device plugin, KEDA, and Karpenter v1 (or `install_karpenter`).

Constructor order (see DESIGN.md): validate the options before any child exists; then the
children, named `{name}-{role}` and parented to this component or to what owns them; then the
outputs; `register_outputs` last.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Final

import pulumi
import pulumi_aws as aws

from inferstack.components.aws import iam
from inferstack.components.aws import karpenter as karpenter_objects
from inferstack.components.aws.controller import (
    KarpenterController,
    checked_cluster_name,
    create_node_role,
)
from inferstack.components.aws.options import CONFIG_KEY, AwsOptions
from inferstack.components.aws.queue import JobQueue, create_job_queue
from inferstack.components.aws.registry import create_repository, repository_name
from inferstack.components.aws.tags import resource_tags
from inferstack.components.kubernetes.bindings import KubernetesBindings, NodeEndpoint, QueueWiring
from inferstack.components.kubernetes.component import KubernetesInferenceService, custom_resource
from inferstack.components.kubernetes.network import EKS_POD_IDENTITY_AGENT
from inferstack.components.kubernetes.options import KubernetesOptions
from inferstack.components.kubernetes.workloads import workload_name
from inferstack.components.planning.plan import ServicePlan, target_problems
from inferstack.components.planning.pools import Tier
from inferstack.contract import resource_types
from inferstack.contract.model_uris import parse_remote
from inferstack.errors import Problem, SpecError

TYPE_TOKEN: Final = resource_types.AWS_STACK
IRSA_ANNOTATION: Final = "eks.amazonaws.com/role-arn"
MAX_ROLE_NAME: Final = 64


def plan_problems(plan: ServicePlan, options: AwsOptions) -> list[Problem]:
    """What this target cannot build for `plan`, with `options`: each with its field and fix."""
    return options.problems(plan.spec) + target_problems(plan, "aws")


class AwsInferenceStack(pulumi.ComponentResource):
    """A GPU inference service on EKS: Karpenter capacity, SQS, S3, ECR, identities, workloads."""

    queue_url: pulumi.Output[str | None]
    """The job queue's URL (None without a batch pool)."""
    dead_letter_queue_url: pulumi.Output[str | None]
    """The dead-letter queue's URL."""
    results_uri: pulumi.Output[str | None]
    """Where the worker writes results (`s3://BUCKET/PREFIX`)."""
    interruption_queue: pulumi.Output[str | None]
    """The interruption queue the cluster's Karpenter reads: the `KarpenterController`'s, or the
    one `karpenter_interruption_queue` states for a Karpenter installed elsewhere."""
    node_role: pulumi.Output[str]
    """The GPU nodes' IAM role name (the EC2NodeClass's `role`)."""
    repository_url: pulumi.Output[str | None]
    """The runtime image's ECR repository, when the stack creates one."""
    queue_scaler_role_arn: pulumi.Output[str | None]
    """The role KEDA's operator assumes to read the queue length (allow it `sts:AssumeRole`)."""
    service: KubernetesInferenceService
    """The workloads and autoscalers."""

    def __init__(
        self,
        name: str,
        plan: ServicePlan,
        options: AwsOptions,
        kubernetes: KubernetesOptions | None = None,
        *,
        karpenter: KarpenterController | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(TYPE_TOKEN, name, {}, opts)
        kubernetes = kubernetes or KubernetesOptions()
        problems = plan_problems(plan, options) + kubernetes.problems(plan.spec)
        if karpenter is None and options.install_karpenter:
            problems += _claim_karpenter(options.cluster_name, plan.spec.name)
        if problems:
            raise SpecError(problems, source="AwsInferenceStack options")
        self.plan, self.options = plan, options
        spec = plan.spec
        child = pulumi.ResourceOptions(parent=self)
        invoke = pulumi.InvokeOutputOptions(parent=self)
        account = aws.get_caller_identity_output(opts=invoke).account_id.apply(
            self._deploying_account
        )
        cluster = aws.eks.get_cluster_output(name=options.cluster_name, opts=invoke)

        if karpenter is None and options.install_karpenter:
            # This stack installs the cluster's Karpenter; `_claim_karpenter` refused a second.
            karpenter = KarpenterController(f"{name}-cluster", options, opts=child)
        controller: list[pulumi.Resource] = []
        if karpenter is not None:
            # The cluster's GPU node role, which the shared controller may pass to EC2.
            node_role_name, node_role = karpenter.node_role_name, karpenter.node_role
            controller = [karpenter]
            interruption_queue: pulumi.Input[str] | None = karpenter.interruption_queue
        else:
            # A Karpenter installed elsewhere: this service's own node role, which that
            # controller's policy must allow to pass (see docs/targets/aws.md).
            node_role_name = self._role_name("gpu-node")
            own_role = create_node_role(
                name,
                node_role_name,
                f"GPU nodes Karpenter launches for {spec.name}",
                resource_tags(plan),
                checked_cluster_name(options, cluster),
                child,
            )
            node_role, controller = own_role.name, [own_role]
            interruption_queue = options.karpenter_interruption_queue

        repository = (
            create_repository(name, plan, options, child) if options.create_repository else None
        )
        job_queue = None
        scaler_arn: pulumi.Output[str] | None = None
        bindings = self._placement(KubernetesBindings.from_options(kubernetes))
        if plan.batch is not None:
            job_queue = create_job_queue(name, plan, plan.batch, options, account, child)
            scaler = self._queue_scaler(name, job_queue, account)
            bindings = self._identities(
                name, kubernetes, bindings, job_queue, scaler, account, cluster
            )
            scaler_arn = scaler.arn
        model_arn = model_object_arn(spec.model.uri)
        if plan.realtime is not None and model_arn is not None:
            bindings = self._model_reader(name, model_arn, kubernetes, bindings, account, cluster)
        if repository is not None and "image" not in spec.model_fields_set and not bindings.image:
            bindings = dataclasses.replace(bindings, image=self._repository_image(account))

        capacity = self._capacity(name, node_role_name, controller)
        self.service = KubernetesInferenceService(
            name,
            plan,
            kubernetes,
            bindings=bindings,
            opts=pulumi.ResourceOptions(parent=self, depends_on=capacity),
        )

        self.queue_url = pulumi.Output.from_input(job_queue.queue_url if job_queue else None)
        self.dead_letter_queue_url = pulumi.Output.from_input(
            job_queue.dead_letter.url if job_queue else None
        )
        self.results_uri = pulumi.Output.from_input(job_queue.results_uri if job_queue else None)
        self.interruption_queue = pulumi.Output.from_input(interruption_queue)
        self.node_role = pulumi.Output.from_input(node_role)
        self.repository_url = pulumi.Output.from_input(
            repository.repository_url if repository else None
        )
        self.queue_scaler_role_arn = pulumi.Output.from_input(scaler_arn)
        self.register_outputs(
            {
                "queue_url": self.queue_url,
                "dead_letter_queue_url": self.dead_letter_queue_url,
                "results_uri": self.results_uri,
                "interruption_queue": self.interruption_queue,
                "node_role": self.node_role,
                "repository_url": self.repository_url,
                "queue_scaler_role_arn": self.queue_scaler_role_arn,
            }
        )

    # -----------------------------------------------------------------------------------------

    def _role_name(self, role: str) -> str:
        # IAM names are account-wide: the cluster keeps two stacks' services apart.
        return f"{self.options.cluster_name}-{self.plan.spec.name}-{role}"[:MAX_ROLE_NAME]

    def _repository_image(self, account: pulumi.Output[str]) -> pulumi.Output[str]:
        """The created repository's image at `image_tag` (its host carries the account ID)."""
        options, repository = self.options, repository_name(self.plan)
        return account.apply(
            lambda a: f"{a}.dkr.ecr.{options.region}.amazonaws.com/{repository}:{options.image_tag}"
        )

    def _worker_trust(
        self,
        namespace: str,
        account: pulumi.Output[str],
        cluster: pulumi.Output[aws.eks.GetClusterResult],
        tier: Tier = "batch",
    ) -> pulumi.Output[str]:
        """Who may assume a pool's role: the Pod Identity agent, or the IRSA OIDC subject of
        the pool's service account."""
        options = self.options
        service_account = workload_name(self.plan.spec, tier)
        if options.identity == "pod_identity":
            return pulumi.Output.all(account, cluster.arn).apply(
                lambda v: json.dumps(iam.pod_identity_trust(v[0], v[1]))
            )
        provider = (
            pulumi.Output.from_input(options.oidc_provider_arn)
            if options.oidc_provider_arn
            else pulumi.Output.all(account, cluster.identities).apply(_oidc_provider_arn)
        )
        return provider.apply(
            lambda arn: json.dumps(iam.irsa_trust(arn, namespace, service_account))
        )

    def _identities(
        self,
        name: str,
        kubernetes: KubernetesOptions,
        bindings: KubernetesBindings,
        job_queue: JobQueue,
        scaler: aws.iam.Role,
        account: pulumi.Output[str],
        cluster: pulumi.Output[aws.eks.GetClusterResult],
    ) -> KubernetesBindings:
        """The worker's role, and the queue bound to the batch pool with KEDA's `scaler` role;
        the realtime pool gets no cloud identity."""
        options, spec = self.options, self.plan.spec
        service_account = workload_name(spec, "batch")
        namespace = kubernetes.namespace
        child = pulumi.ResourceOptions(parent=self)
        trust = self._worker_trust(namespace, account, cluster)
        worker = aws.iam.Role(
            f"{name}-worker-role",
            name=self._role_name("worker"),
            assume_role_policy=trust,
            description=f"Batch worker of {spec.name}: its queue, its DLQ, its results prefix",
            tags=resource_tags(self.plan),
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-worker-policy",
            role=worker.name,
            policy=pulumi.Output.all(
                job_queue.queue_arn, job_queue.dead_letter_arn, job_queue.bucket, account
            ).apply(
                lambda v: json.dumps(
                    iam.worker_policy(
                        v[0],
                        v[1],
                        v[2],
                        job_queue.prefix,
                        kms_key_arn=options.kms_key_arn,
                        model_arn=model_object_arn(spec.model.uri),
                        model_key=options.model_key(),
                        # The results bucket must be this account's unless cross_account.
                        resource_account=None if options.cross_account else v[3],
                    )
                )
            ),
            opts=pulumi.ResourceOptions(parent=worker),
        )
        annotations: dict[str, pulumi.Input[str]] = dict(bindings.batch_service_account_annotations)
        if options.identity == "pod_identity":
            aws.eks.PodIdentityAssociation(
                f"{name}-worker-identity",
                cluster_name=options.cluster_name,
                namespace=namespace,
                service_account=service_account,
                role_arn=worker.arn,
                opts=pulumi.ResourceOptions(parent=worker),
            )
        else:
            annotations[IRSA_ANNOTATION] = worker.arn
        return dataclasses.replace(
            bindings,
            queue=QueueWiring(
                url=job_queue.queue_url,
                aws_region=options.region,
                aws_role_arn=scaler.arn,
                redis_consumer_group=bindings.queue.redis_consumer_group,
                results_uri=job_queue.results_uri,
            ),
            batch_service_account_annotations=annotations,
        )

    def _model_reader(
        self,
        name: str,
        model_arn: str,
        kubernetes: KubernetesOptions,
        bindings: KubernetesBindings,
        account: pulumi.Output[str],
        cluster: pulumi.Output[aws.eks.GetClusterResult],
    ) -> KubernetesBindings:
        """The realtime pool's role when its model is in S3: read that one object (and decrypt
        it through S3 with `model_kms_key_arn`), nothing else (the runtime fetches it at pod
        start with this identity)."""
        spec, options = self.plan.spec, self.options
        role = aws.iam.Role(
            f"{name}-realtime-role",
            name=self._role_name("realtime"),
            assume_role_policy=self._worker_trust(
                kubernetes.namespace, account, cluster, "realtime"
            ),
            description=f"Realtime pool of {spec.name}: reads its model object only",
            tags=resource_tags(self.plan),
            opts=pulumi.ResourceOptions(parent=self),
        )
        aws.iam.RolePolicy(
            f"{name}-realtime-policy",
            role=role.name,
            policy=json.dumps(iam.model_reader_policy(model_arn, options.model_key())),
            opts=pulumi.ResourceOptions(parent=role),
        )
        annotations = dict(bindings.realtime_service_account_annotations)
        if options.identity == "pod_identity":
            aws.eks.PodIdentityAssociation(
                f"{name}-realtime-identity",
                cluster_name=options.cluster_name,
                namespace=kubernetes.namespace,
                service_account=workload_name(spec, "realtime"),
                role_arn=role.arn,
                opts=pulumi.ResourceOptions(parent=role),
            )
        else:
            annotations[IRSA_ANNOTATION] = role.arn
        return dataclasses.replace(bindings, realtime_service_account_annotations=annotations)

    def _deploying_account(self, account: str) -> str:
        """The caller's account; at `pulumi up`, ARN options of another account are refused.

        Only at `pulumi up`: offline the account is a placeholder no real ARN names.
        """
        if not pulumi.runtime.is_dry_run():
            problems = self.options.account_problems(account)
            if problems:
                raise SpecError(problems, source="AwsInferenceStack options")
        return account

    def _queue_scaler(
        self, name: str, job_queue: JobQueue, account: pulumi.Output[str]
    ) -> aws.iam.Role:
        """The role KEDA's operator assumes to read the job queue's length, and nothing else."""
        options, spec = self.options, self.plan.spec
        keda_role = options.keda_operator_role
        keda_arn = account.apply(lambda a: iam.role_arn(a, keda_role))
        scaler = aws.iam.Role(
            f"{name}-scaler-role",
            name=self._role_name("queue-scaler"),
            assume_role_policy=keda_arn.apply(lambda arn: json.dumps(iam.role_trust(arn))),
            description=f"KEDA reads the length of {spec.name}'s job queue",
            tags=resource_tags(self.plan),
            opts=pulumi.ResourceOptions(parent=self),
        )
        aws.iam.RolePolicy(
            f"{name}-scaler-policy",
            role=scaler.name,
            policy=job_queue.queue_arn.apply(lambda arn: json.dumps(iam.scaler_policy(arn))),
            opts=pulumi.ResourceOptions(parent=scaler),
        )
        return scaler

    def _capacity(
        self,
        name: str,
        node_role_name: str,
        controller: list[pulumi.Resource],
    ) -> list[pulumi.Resource]:
        """The EC2NodeClass and one NodePool per pool of the spec."""
        plan = self.plan
        # The role's name is known (explicit), so the NodeClass carries it as a plain string and
        # waits for the role (or the cluster's Karpenter, which owns it) through the dependency.
        after = pulumi.ResourceOptions(parent=self, depends_on=controller)
        node_class = custom_resource(
            f"{name}-node-class",
            karpenter_objects.node_class(plan, self.options, node_role_name),
            after,
        )
        created: list[pulumi.Resource] = [node_class]
        for role, manifest in karpenter_objects.node_pools(plan):
            created.append(
                custom_resource(
                    f"{name}-{role}-node-pool",
                    manifest,
                    pulumi.ResourceOptions(parent=self, depends_on=[node_class, *controller]),
                )
            )
        return created

    def _placement(self, bindings: KubernetesBindings) -> KubernetesBindings:
        """Node placement for the Kubernetes layer: each pool on its own NodePool's nodes."""
        cloud = self.plan.cloud
        assert cloud is not None
        return dataclasses.replace(
            bindings,
            realtime_placement=karpenter_objects.placement(self.plan, "realtime"),
            batch_placement=karpenter_objects.placement(self.plan, "batch"),
            # Karpenter's label only: the batch NodePool's nodes carry no other spot label.
            spot_labels=tuple(
                (label.key, label.value)
                for label in cloud.spot_labels
                if label.key == karpenter_objects.CAPACITY_TYPE_LABEL
            ),
            node_endpoints=node_endpoints(self.options),
        )


_KARPENTER_INSTALLED_BY: dict[str, str] = {}
"""Cluster -> the service whose stack installs its Karpenter in this program (one per cluster)."""


def _claim_karpenter(cluster_name: str, service: str) -> list[Problem]:
    """Record that `service` installs `cluster_name`'s Karpenter, or why it may not."""
    owner = _KARPENTER_INSTALLED_BY.setdefault(cluster_name, service)
    if owner == service:
        return []
    return [
        Problem(
            f"{CONFIG_KEY}.install_karpenter",
            f"{owner} already installs Karpenter on cluster {cluster_name} in this program, and "
            "a cluster runs one (one Helm release, one interruption queue); set "
            "install_karpenter false here, or create one KarpenterController and pass it to "
            "every AwsInferenceStack as karpenter=",
        )
    ]


def model_object_arn(uri: str) -> str | None:
    """The ARN of the model object when the model is in S3 (None: it is not)."""
    try:
        remote = parse_remote(uri)
    except ValueError:
        return None
    if remote is None or remote.scheme != "s3":
        return None
    return iam.model_object_arn(remote.container, remote.path)


def node_endpoints(options: AwsOptions) -> tuple[NodeEndpoint, ...]:
    """What the pods read on their Karpenter node: the EKS Pod Identity agent with
    `identity: pod_identity`, nothing with IRSA (a projected token, exchanged with STS over
    HTTPS). Never IMDS: the NodeClass's hop limit of 1 drops IMDSv2's token answer one hop from
    the node, before it reaches a pod's network namespace, so a rule for it opens nothing."""
    return (EKS_POD_IDENTITY_AGENT,) if options.identity == "pod_identity" else ()


def _oidc_provider_arn(values: list[Any]) -> str:
    account, identities = values
    issuer = str(_field(_field(identities[0], "oidcs")[0], "issuer"))
    return f"arn:aws:iam::{account}:oidc-provider/{issuer.removeprefix('https://')}"


def _field(value: Any, key: str) -> Any:
    """A data source's nested field: typed result objects, or plain dicts from the mocks."""
    return value[key] if isinstance(value, dict) else getattr(value, key)


__all__ = ["TYPE_TOKEN", "AwsInferenceStack", "node_endpoints", "plan_problems"]
