"""Karpenter itself, when `install_karpenter` is set: its Helm release and its controller role.

The release is pinned (`KARPENTER_CHART_VERSION`, whose CRDs are the ones the tests validate
against) and sets `settings.interruptionQueue` to the queue this stack creates, under the key
the chart reads (a misspelt key silently disables interruption handling: eksctl #7697; a test
renders the values and checks the key path). The controller's identity is an EKS Pod Identity
association for its service account, with the policy below: scoped to this cluster's tags, the
node role, and the interruption queue.
"""

from __future__ import annotations

import json
from typing import Any, Final

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from inferstack.components.aws import iam
from inferstack.components.aws.interruption import InterruptionQueue
from inferstack.components.aws.options import KARPENTER_CHART, KARPENTER_CHART_VERSION, AwsOptions
from inferstack.components.planning.plan import ServicePlan

Document = dict[str, Any]
VERSION: Final = "2012-10-17"
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


def install_karpenter(
    name: str,
    plan: ServicePlan,
    options: AwsOptions,
    account: pulumi.Output[str],
    cluster_arn: pulumi.Output[str],
    interruption: InterruptionQueue,
    node_role: aws.iam.Role,
    node_role_name: str,
    opts: pulumi.ResourceOptions,
) -> list[pulumi.Resource]:
    """The controller role (Pod Identity), its policy, and the pinned Helm release."""
    role = aws.iam.Role(
        f"{name}-karpenter-role",
        name=f"{options.cluster_name}-{plan.spec.name}-karpenter"[:64],
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
    release = k8s.helm.v3.Release(
        f"{name}-karpenter",
        name="karpenter",
        chart=KARPENTER_CHART,
        version=KARPENTER_CHART_VERSION,
        namespace=options.karpenter_namespace,
        values=helm_values(options, interruption.name),
        opts=pulumi.ResourceOptions.merge(
            opts, pulumi.ResourceOptions(depends_on=[policy, association])
        ),
    )
    return [release]


__all__ = ["controller_policy", "helm_values", "install_karpenter"]
