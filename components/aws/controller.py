"""The cluster's one Karpenter: `KarpenterController`, with its interruption queue and node role.

Karpenter is cluster-scoped: one Helm release named `karpenter` in its namespace, reading one
interruption queue (`--interruption-queue`). So it is a component of its own, created once per
cluster, that every service's NodePools share: two services that each installed it would
install two releases of the same name in `kube-system` and four region-wide EventBridge rules
each, with only one queue read. A program that deploys several services on one cluster creates
one `KarpenterController` and hands it to each `AwsInferenceStack` (`karpenter=`); a stack with
`install_karpenter: true` and no controller handed over creates it itself, and a second such
stack for the same cluster in the program is refused.

The release is pinned (`KARPENTER_CHART_VERSION`, whose CRDs are the ones the tests validate
against) and sets `settings.interruptionQueue` to the cluster's queue, under the key the chart
reads (a misspelt key silently disables interruption handling: eksctl #7697; a test renders the
values and checks the key path). The controller's identity is an EKS Pod Identity association
for its service account, with the policy below: scoped to this cluster's tags, the cluster's GPU
node role (one per cluster, as in Karpenter's reference CloudFormation, so `iam:PassRole` names
one role), and the interruption queue.

Nodes join through EKS access entries (type EC2_LINUX), which need the cluster's authentication
mode to be `API` or `API_AND_CONFIG_MAP` (EKS User Guide, "Grant IAM users access to Kubernetes
with EKS access entries"): `access_mode_problems` refuses a `CONFIG_MAP` cluster at `pulumi up`
with the command that changes it, before any role exists.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from inferstack.components.aws import iam
from inferstack.components.aws.interruption import InterruptionQueue, create_interruption_queue
from inferstack.components.aws.options import (
    CONFIG_KEY,
    KARPENTER_CHART,
    KARPENTER_CHART_VERSION,
    AwsOptions,
)
from inferstack.components.aws.tags import MANAGED_BY
from inferstack.contract import resource_types
from inferstack.errors import Problem, SpecError

Document = dict[str, Any]
VERSION: Final = "2012-10-17"
RELEASE_NAME: Final = "karpenter"
"""The Helm release's name: one per cluster in `karpenter_namespace`."""
MAX_ROLE_NAME: Final = 64
ACCESS_ENTRY_MODES: Final = frozenset({"API", "API_AND_CONFIG_MAP"})
"""EKS authentication modes under which access entries work (`CONFIG_MAP` alone ignores them)."""
_LAUNCH_RESOURCES: Final = (
    "fleet",
    "instance",
    "volume",
    "network-interface",
    "launch-template",
    "spot-instances-request",
)


def helm_values(options: AwsOptions, interruption_queue: str) -> dict[str, Any]:
    """The chart values: cluster name, interruption queue, service account, no IMDS reliance."""
    return {
        "settings": {
            "clusterName": options.cluster_name,
            "interruptionQueue": interruption_queue,
        },
        "serviceAccount": {"create": True, "name": options.karpenter_service_account},
        "controller": {
            "resources": {
                "requests": {"cpu": "1", "memory": "1Gi"},
                "limits": {"memory": "1Gi"},
            }
        },
        "replicas": 2,
    }


def controller_policy(
    *,
    account_id: str,
    region: str,
    cluster_name: str,
    cluster_arn: str,
    node_role_arn: str,
    interruption_queue_arn: str,
    partition: str = "aws",
) -> Document:
    """Karpenter v1's controller permissions (after its reference CloudFormation), scoped."""
    ec2 = f"arn:{partition}:ec2:{region}"
    cluster_tag = f"aws:RequestTag/kubernetes.io/cluster/{cluster_name}"
    owned_tag = f"aws:ResourceTag/kubernetes.io/cluster/{cluster_name}"
    launch = [f"{ec2}:*:{kind}/*" for kind in _LAUNCH_RESOURCES]
    profiles = f"arn:{partition}:iam::{account_id}:instance-profile/*"
    statements: list[Document] = [
        {
            "Sid": "AllowScopedEC2InstanceAccessActions",
            "Effect": "Allow",
            "Action": ["ec2:CreateFleet", "ec2:RunInstances"],
            "Resource": [
                f"{ec2}::image/*",
                f"{ec2}::snapshot/*",
                f"{ec2}:*:security-group/*",
                f"{ec2}:*:subnet/*",
                f"{ec2}:*:capacity-reservation/*",
            ],
        },
        {
            "Sid": "AllowScopedEC2LaunchTemplateAccessActions",
            "Effect": "Allow",
            "Action": ["ec2:CreateFleet", "ec2:RunInstances"],
            "Resource": f"{ec2}:*:launch-template/*",
            "Condition": {
                "StringEquals": {owned_tag: "owned"},
                "StringLike": {"aws:ResourceTag/karpenter.sh/nodepool": "*"},
            },
        },
        {
            "Sid": "AllowScopedEC2InstanceActionsWithTags",
            "Effect": "Allow",
            "Action": ["ec2:CreateFleet", "ec2:CreateLaunchTemplate", "ec2:RunInstances"],
            "Resource": launch,
            "Condition": {
                "StringEquals": {
                    cluster_tag: "owned",
                    "aws:RequestTag/eks:eks-cluster-name": cluster_name,
                },
                "StringLike": {"aws:RequestTag/karpenter.sh/nodepool": "*"},
            },
        },
        {
            "Sid": "AllowScopedResourceCreationTagging",
            "Effect": "Allow",
            "Action": "ec2:CreateTags",
            "Resource": launch,
            "Condition": {
                "StringEquals": {
                    cluster_tag: "owned",
                    "aws:RequestTag/eks:eks-cluster-name": cluster_name,
                    "ec2:CreateAction": ["CreateFleet", "CreateLaunchTemplate", "RunInstances"],
                },
                "StringLike": {"aws:RequestTag/karpenter.sh/nodepool": "*"},
            },
        },
        {
            "Sid": "AllowScopedResourceTagging",
            "Effect": "Allow",
            "Action": "ec2:CreateTags",
            "Resource": f"{ec2}:*:instance/*",
            "Condition": {
                "StringEquals": {owned_tag: "owned"},
                "StringLike": {"aws:ResourceTag/karpenter.sh/nodepool": "*"},
                "ForAllValues:StringEquals": {
                    "aws:TagKeys": ["eks:eks-cluster-name", "karpenter.sh/nodeclaim", "Name"]
                },
            },
        },
        {
            "Sid": "AllowScopedDeletion",
            "Effect": "Allow",
            "Action": ["ec2:DeleteLaunchTemplate", "ec2:TerminateInstances"],
            "Resource": [f"{ec2}:*:instance/*", f"{ec2}:*:launch-template/*"],
            "Condition": {
                "StringEquals": {owned_tag: "owned"},
                "StringLike": {"aws:ResourceTag/karpenter.sh/nodepool": "*"},
            },
        },
        {
            # EC2's Describe* actions and the Pricing API have no resource-level permissions:
            # `*` is the only resource they accept. The region condition keeps them local.
            "Sid": "AllowRegionalReadActions",
            "Effect": "Allow",
            "Action": [
                "ec2:DescribeAvailabilityZones",
                "ec2:DescribeCapacityReservations",
                "ec2:DescribeImages",
                "ec2:DescribeInstanceTypeOfferings",
                "ec2:DescribeInstanceTypes",
                "ec2:DescribeInstances",
                "ec2:DescribeLaunchTemplates",
                "ec2:DescribeSecurityGroups",
                "ec2:DescribeSpotPriceHistory",
                "ec2:DescribeSubnets",
            ],
            "Resource": "*",
            "Condition": {"StringEquals": {"aws:RequestedRegion": region}},
        },
        {
            "Sid": "AllowSSMReadActions",
            "Effect": "Allow",
            "Action": "ssm:GetParameter",
            # Public parameters have an empty account field, which `*` matches.
            "Resource": f"arn:{partition}:ssm:{region}:*:parameter/aws/service/*",
        },
        {
            # No resource-level permissions for the Pricing API either.
            "Sid": "AllowPricingReadActions",
            "Effect": "Allow",
            "Action": "pricing:GetProducts",
            "Resource": "*",
        },
        {
            "Sid": "AllowInterruptionQueueActions",
            "Effect": "Allow",
            "Action": ["sqs:DeleteMessage", "sqs:GetQueueUrl", "sqs:ReceiveMessage"],
            "Resource": interruption_queue_arn,
        },
        {
            "Sid": "AllowPassingInstanceRole",
            "Effect": "Allow",
            "Action": "iam:PassRole",
            "Resource": node_role_arn,
            "Condition": {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
        },
        {
            "Sid": "AllowScopedInstanceProfileCreationActions",
            "Effect": "Allow",
            "Action": "iam:CreateInstanceProfile",
            "Resource": profiles,
            "Condition": {
                "StringEquals": {
                    cluster_tag: "owned",
                    "aws:RequestTag/eks:eks-cluster-name": cluster_name,
                    "aws:RequestTag/topology.kubernetes.io/region": region,
                },
                "StringLike": {"aws:RequestTag/karpenter.k8s.aws/ec2nodeclass": "*"},
            },
        },
        {
            "Sid": "AllowScopedInstanceProfileActions",
            "Effect": "Allow",
            "Action": [
                "iam:AddRoleToInstanceProfile",
                "iam:DeleteInstanceProfile",
                "iam:RemoveRoleFromInstanceProfile",
                "iam:TagInstanceProfile",
            ],
            "Resource": profiles,
            "Condition": {
                "StringEquals": {
                    owned_tag: "owned",
                    "aws:ResourceTag/topology.kubernetes.io/region": region,
                },
                "StringLike": {"aws:ResourceTag/karpenter.k8s.aws/ec2nodeclass": "*"},
            },
        },
        {
            "Sid": "AllowInstanceProfileReadActions",
            "Effect": "Allow",
            "Action": "iam:GetInstanceProfile",
            "Resource": profiles,
        },
        {
            "Sid": "AllowAPIServerEndpointDiscovery",
            "Effect": "Allow",
            "Action": "eks:DescribeCluster",
            "Resource": cluster_arn,
        },
    ]
    return {"Version": VERSION, "Statement": statements}


def access_mode_problems(authentication_mode: str | None) -> list[Problem]:
    """Why the cluster's nodes cannot join through access entries, or nothing.

    None (a cluster whose access config was not read, e.g. offline) is not judged.
    """
    if authentication_mode is None or authentication_mode in ACCESS_ENTRY_MODES:
        return []
    return [
        Problem(
            f"{CONFIG_KEY}.cluster_name",
            f"the cluster's authentication mode is {authentication_mode}, so the GPU nodes' "
            "access entry is ignored and they never join; run `aws eks update-cluster-config "
            "--name CLUSTER --access-config authenticationMode=API_AND_CONFIG_MAP` first",
        )
    ]


def _authentication_mode(cluster: Any) -> str | None:
    configs = cluster.get("access_configs") if isinstance(cluster, Mapping) else None
    if configs is None:
        configs = getattr(cluster, "access_configs", None)
    if not configs:
        return None
    first = configs[0]
    mode = first.get("authentication_mode") if isinstance(first, Mapping) else None
    return mode or getattr(first, "authentication_mode", None)


def checked_cluster_name(
    options: AwsOptions, cluster: pulumi.Output[aws.eks.GetClusterResult]
) -> pulumi.Output[str]:
    """The cluster's name, once its authentication mode admits access entries (else SpecError:
    at `pulumi up` the access entry is never created; offline the mode is unknown)."""

    def check(result: Any) -> str:
        problems = access_mode_problems(_authentication_mode(result))
        if problems:
            raise SpecError(problems, source="AwsInferenceStack options")
        return options.cluster_name

    return cluster.apply(check)


def create_node_role(
    name: str,
    role_name: str,
    description: str,
    tags: Mapping[str, str],
    cluster_name: pulumi.Input[str],
    opts: pulumi.ResourceOptions,
) -> aws.iam.Role:
    """A GPU node role with EKS's node policies, joined to the cluster by an access entry."""
    role = aws.iam.Role(
        f"{name}-node-role",
        name=role_name[:MAX_ROLE_NAME],
        assume_role_policy=json.dumps(iam.node_trust()),
        description=description,
        tags=dict(tags),
        opts=opts,
    )
    on_role = pulumi.ResourceOptions(parent=role)
    for policy in iam.NODE_MANAGED_POLICIES:
        aws.iam.RolePolicyAttachment(
            f"{name}-node-{policy}",
            role=role.name,
            policy_arn=iam.managed_policy_arn(policy),
            opts=on_role,
        )
    # Nodes join the cluster through an access entry, not the aws-auth ConfigMap.
    aws.eks.AccessEntry(
        f"{name}-node-access",
        cluster_name=cluster_name,
        principal_arn=role.arn,
        type="EC2_LINUX",
        opts=on_role,
    )
    return role


def node_role_name(options: AwsOptions) -> str:
    """The cluster's GPU node role under its Karpenter (the one role `iam:PassRole` names)."""
    return f"{options.cluster_name}-karpenter-gpu-node"[:MAX_ROLE_NAME]


class KarpenterController(pulumi.ComponentResource):
    """The cluster's Karpenter: controller role, interruption queue and rules, GPU node role,
    and the pinned Helm release that reads the queue. One per cluster, shared by every service."""

    interruption_queue: pulumi.Output[str]
    """The queue's name (the release's `settings.interruptionQueue`)."""
    node_role: pulumi.Output[str]
    """The GPU node role's name, which every service's EC2NodeClass names."""

    def __init__(
        self,
        name: str,
        options: AwsOptions,
        *,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(resource_types.AWS_KARPENTER, name, {}, opts)
        self.options = options
        child = pulumi.ResourceOptions(parent=self)
        invoke = pulumi.InvokeOutputOptions(parent=self)
        account = aws.get_caller_identity_output(opts=invoke).account_id
        cluster = aws.eks.get_cluster_output(name=options.cluster_name, opts=invoke)
        self.node_role_name = node_role_name(options)
        role = create_node_role(
            name,
            self.node_role_name,
            f"GPU nodes Karpenter launches in {options.cluster_name}",
            MANAGED_BY,
            checked_cluster_name(options, cluster),
            child,
        )
        self.queue = create_interruption_queue(name, options, account, child)
        self.release = _install(
            name, options, account, cluster.arn, self.queue, role, self.node_role_name, child
        )
        self.interruption_queue = pulumi.Output.from_input(self.queue.name)
        self.node_role = role.name
        self.register_outputs(
            {"interruption_queue": self.interruption_queue, "node_role": self.node_role}
        )


def _install(
    name: str,
    options: AwsOptions,
    account: pulumi.Output[str],
    cluster_arn: pulumi.Output[str],
    interruption: InterruptionQueue,
    node_role: aws.iam.Role,
    node_role_name: str,
    opts: pulumi.ResourceOptions,
) -> pulumi.Resource:
    """The controller role (Pod Identity), its policy, and the pinned Helm release."""
    role = aws.iam.Role(
        f"{name}-karpenter-role",
        name=f"{options.cluster_name}-karpenter"[:MAX_ROLE_NAME],
        assume_role_policy=pulumi.Output.all(account, cluster_arn).apply(
            lambda v: json.dumps(iam.pod_identity_trust(v[0], v[1]))
        ),
        description=f"Karpenter controller for {options.cluster_name}",
        opts=opts,
    )
    on_role = pulumi.ResourceOptions(parent=role)
    policy = aws.iam.RolePolicy(
        f"{name}-karpenter-policy",
        role=role.name,
        policy=pulumi.Output.all(account, cluster_arn, interruption.arn).apply(
            lambda v: json.dumps(
                controller_policy(
                    account_id=v[0],
                    region=options.region,
                    cluster_name=options.cluster_name,
                    cluster_arn=v[1],
                    # From the role's name, so the document is known (and judged) in preview.
                    node_role_arn=f"arn:aws:iam::{v[0]}:role/{node_role_name}",
                    interruption_queue_arn=v[2],
                )
            )
        ),
        opts=pulumi.ResourceOptions(parent=role, depends_on=[node_role]),
    )
    association = aws.eks.PodIdentityAssociation(
        f"{name}-karpenter-identity",
        cluster_name=options.cluster_name,
        namespace=options.karpenter_namespace,
        service_account=options.karpenter_service_account,
        role_arn=role.arn,
        opts=on_role,
    )
    return k8s.helm.v3.Release(
        f"{name}-karpenter",
        name=RELEASE_NAME,
        chart=KARPENTER_CHART,
        version=KARPENTER_CHART_VERSION,
        namespace=options.karpenter_namespace,
        values=helm_values(options, interruption.name),
        opts=pulumi.ResourceOptions.merge(
            opts, pulumi.ResourceOptions(depends_on=[policy, association])
        ),
    )


__all__ = [
    "ACCESS_ENTRY_MODES",
    "RELEASE_NAME",
    "KarpenterController",
    "access_mode_problems",
    "checked_cluster_name",
    "controller_policy",
    "create_node_role",
    "helm_values",
    "node_role_name",
]
