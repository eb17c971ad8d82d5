"""AwsInferenceStack rendered under the Pulumi SDK's mock monitor, resource by resource.

The AWS resources went through pulumi-aws's typed constructors (a misspelt argument raises
there); the tests read their wire inputs back: the queues, the bucket and its guards, the
identities and their policy documents (parsed and linted), the interruption rules, the ECR
repository, and the Kubernetes objects (validated strictly, Karpenter's against its CRDs).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from inferstack.components.aws import controller, interruption, karpenter
from inferstack.components.aws.queue import VISIBILITY_MARGIN_SECONDS
from inferstack.contract import resource_types
from inferstack.contract.pods import WORKER_METRICS_PORT
from inferstack.offline.capture import Capture, CapturedResource
from inferstack.offline.placeholders import PLACEHOLDER_ACCOUNT
from tests.components import schemas
from tests.components.aws.factories import AWS_OPTIONS, NOW
from tests.components.aws.iam_lint import findings
from tests.components.factories import PROFILE, spec_data
from tests.components.netpol import Peer, allows
from tests.components.scenarios import capture_scenarios
from tests.components.scheduling import NODES, Node, preference_score, schedulable

KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def _scenario(name: str, aws: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {
        "spec": spec_data(name=name, **changes),
        "aws": {**AWS_OPTIONS, **aws},
        "kubernetes": {"namespace": "inference"},
        "profile": PROFILE,
    }


SCENARIOS = [
    # Both pools, Pod Identity, a bucket and a repository of its own.
    _scenario("full", {}),
    # IRSA with the OIDC provider read from the cluster, an existing bucket, no repository,
    # Karpenter installed with its interruption queue, Bottlerocket nodes, a customer key.
    _scenario(
        "irsa",
        {
            "identity": "irsa",
            "results_bucket": "team-results",
            "results_prefix": "irsa/out",
            "create_repository": False,
            "install_karpenter": True,
            "ami_family": "bottlerocket",
            "kms_key_arn": KEY_ARN,
            "max_receive_count": 3,
        },
    ),
    # Realtime only: no queue, no worker identity.
    _scenario("sync", {}, batch=None),
    # Refused when read, every problem at once: no cluster, a region without g6e, no subnets.
    _scenario(
        "refused",
        {"cluster_name": "", "region": "af-south-1", "subnet_selector": {}},
        realtime__gpu={"type": "nvidia-l40s", "count": 1},
    ),
    # Valid options the component itself refuses for the spec, before any child.
    _scenario(
        "noregion", {"region": "af-south-1"}, realtime__gpu={"type": "nvidia-l40s", "count": 1}
    ),
    # A second service installing Karpenter on the cluster "irsa" already installs it on.
    _scenario("twice", {"install_karpenter": True}),
    # Two services of another cluster handed that cluster's one KarpenterController.
    {**_scenario("shared-a", {"cluster_name": "shared"}), "shared_karpenter": True},
    {**_scenario("shared-b", {"cluster_name": "shared"}), "shared_karpenter": True},
]


@dataclass(frozen=True)
class Rendered:
    capture: Capture

    def of(self, stack: str) -> list[CapturedResource]:
        """Every resource under the stack's component, at any depth."""
        root = next(
            r
            for r in self.capture.resources
            if r.type == resource_types.AWS_STACK and r.name == stack
        )
        inside = {root.urn}
        found = []
        for resource in self.capture.resources:  # registered parents first
            if resource.parent in inside:
                inside.add(resource.urn)
                found.append(resource)
        return found

    def typed(self, stack: str, resource_type: str) -> list[CapturedResource]:
        return [r for r in self.of(stack) if r.type == resource_type]

    def named(self, stack: str, name: str) -> CapturedResource:
        [resource] = [r for r in self.of(stack) if r.name == name]
        return resource

    def manifest(self, stack: str, name: str) -> dict[str, Any]:
        resource = self.named(stack, name)
        return schemas.manifest_from_wire(resource.type, resource.inputs)


@pytest.fixture(scope="module")
def rendered() -> Rendered:
    return Rendered(capture_scenarios("aws_stacks", SCENARIOS, NOW))


def _queue_arn(name: str) -> str:
    return f"arn:aws:sqs:us-east-1:{PLACEHOLDER_ACCOUNT}:{name}"


# ---------------------------------------------------------------------------------------------
# Refusals


def test_bad_options_are_refused_before_any_resource(rendered: Rendered) -> None:
    error = rendered.capture.stack_outputs["error-refused"]
    assert "inferstack:aws.cluster_name" in error
    assert "af-south-1 has no g6e instances" in error
    assert "inferstack:aws.subnet_selector" in error
    assert not [r for r in rendered.capture.resources if "refused" in r.name and r.custom]
    error = rendered.capture.stack_outputs["error-noregion"]
    assert "inferstack:aws.region: af-south-1 has no g6e instances" in error
    assert rendered.of("noregion") == []  # the component itself, and no child


# ---------------------------------------------------------------------------------------------
# Kubernetes and Karpenter objects


@pytest.mark.parametrize("stack", ["full", "irsa", "sync"])
def test_every_kubernetes_object_validates_strictly(rendered: Rendered, stack: str) -> None:
    schemas.require_schema_dir(schemas.KARPENTER_SCHEMA_DIR)
    kinds = set()
    for resource in rendered.of(stack):
        if not resource.type.startswith("kubernetes:") or resource.type == (
            resource_types.HELM_RELEASE
        ):
            continue
        manifest = schemas.manifest_from_wire(resource.type, resource.inputs)
        schemas.validate(manifest)
        kinds.add(manifest["kind"])
    assert {"EC2NodeClass", "NodePool", "Deployment", "ScaledObject"} <= kinds


def test_node_pools_are_the_pure_builders_output(rendered: Rendered) -> None:
    pool = rendered.manifest("full", "full-batch-node-pool")
    assert pool["metadata"]["name"] == "full-batch"
    assert pool["spec"]["limits"] == {"nvidia.com/gpu": "10"}
    assert [p.name for p in rendered.typed("sync", resource_types.KARPENTER_NODE_POOL)] == [
        "sync-realtime-node-pool"
    ]


def test_node_class_names_the_node_role(rendered: Rendered) -> None:
    node_class = rendered.manifest("full", "full-node-class")
    role = rendered.named("full", "full-node-role")
    assert role.inputs["name"] == "inference-prod-full-gpu-node"
    assert json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]["Principal"] == {
        "Service": "ec2.amazonaws.com"
    }
    assert node_class["spec"]["role"] == "inference-prod-full-gpu-node"
    node_class_resource = rendered.named("full", "full-node-class")
    assert role.urn in node_class_resource.dependencies


# ---------------------------------------------------------------------------------------------
# Queues and results


def test_job_queue_is_encrypted_with_a_dlq_after_max_receives(rendered: Rendered) -> None:
    queue = rendered.named("full", "full-jobs").inputs
    assert queue["name"] == "jobs"
    assert queue["sqsManagedSseEnabled"] is True
    assert queue["visibilityTimeoutSeconds"] == 600 + VISIBILITY_MARGIN_SECONDS
    assert queue["messageRetentionSeconds"] == 4 * 24 * 3600
    assert json.loads(queue["redrivePolicy"]) == {
        "deadLetterTargetArn": _queue_arn("jobs-dlq"),
        "maxReceiveCount": 5,
    }
    assert queue["tags"]["inferstack.io/max-job-seconds"] == "600"
    dlq = rendered.named("full", "full-dlq").inputs
    assert dlq["name"] == "jobs-dlq"
    assert dlq["messageRetentionSeconds"] == 14 * 24 * 3600
    allow = rendered.named("full", "full-dlq-redrive-allow").inputs
    assert json.loads(allow["redriveAllowPolicy"]) == {
        "redrivePermission": "byQueue",
        "sourceQueueArns": [_queue_arn("jobs")],
    }


def test_customer_key_and_max_receive_count_from_the_options(rendered: Rendered) -> None:
    queue = rendered.named("irsa", "irsa-jobs").inputs
    assert queue["kmsMasterKeyId"] == KEY_ARN
    assert "sqsManagedSseEnabled" not in queue
    assert json.loads(queue["redrivePolicy"])["maxReceiveCount"] == 3


def test_queue_policies_deny_requests_without_tls(rendered: Rendered) -> None:
    for name in ("full-jobs-policy", "full-dlq-policy"):
        [statement] = json.loads(rendered.named("full", name).inputs["policy"])["Statement"]
        assert statement["Effect"] == "Deny"
        assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_results_bucket_is_private_encrypted_tls_only_and_expires(rendered: Rendered) -> None:
    bucket = f"full-results-{PLACEHOLDER_ACCOUNT}-us-east-1"
    assert rendered.named("full", "full-results").inputs["bucket"] == bucket
    block = rendered.named("full", "full-results-public-access").inputs
    assert {k: block[k] for k in block if k != "bucket"} == {
        "blockPublicAcls": True,
        "blockPublicPolicy": True,
        "ignorePublicAcls": True,
        "restrictPublicBuckets": True,
    }
    ownership = rendered.named("full", "full-results-ownership").inputs
    assert ownership["rule"] == {"objectOwnership": "BucketOwnerEnforced"}
    [rule] = rendered.named("full", "full-results-encryption").inputs["rules"]
    assert rule["applyServerSideEncryptionByDefault"] == {"sseAlgorithm": "AES256"}
    [expiry] = rendered.named("full", "full-results-expiry").inputs["rules"]
    assert expiry["status"] == "Enabled"
    assert expiry["expiration"]["days"] == 30
    assert expiry["filter"] == {"prefix": "results/"}
    policy = json.loads(rendered.named("full", "full-results-policy").inputs["policy"])
    assert findings(policy) == []
    assert policy["Statement"][0]["Resource"] == [
        f"arn:aws:s3:::{bucket}",
        f"arn:aws:s3:::{bucket}/*",
    ]
    assert rendered.capture.stack_outputs["results_uri-full"] == f"s3://{bucket}/results"


def test_an_existing_bucket_is_bound_not_created(rendered: Rendered) -> None:
    assert not rendered.typed("irsa", "aws:s3/bucket:Bucket")
    assert rendered.capture.stack_outputs["results_uri-irsa"] == "s3://team-results/irsa/out"


# ---------------------------------------------------------------------------------------------
# Identities


def _role_policy(rendered: Rendered, stack: str, name: str) -> dict[str, Any]:
    policy: dict[str, Any] = json.loads(rendered.named(stack, name).inputs["policy"])
    return policy


def test_worker_and_scaler_policies_are_scoped_and_lint_clean(rendered: Rendered) -> None:
    worker = _role_policy(rendered, "full", "full-worker-policy")
    assert findings(worker) == []
    resources = {s["Sid"]: s["Resource"] for s in worker["Statement"]}
    bucket = f"full-results-{PLACEHOLDER_ACCOUNT}-us-east-1"
    assert resources == {
        "ConsumeJobs": _queue_arn("jobs"),
        "DeadLetter": _queue_arn("jobs-dlq"),
        "WriteResults": f"arn:aws:s3:::{bucket}/results/*",
        "FindResults": f"arn:aws:s3:::{bucket}",
    }
    scaler = _role_policy(rendered, "full", "full-scaler-policy")
    assert findings(scaler) == []
    assert scaler["Statement"][0]["Action"] == ["sqs:GetQueueAttributes"]
    assert scaler["Statement"][0]["Resource"] == _queue_arn("jobs")
    trust = json.loads(rendered.named("full", "full-scaler-role").inputs["assumeRolePolicy"])
    assert trust["Statement"][0]["Principal"] == {
        "AWS": f"arn:aws:iam::{PLACEHOLDER_ACCOUNT}:role/keda-operator"
    }


def test_pod_identity_binds_the_batch_service_account_only(rendered: Rendered) -> None:
    [association] = rendered.typed("full", "aws:eks/podIdentityAssociation:PodIdentityAssociation")
    assert association.inputs["namespace"] == "inference"
    assert association.inputs["serviceAccount"] == "full-batch"
    assert association.inputs["clusterName"] == "inference-prod"
    trust = json.loads(rendered.named("full", "full-worker-role").inputs["assumeRolePolicy"])
    assert trust["Statement"][0]["Principal"] == {"Service": "pods.eks.amazonaws.com"}
    realtime_sa = rendered.manifest("full", "full-realtime-sa")
    assert "annotations" not in realtime_sa["metadata"]
    roles = {r.inputs["name"] for r in rendered.typed("full", resource_types.IAM_ROLE)}
    assert roles == {
        "inference-prod-full-gpu-node",
        "inference-prod-full-worker",
        "inference-prod-full-queue-scaler",
    }


def test_irsa_trusts_the_clusters_oidc_provider_for_one_service_account(
    rendered: Rendered,
) -> None:
    # Only the Karpenter controller uses Pod Identity here; the worker goes through IRSA.
    [association] = rendered.typed("irsa", "aws:eks/podIdentityAssociation:PodIdentityAssociation")
    assert association.inputs["serviceAccount"] == "karpenter"
    trust = json.loads(rendered.named("irsa", "irsa-worker-role").inputs["assumeRolePolicy"])
    [statement] = trust["Statement"]
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Principal"]["Federated"].endswith(
        ":oidc-provider/oidc.eks.placeholder.invalid/id/INFERENCE-PROD"
    )
    issuer = "oidc.eks.placeholder.invalid/id/INFERENCE-PROD"
    assert statement["Condition"]["StringEquals"][f"{issuer}:sub"] == (
        "system:serviceaccount:inference:irsa-batch"
    )


def test_keda_reads_the_queue_with_pod_identity_and_no_keys(rendered: Rendered) -> None:
    auth = rendered.manifest("full", "full-queue-auth")
    assert auth["spec"]["podIdentity"]["provider"] == "aws"
    assert "secretTargetRef" not in auth["spec"]
    scaler_role = rendered.named("full", "full-scaler-role")
    assert scaler_role.urn in rendered.named("full", "full-queue-auth").dependencies


def test_nodes_join_through_an_access_entry_with_the_managed_policies(rendered: Rendered) -> None:
    [entry] = rendered.typed("full", "aws:eks/accessEntry:AccessEntry")
    assert entry.inputs["type"] == "EC2_LINUX"
    # Registration order follows the role's name resolving, so compare the set.
    attached = {
        r.inputs["policyArn"].rsplit("/", 1)[1]
        for r in rendered.typed("full", "aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    }
    assert attached == {
        "AmazonEKSWorkerNodePolicy",
        "AmazonEKS_CNI_Policy",
        "AmazonEC2ContainerRegistryPullOnly",
        "AmazonSSMManagedInstanceCore",
    }


# ---------------------------------------------------------------------------------------------
# Interruption handling


def test_interruption_queue_gets_the_four_event_kinds(rendered: Rendered) -> None:
    # The cluster's queue and rules, named after the cluster, under its one Karpenter.
    rules = rendered.typed("irsa", resource_types.EVENT_RULE)
    patterns = {r.inputs["name"]: json.loads(r.inputs["eventPattern"]) for r in rules}
    assert patterns == {
        f"inference-prod-karpenter-{kind}": pattern
        for kind, pattern in interruption.EVENT_PATTERNS.items()
    }
    detail_types = {t for p in patterns.values() for t in p["detail-type"]}
    assert detail_types == {
        "EC2 Spot Instance Interruption Warning",
        "EC2 Instance Rebalance Recommendation",
        "EC2 Instance State-change Notification",
        "AWS Health Event",
    }
    assert len(rendered.typed("irsa", resource_types.EVENT_TARGET)) == 4
    queue = rendered.named("irsa", "irsa-cluster-interruption").inputs
    assert queue["name"] == "inference-prod-karpenter-interruption"
    assert queue["sqsManagedSseEnabled"] is True
    policy = json.loads(rendered.named("irsa", "irsa-cluster-interruption-policy").inputs["policy"])
    assert findings(policy) == []
    send = policy["Statement"][0]
    assert send["Principal"] == {"Service": ["events.amazonaws.com"]}
    assert len(send["Condition"]["ArnEquals"]["aws:SourceArn"]) == 4


def test_a_service_without_karpenter_of_its_own_creates_no_interruption_queue(
    rendered: Rendered,
) -> None:
    """Issue 27 item 7: every service created a queue and four region-wide rules, while the
    cluster's Karpenter reads one queue; now only the cluster's Karpenter has them."""
    for stack in ("full", "sync"):
        assert rendered.typed(stack, resource_types.EVENT_RULE) == []
        assert rendered.typed(stack, resource_types.HELM_RELEASE) == []
        queues = {r.inputs["name"] for r in rendered.typed(stack, "aws:sqs/queue:Queue")}
        assert not [name for name in queues if "interruption" in name]
    # Its own node role, joined by an access entry, for a Karpenter installed elsewhere.
    assert rendered.named("full", "full-node-role").inputs["name"].endswith("-full-gpu-node")


def test_installed_karpenter_reads_the_interruption_queue(rendered: Rendered) -> None:
    [release] = rendered.typed("irsa", resource_types.HELM_RELEASE)
    assert release.inputs["name"] == "karpenter"
    values = release.inputs["values"]
    assert values["settings"]["interruptionQueue"] == "inference-prod-karpenter-interruption"
    assert values["settings"]["clusterName"] == "inference-prod"
    assert release.inputs["version"] == "1.14.1"
    controller = _role_policy(rendered, "irsa", "irsa-cluster-karpenter-policy")
    sids = {s["Sid"] for s in controller["Statement"]}
    assert "AllowInterruptionQueueActions" in sids
    # The cluster's node role, the one role the controller may pass, is the NodeClass's.
    node_class = rendered.manifest("irsa", "irsa-node-class")
    assert node_class["spec"]["role"] == "inference-prod-karpenter-gpu-node"
    [passrole] = [s for s in controller["Statement"] if s["Sid"] == "AllowPassingInstanceRole"]
    assert passrole["Resource"].endswith(":role/inference-prod-karpenter-gpu-node")


def test_a_second_karpenter_for_the_same_cluster_is_refused(rendered: Rendered) -> None:
    """Two services with install_karpenter installed two Helm releases named karpenter in
    kube-system; the second is now refused, naming the option and the shared controller."""
    error = rendered.capture.stack_outputs["error-twice"]
    assert "inferstack:aws.install_karpenter" in error
    assert "irsa already installs Karpenter on cluster inference-prod" in error
    assert "KarpenterController" in error
    releases = [
        r
        for r in rendered.capture.resources
        if r.type == resource_types.HELM_RELEASE
        and r.inputs["values"]["settings"]["clusterName"] == "inference-prod"
    ]
    assert len(releases) == 1


def test_access_entries_need_an_api_authentication_mode() -> None:
    # EKS User Guide, "Change authentication mode to use access entries": access entries work
    # under API and API_AND_CONFIG_MAP; CONFIG_MAP reads only the aws-auth ConfigMap.
    assert controller.access_mode_problems("API") == []
    assert controller.access_mode_problems("API_AND_CONFIG_MAP") == []
    assert controller.access_mode_problems(None) == []
    [problem] = controller.access_mode_problems("CONFIG_MAP")
    assert problem.path == "inferstack:aws.cluster_name"
    assert "authenticationMode=API_AND_CONFIG_MAP" in problem.message


def test_realtime_nodes_never_expire_because_expiry_ignores_budgets(rendered: Rendered) -> None:
    """Karpenter v1 expiration is forceful (karpenter.sh, Concepts, Disruption): the realtime
    budget of one node could not throttle it, so realtime nodes are replaced through drift."""
    realtime = rendered.manifest("full", "full-realtime-node-pool")["spec"]
    batch = rendered.manifest("full", "full-batch-node-pool")["spec"]
    assert realtime["template"]["spec"]["expireAfter"] == "Never"
    assert realtime["disruption"]["budgets"] == [{"nodes": "1"}]
    assert batch["template"]["spec"]["expireAfter"] == "720h"


def test_batch_grace_fits_the_notice_karpenter_drains_within(rendered: Rendered) -> None:
    deployment = rendered.manifest("full", "full-batch")
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace < 120
    node_class = rendered.manifest("full", "full-node-class")
    assert node_class["spec"]["metadataOptions"]["httpPutResponseHopLimit"] == (
        karpenter.IMDS_HOP_LIMIT
    )


# ---------------------------------------------------------------------------------------------
# The image


def test_repository_is_immutable_and_scanned_and_the_pods_run_from_it(rendered: Rendered) -> None:
    [repository] = rendered.typed("full", "aws:ecr/repository:Repository")
    assert repository.inputs["imageTagMutability"] == "IMMUTABLE"
    assert repository.inputs["imageScanningConfiguration"] == {"scanOnPush": True}
    assert repository.inputs["encryptionConfigurations"] == [{"encryptionType": "AES256"}]
    [lifecycle] = rendered.typed("full", "aws:ecr/lifecyclePolicy:LifecyclePolicy")
    assert len(json.loads(lifecycle.inputs["policy"])["rules"]) == 2
    image = (
        f"{PLACEHOLDER_ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/inferstack/full-runtime:0.1.0-cuda"
    )
    for pool in ("realtime", "batch"):
        pod = rendered.manifest("full", f"full-{pool}")["spec"]["template"]["spec"]
        assert pod["containers"][0]["image"] == image
    pod = rendered.manifest("irsa", "irsa-batch")["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == "ghcr.io/inferstack/runtime:0.1.0-cuda"


# ---------------------------------------------------------------------------------------------
# Scheduling: the pods land on their own NodePool's nodes, as Karpenter labels them


def _karpenter_nodes(rendered: Rendered, stack: str) -> list[Node]:
    """One node per NodePool and capacity type it allows, labelled the way Karpenter labels."""
    nodes = []
    for resource in rendered.typed(stack, resource_types.KARPENTER_NODE_POOL):
        pool = schemas.manifest_from_wire(resource.type, resource.inputs)
        template = pool["spec"]["template"]
        requirements = {r["key"]: r["values"] for r in template["spec"]["requirements"]}
        for capacity in requirements["karpenter.sh/capacity-type"]:
            instance = requirements[karpenter.INSTANCE_TYPE_LABEL][0]
            labels = {
                **template["metadata"]["labels"],
                "karpenter.sh/capacity-type": capacity,
                "karpenter.sh/nodepool": pool["metadata"]["name"],
                karpenter.INSTANCE_TYPE_LABEL: instance,
                "karpenter.k8s.aws/instance-family": instance.split(".")[0],
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/os": "linux",
            }
            nodes.append(
                Node(
                    f"{pool['metadata']['name']}-{capacity}",
                    labels,
                    template["spec"]["taints"],
                    spot=capacity == "spot",
                )
            )
    return nodes


def _pod(rendered: Rendered, stack: str, pool: str) -> dict[str, Any]:
    spec: dict[str, Any] = rendered.manifest(stack, f"{stack}-{pool}")["spec"]["template"]["spec"]
    return spec


def test_the_node_model_covers_both_pools_and_both_capacity_types(rendered: Rendered) -> None:
    names = {node.name for node in _karpenter_nodes(rendered, "full")}
    assert names == {"full-realtime-on-demand", "full-batch-spot", "full-batch-on-demand"}


def test_realtime_pods_land_only_on_realtime_node_pool_nodes(rendered: Rendered) -> None:
    pod = _pod(rendered, "full", "realtime")
    ours = _karpenter_nodes(rendered, "full")
    others = _karpenter_nodes(rendered, "irsa") + NODES  # another service's pools, other clouds
    landing = {node.name for node in ours + others if schedulable(pod, node)}
    assert landing == {"full-realtime-on-demand"}


def test_batch_pods_land_on_batch_node_pool_nodes_spot_first(rendered: Rendered) -> None:
    pod = _pod(rendered, "full", "batch")
    ours = _karpenter_nodes(rendered, "full")
    others = _karpenter_nodes(rendered, "irsa") + NODES
    landing = {node.name for node in ours + others if schedulable(pod, node)}
    assert landing == {"full-batch-spot", "full-batch-on-demand"}
    scores = {node.name: preference_score(pod, node) for node in ours if node.name in landing}
    assert scores["full-batch-spot"] > scores["full-batch-on-demand"]


def test_the_worker_reads_the_created_queue_and_writes_to_the_created_bucket(
    rendered: Rendered,
) -> None:
    container = _pod(rendered, "full", "batch")["containers"][0]
    args = dict(zip(container["args"][::2], container["args"][1::2], strict=True))
    bucket = f"full-results-{PLACEHOLDER_ACCOUNT}-us-east-1"
    assert args["--results"] == f"s3://{bucket}/results"
    # The queue's URL is computed by AWS: unknown in preview, with the dependency recorded.
    batch = rendered.named("full", "full-batch")
    assert rendered.named("full", "full-jobs").urn in batch.dependencies
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    assert not [name for name in env if name.startswith("AWS_ACCESS_KEY")]


# ---------------------------------------------------------------------------------------------
# The batch pod's flows, through the NetworkPolicy (tests/components/netpol.py's evaluator)

KUBE_SYSTEM = {"kubernetes.io/metadata.name": "kube-system"}
MONITORING = {"kubernetes.io/metadata.name": "monitoring"}
INFERENCE = {"kubernetes.io/metadata.name": "inference"}
SQS_ADDRESS = "52.94.0.10"  # any public address: cloud APIs are reached over TCP 443 anywhere


@pytest.mark.parametrize(
    ("stack", "direction", "peer", "port", "protocol", "allowed"),
    [
        ("full", "Egress", Peer(KUBE_SYSTEM, {"k8s-app": "kube-dns"}), 53, "UDP", True),
        ("full", "Egress", Peer(ip=SQS_ADDRESS), 443, "TCP", True),
        # Amazon EKS User Guide, "Set up the Amazon EKS Pod Identity Agent": 169.254.170.23.
        ("full", "Egress", Peer(ip="169.254.170.23"), 80, "TCP", True),
        ("irsa", "Egress", Peer(ip="169.254.170.23"), 80, "TCP", False),
        # IMDS: unreachable from pods at hop limit 1, so no rule opens it.
        ("full", "Egress", Peer(ip="169.254.169.254"), 80, "TCP", False),
        ("irsa", "Egress", Peer(ip="169.254.169.254"), 80, "TCP", False),
        ("irsa", "Egress", Peer(ip=SQS_ADDRESS), 443, "TCP", True),
        # Undeclared: a database in the VPC, SSH, plain HTTP to the internet.
        ("full", "Egress", Peer(ip="10.0.3.4"), 5432, "TCP", False),
        ("full", "Egress", Peer(ip=SQS_ADDRESS), 80, "TCP", False),
        ("full", "Ingress", Peer(MONITORING, {}), WORKER_METRICS_PORT, "TCP", True),
        ("full", "Ingress", Peer(INFERENCE, {"app": "client"}), WORKER_METRICS_PORT, "TCP", False),
    ],
)
def test_the_batch_pods_flows(
    rendered: Rendered,
    stack: str,
    direction: str,
    peer: Peer,
    port: int,
    protocol: str,
    allowed: bool,
) -> None:
    policy = rendered.manifest(stack, f"{stack}-batch-netpol")
    assert (
        allows(policy, direction, peer, port, protocol=protocol, own_namespace=INFERENCE) is allowed
    )


def test_the_worker_reaches_results_only_in_a_bucket_its_account_owns(rendered: Rendered) -> None:
    """Issue 22: `results_bucket: team-results` could be any account's bucket; the rendered
    statements now hold only where `s3:ResourceAccount` is the deploying account."""
    for stack in ("full", "irsa"):
        statements = _role_policy(rendered, stack, f"{stack}-worker-policy")["Statement"]
        results = [s for s in statements if s["Sid"] in {"WriteResults", "FindResults"}]
        assert len(results) == 2
        for statement in results:
            owner = statement["Condition"]["StringEquals"]["s3:ResourceAccount"]
            assert owner == PLACEHOLDER_ACCOUNT


def test_services_handed_one_controller_share_its_queue_release_and_node_role(
    rendered: Rendered,
) -> None:
    """Issue 27 item 7: one cluster-scoped Karpenter that every service's NodePools share."""
    controllers = [r for r in rendered.capture.resources if r.type == resource_types.AWS_KARPENTER]
    assert sorted(r.name for r in controllers) == ["irsa-cluster", "shared"]
    releases = [
        r
        for r in rendered.capture.resources
        if r.type == resource_types.HELM_RELEASE and r.name == "shared-karpenter"
    ]
    assert len(releases) == 1
    assert releases[0].inputs["values"]["settings"]["interruptionQueue"] == (
        "shared-karpenter-interruption"
    )
    for stack in ("shared-a", "shared-b"):
        node_class = rendered.manifest(stack, f"{stack}-node-class")
        assert node_class["spec"]["role"] == "shared-karpenter-gpu-node"
        assert rendered.typed(stack, resource_types.EVENT_RULE) == []
        assert rendered.typed(stack, "aws:iam/role:Role")  # its worker and scaler only
        assert not [r for r in rendered.of(stack) if r.name.endswith("-node-role")]
