"""IAM policy documents of the AWS target, as data: built here, serialised by the component.

Each function returns a plain policy document (a dict) from plain strings, so tests parse the
exact actions and ARNs and lint every document with parliament; the component calls them inside
`Output.apply` once the ARNs are known. Who gets what:

- the batch worker: its one queue (receive, delete, change visibility, read attributes), its DLQ
  (send, and resolve the DLQ's URL from the redrive policy's ARN), and objects under its results
  prefix (put; get and a prefix-scoped list, because the worker checks whether a result is
  already there before it runs a redelivered message, and without list S3 answers 403 instead of
  404 for a missing key);
- KEDA's queue scaler: that queue's attributes, nothing else;
- a model in S3 (`model.uri: s3://BUCKET/KEY`): `s3:GetObject` on exactly that object, for the
  worker and for the realtime pool (which otherwise gets no role at all), so the runtime's
  fetch step reads it with the pool's own identity; and, for a bucket encrypted with a
  customer key (`model_kms_key_arn`), `kms:Decrypt` on that key only when S3 asks for it on
  this object's behalf (`model_key_statement`);
- the GPU nodes: the managed policies a node needs (kubelet, CNI, image pulls, SSM);
- the queues and the bucket: resource policies that deny any request not over TLS, and on the
  interruption queue, sends only from EventBridge on behalf of this stack's rules.

No `*` resource appears in any document built here.
"""

from __future__ import annotations

from typing import Any, Final

from inferstack.components.aws.names import Arn

Document = dict[str, Any]

VERSION: Final = "2012-10-17"
NODE_MANAGED_POLICIES: Final = (
    "AmazonEKSWorkerNodePolicy",
    "AmazonEKS_CNI_Policy",
    "AmazonEC2ContainerRegistryPullOnly",
    "AmazonSSMManagedInstanceCore",
)
"""What an EKS node needs: join and report (worker node), pod networking (VPC CNI), image pulls
from ECR (pull only, no push), and Session Manager instead of SSH."""
WORKER_QUEUE_ACTIONS: Final = (
    "sqs:ChangeMessageVisibility",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
    "sqs:ReceiveMessage",
)
WORKER_DLQ_ACTIONS: Final = ("sqs:GetQueueUrl", "sqs:SendMessage")
SCALER_ACTIONS: Final = ("sqs:GetQueueAttributes",)
MODEL_READ_ACTIONS: Final = ("s3:GetObject",)
"""What the fetch step needs: boto3's download_file sends HeadObject, then ranged GetObject
requests; both are authorised by s3:GetObject (S3 API Reference, HeadObject, "Permissions": "To
use HEAD, you must have the s3:GetObject permission"). No s3:ListBucket: without it a missing key
answers 403 rather than 404, which the fetch error's fix mentions."""
MODEL_KEY_ACTIONS: Final = ("kms:Decrypt",)
"""What reading an SSE-KMS object needs besides s3:GetObject: S3 asks KMS to decrypt the
object's data key with the caller's permissions (Amazon S3 User Guide, "Using server-side
encryption with AWS KMS keys (SSE-KMS)": downloading an object needs `kms:Decrypt` on its key;
AWS re:Post, "Do I need to specify the AWS KMS key when I download a KMS-encrypted object from
Amazon S3?": no key ID, the decrypt permission). No kms:GenerateDataKey: the pools only read."""
VIA_SERVICE_KEY: Final = "kms:ViaService"
"""KMS's condition key for the service that called KMS on the principal's behalf (AWS KMS
Developer Guide, "AWS KMS condition keys", kms:ViaService: values `SERVICE.REGION.amazonaws.com`,
e.g. `ec2.us-west-2.amazonaws.com`)."""
S3_CONTEXT_KEY: Final = "kms:EncryptionContext:aws:s3:arn"
"""The encryption context S3 sends with SSE-KMS (`aws:s3:arn`: the object's ARN, or the
bucket's with an S3 Bucket Key), under KMS's `kms:EncryptionContext:context-key` keys."""
_ENDPOINT_SUFFIX: Final = {"aws": "amazonaws.com", "aws-us-gov": "amazonaws.com",
                           "aws-cn": "amazonaws.com.cn"}  # fmt: skip
"""Each partition's service endpoint domain (the China regions' endpoints end in .com.cn)."""
POD_IDENTITY_SERVICE: Final = "pods.eks.amazonaws.com"
INTERRUPTION_SENDERS: Final = ("events.amazonaws.com",)


def managed_policy_arn(name: str, partition: str = "aws") -> str:
    """The ARN of an AWS-managed policy."""
    return f"arn:{partition}:iam::aws:policy/{name}"


def bucket_arn(bucket: str, partition: str = "aws") -> str:
    """The ARN of an S3 bucket."""
    return f"arn:{partition}:s3:::{bucket}"


def model_object_arn(bucket: str, key: str, partition: str = "aws") -> str:
    """The ARN of the model object (no wildcard: one key)."""
    return f"{bucket_arn(bucket, partition)}/{key}"


def _prefix(prefix: str) -> str:
    return prefix.strip("/")


# ---------------------------------------------------------------------------------------------
# Trust policies


def node_trust() -> Document:
    """EC2 instances (the GPU nodes Karpenter launches) assume the node role."""
    return {
        "Version": VERSION,
        "Statement": [
            {
                "Sid": "EC2AssumesNodeRole",
                "Effect": "Allow",
                "Principal": {"Service": "ec2.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }


def pod_identity_trust(account_id: str, cluster_arn: str) -> Document:
    """EKS Pod Identity assumes the role, for associations of this account's cluster only."""
    return {
        "Version": VERSION,
        "Statement": [
            {
                "Sid": "EksPodIdentity",
                "Effect": "Allow",
                "Principal": {"Service": POD_IDENTITY_SERVICE},
                "Action": ["sts:AssumeRole", "sts:TagSession"],
                "Condition": {
                    "StringEquals": {"aws:SourceAccount": account_id},
                    "ArnEquals": {"aws:SourceArn": cluster_arn},
                },
            }
        ],
    }


def irsa_trust(oidc_provider_arn: str, namespace: str, service_account: str) -> Document:
    """IRSA: the cluster's OIDC provider, for one service account's tokens only."""
    issuer = oidc_provider_arn.split(":oidc-provider/", 1)[1]
    return {
        "Version": VERSION,
        "Statement": [
            {
                "Sid": "IrsaServiceAccount",
                "Effect": "Allow",
                "Principal": {"Federated": oidc_provider_arn},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {
                        f"{issuer}:sub": f"system:serviceaccount:{namespace}:{service_account}",
                        f"{issuer}:aud": "sts.amazonaws.com",
                    }
                },
            }
        ],
    }


def role_arn(account_id: str, name_or_arn: str, partition: str = "aws") -> str:
    """The ARN of a role given by name (no path) or by ARN (kept as given, path included).

    A role's ARN carries its path (`arn:aws:iam::ACCOUNT:role/PATH/NAME`, IAM User Guide, "IAM
    identifiers"), so a role with a path can only be named by its ARN: a name alone would build
    `role/NAME` and trust a role that does not exist.
    """
    if name_or_arn.startswith("arn:"):
        return name_or_arn
    if "/" in name_or_arn:
        raise ValueError(f"{name_or_arn!r}: a role with a path is named by its ARN")
    return f"arn:{partition}:iam::{account_id}:role/{name_or_arn}"


def role_trust(role_arn: str) -> Document:
    """One IAM role (KEDA's operator) assumes this role, with the session tags it carries.

    Under EKS Pod Identity the caller's own session carries transitive session tags, which STS
    passes on when it assumes another role, so the trust must allow `sts:TagSession` as well
    (aws/eks-pod-identity-agent#80; IAM User Guide, "Passing session tags in AWS STS": chaining
    with transitive tags needs `sts:TagSession`). Under IRSA no tags are set and it is unused.
    """
    return {
        "Version": VERSION,
        "Statement": [
            {
                "Sid": "AssumedByRole",
                "Effect": "Allow",
                "Principal": {"AWS": role_arn},
                "Action": ["sts:AssumeRole", "sts:TagSession"],
            }
        ],
    }


# ---------------------------------------------------------------------------------------------
# Identity policies


def _kms_statement(kms_key_arn: str | None) -> list[Document]:
    if not kms_key_arn:
        return []
    return [
        {
            "Sid": "UseQueueAndBucketKey",
            "Effect": "Allow",
            "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
            "Resource": kms_key_arn,
        }
    ]


def _model_statement(model_arn: str) -> Document:
    return {
        "Sid": "ReadModel",
        "Effect": "Allow",
        "Action": list(MODEL_READ_ACTIONS),
        "Resource": model_arn,
    }


def s3_via_service(key: Arn) -> str:
    """The `kms:ViaService` value of S3 in the key's region: SSE-KMS keys are in the bucket's
    region, and S3 calls KMS there."""
    return f"s3.{key.region}.{_ENDPOINT_SUFFIX[key.partition]}"


def model_key_statement(key: Arn, model_arn: str) -> Document:
    """`kms:Decrypt` on the model bucket's customer key, and only through S3 for this object.

    `kms:ViaService` keeps the grant from decrypting anything sent to KMS directly; the
    encryption context pins it to this object's data key: S3 sends the object's ARN as
    `aws:s3:arn`, or the bucket's ARN when the bucket uses an S3 Bucket Key, so both are
    listed (a condition with several values matches any of them).
    """
    bucket = model_arn.split("/", 1)[0]
    return {
        "Sid": "DecryptModel",
        "Effect": "Allow",
        "Action": list(MODEL_KEY_ACTIONS),
        "Resource": str(key),
        "Condition": {
            "StringEquals": {
                VIA_SERVICE_KEY: s3_via_service(key),
                S3_CONTEXT_KEY: [bucket, model_arn],
            }
        },
    }


def _model_statements(model_arn: str, key: Arn | None) -> list[Document]:
    statements = [_model_statement(model_arn)]
    if key is not None:
        statements.append(model_key_statement(key, model_arn))
    return statements


def model_reader_policy(model_arn: str, model_key: Arn | None = None) -> Document:
    """A pool that only reads its model (the realtime pool): the model object, and its
    bucket's key through S3 when `model_key` is given; nothing else."""
    return {"Version": VERSION, "Statement": _model_statements(model_arn, model_key)}


RESOURCE_ACCOUNT_KEY: Final = "s3:ResourceAccount"
"""S3's condition key for the account that owns the bucket an S3 request acts on."""


def worker_policy(
    queue_arn: str,
    dlq_arn: str,
    bucket: str,
    prefix: str,
    *,
    kms_key_arn: str | None = None,
    model_arn: str | None = None,
    model_key: Arn | None = None,
    resource_account: str | None = None,
    partition: str = "aws",
) -> Document:
    """The batch worker: its queue, its DLQ, objects under its results prefix, and the model
    object when the model is in S3 (with its bucket's key through S3, `model_key`).

    With `resource_account`, the results statements hold only for a bucket owned by that
    account (`s3:ResourceAccount`, Amazon S3 User Guide, "Condition key examples": the account
    that owns the bucket): a bucket name carries no account, so a `results_bucket` that names
    another account's bucket (or one created under the name later) grants nothing.
    """
    arn = bucket_arn(bucket, partition)
    owned = {"StringEquals": {RESOURCE_ACCOUNT_KEY: resource_account}} if resource_account else {}
    under = _prefix(prefix)
    objects = f"{arn}/{under}/*" if under else f"{arn}/*"
    statements: list[Document] = [
        {
            "Sid": "ConsumeJobs",
            "Effect": "Allow",
            "Action": list(WORKER_QUEUE_ACTIONS),
            "Resource": queue_arn,
        },
        {
            "Sid": "DeadLetter",
            "Effect": "Allow",
            "Action": list(WORKER_DLQ_ACTIONS),
            "Resource": dlq_arn,
        },
        {
            "Sid": "WriteResults",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject"],
            "Resource": objects,
            **({"Condition": owned} if owned else {}),
        },
        {
            "Sid": "FindResults",
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": arn,
            "Condition": {
                "StringLike": {"s3:prefix": [f"{under}/*" if under else "*"]},
                **owned,
            },
        },
    ]
    if model_arn is not None:
        statements += _model_statements(model_arn, model_key)
    return {"Version": VERSION, "Statement": statements + _kms_statement(kms_key_arn)}


def scaler_policy(queue_arn: str) -> Document:
    """KEDA's aws-sqs-queue scaler: the queue's message counts, nothing else."""
    statement = {
        "Sid": "ReadQueueLength",
        "Effect": "Allow",
        "Action": list(SCALER_ACTIONS),
        "Resource": queue_arn,
    }
    return {"Version": VERSION, "Statement": [statement]}


# ---------------------------------------------------------------------------------------------
# Resource policies


def _deny_insecure_transport(service: str, resources: list[str]) -> Document:
    return {
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*",
        "Action": f"{service}:*",
        "Resource": resources if len(resources) > 1 else resources[0],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }


def job_queue_policy(queue_arn: str) -> Document:
    """The job queue and its DLQ: no request without TLS."""
    return {"Version": VERSION, "Statement": [_deny_insecure_transport("sqs", [queue_arn])]}


def interruption_queue_policy(queue_arn: str, rule_arns: list[str]) -> Document:
    """Karpenter's interruption queue: only EventBridge, from this stack's rules, may send."""
    return {
        "Version": VERSION,
        "Statement": [
            {
                "Sid": "EventBridgeRulesSend",
                "Effect": "Allow",
                "Principal": {"Service": list(INTERRUPTION_SENDERS)},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": sorted(rule_arns)}},
            },
            _deny_insecure_transport("sqs", [queue_arn]),
        ],
    }


def bucket_policy(bucket: str, *, partition: str = "aws") -> Document:
    """The results bucket: no request without TLS."""
    arn = bucket_arn(bucket, partition)
    return {"Version": VERSION, "Statement": [_deny_insecure_transport("s3", [arn, f"{arn}/*"])]}


__all__ = [
    "NODE_MANAGED_POLICIES",
    "bucket_arn",
    "bucket_policy",
    "interruption_queue_policy",
    "irsa_trust",
    "job_queue_policy",
    "managed_policy_arn",
    "model_key_statement",
    "model_object_arn",
    "model_reader_policy",
    "node_trust",
    "pod_identity_trust",
    "role_trust",
    "s3_via_service",
    "scaler_policy",
    "worker_policy",
]
