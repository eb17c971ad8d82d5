"""The SageMaker execution role's documents, as data: built here, serialised by the component.

SageMaker assumes the execution role to pull the image, to run the container (whose runtime
fetches the model with the role's credentials), to read an asynchronous request's input, to
write its output or failure, to publish the outcome, and to write the container's logs.
"CreateModel API: Execution Role Permissions"
(https://docs.aws.amazon.com/sagemaker/latest/dg/sagemaker-roles.html#sagemaker-roles-createmodel-perms)
and "Asynchronous inference: prerequisites"
(https://docs.aws.amazon.com/sagemaker/latest/dg/async-inference-create-endpoint-prerequisites.html)
list what each needs. What it gets here, and nothing more:

- the image: layer and manifest reads on its one ECR repository; `ecr:GetAuthorizationToken`
  on `*`, the one statement with a wildcard, because that action has no resource type (the
  Service Authorization Reference lists none for it): it grants a registry login token, and the
  pulls it enables are still limited to the repository above;
- the model: `s3:GetObject` on its one object (none for a model inside the image), and with
  `model_kms_key_arn` `kms:Decrypt` on the bucket's key through S3 for that object only (the
  AWS target's statement, `aws.iam.model_key_statement`);
- asynchronous work: read under `<prefix>/input/`, write under `<prefix>/output/` and
  `<prefix>/failure/`, nothing else of the bucket;
- the outcome: `sns:Publish` on the success and error topics only;
- logs: create and write streams in the log groups of this service's endpoints only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from inferstack.components.aws.iam import model_key_statement
from inferstack.components.aws.names import Arn

Document = dict[str, Any]

VERSION: Final = "2012-10-17"
SAGEMAKER_SERVICE: Final = "sagemaker.amazonaws.com"
IMAGE_PULL_ACTIONS: Final = (
    "ecr:BatchCheckLayerAvailability",
    "ecr:BatchGetImage",
    "ecr:GetDownloadUrlForLayer",
)
REGISTRY_LOGIN_ACTION: Final = "ecr:GetAuthorizationToken"
LOG_ACTIONS: Final = ("logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents")
LOG_GROUP_PREFIX: Final = "/aws/sagemaker/Endpoints/"
"""SageMaker writes an endpoint's container logs to `/aws/sagemaker/Endpoints/<endpoint>`."""


@dataclass(frozen=True)
class AsyncPaths:
    """Where the asynchronous endpoint's objects live: one bucket, one prefix per direction."""

    bucket: str
    prefix: str
    """`<async_prefix>/<service>`, no slashes at either end."""

    @property
    def input(self) -> str:
        """Where callers put requests (`InvokeEndpointAsync`'s InputLocation)."""
        return f"{self.prefix}/input"

    @property
    def output(self) -> str:
        """SageMaker's S3OutputPath: a result per request."""
        return f"{self.prefix}/output"

    @property
    def failure(self) -> str:
        """SageMaker's S3FailurePath: the error of each failed request, to find and replay."""
        return f"{self.prefix}/failure"

    def uri(self, key_prefix: str) -> str:
        """`s3://bucket/<key_prefix>/`."""
        return f"s3://{self.bucket}/{key_prefix}/"


@dataclass(frozen=True)
class RoleGrants:
    """The ARNs and names the execution policy is written from, all known at that point."""

    partition: str
    region: str
    account: str
    repository_arn: str
    endpoints: Sequence[str]
    """This service's endpoints, whose log groups the container writes."""
    model_object: tuple[str, str] | None
    """(bucket, key) of the model in S3; None: inside the image."""
    async_paths: AsyncPaths | None
    topic_arns: Sequence[str]
    """The success and error topics (empty without a batch pool)."""
    model_key: Arn | None = None
    """The model bucket's customer key (SSE-KMS); None: S3-managed keys, no grant."""


def trust_policy() -> Document:
    """SageMaker (and only SageMaker) assumes the execution role."""
    return {
        "Version": VERSION,
        "Statement": [
            {
                "Sid": "SageMakerAssumesExecutionRole",
                "Effect": "Allow",
                "Principal": {"Service": SAGEMAKER_SERVICE},
                "Action": "sts:AssumeRole",
            }
        ],
    }


def _object_arn(partition: str, bucket: str, key: str) -> str:
    return f"arn:{partition}:s3:::{bucket}/{key}"


def execution_policy(grants: RoleGrants) -> Document:
    """The execution role's inline policy: see the module docstring for each statement."""
    p = grants.partition
    statements: list[Document] = [
        {
            "Sid": "PullTheRuntimeImage",
            "Effect": "Allow",
            "Action": list(IMAGE_PULL_ACTIONS),
            "Resource": grants.repository_arn,
        },
        {
            # GetAuthorizationToken has no resource type: `*` is the only form IAM accepts.
            "Sid": "LogInToTheRegistry",
            "Effect": "Allow",
            "Action": REGISTRY_LOGIN_ACTION,
            "Resource": "*",
        },
        {
            "Sid": "WriteEndpointLogs",
            "Effect": "Allow",
            "Action": list(LOG_ACTIONS),
            "Resource": [
                f"arn:{p}:logs:{grants.region}:{grants.account}:log-group:"
                f"{LOG_GROUP_PREFIX}{endpoint}:*"
                for endpoint in grants.endpoints
            ],
        },
    ]
    if grants.model_object is not None:
        bucket, key = grants.model_object
        statements.append(
            {
                "Sid": "ReadTheModel",
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": _object_arn(p, bucket, key),
            }
        )
        if grants.model_key is not None:
            statements.append(model_key_statement(grants.model_key, _object_arn(p, bucket, key)))
    paths = grants.async_paths
    if paths is not None:
        statements += [
            {
                "Sid": "ReadAsyncInputs",
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": _object_arn(p, paths.bucket, f"{paths.input}/*"),
            },
            {
                "Sid": "WriteAsyncOutputsAndFailures",
                "Effect": "Allow",
                "Action": "s3:PutObject",
                "Resource": [
                    _object_arn(p, paths.bucket, f"{paths.output}/*"),
                    _object_arn(p, paths.bucket, f"{paths.failure}/*"),
                ],
            },
        ]
    if grants.topic_arns:
        statements.append(
            {
                "Sid": "PublishAsyncOutcomes",
                "Effect": "Allow",
                "Action": "sns:Publish",
                "Resource": list(grants.topic_arns),
            }
        )
    return {"Version": VERSION, "Statement": statements}


__all__ = [
    "IMAGE_PULL_ACTIONS",
    "AsyncPaths",
    "RoleGrants",
    "execution_policy",
    "trust_policy",
]
