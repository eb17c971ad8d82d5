"""The ECR repository for the runtime image: immutable tags, scan on push, encryption, lifecycle.

Immutable tags make a Deployment's image reference mean one image forever (a re-pushed `0.1.0`
cannot change what a running pool pulls on its next scale-up); scan on push reports known CVEs
before a node pulls the image; the lifecycle policy keeps the repository from growing without
bound (untagged layers go after a week, and only the newest tagged images are kept).
"""

from __future__ import annotations

import json
from typing import Any, Final

import pulumi
import pulumi_aws as aws

from inferstack.components.aws.options import AwsOptions
from inferstack.components.aws.tags import resource_tags
from inferstack.components.planning.plan import ServicePlan

KEEP_TAGGED_IMAGES: Final = 30
UNTAGGED_EXPIRY_DAYS: Final = 7


def repository_name(plan: ServicePlan) -> str:
    """The repository's name."""
    return f"inferstack/{plan.spec.name}-runtime"


def lifecycle_policy() -> dict[str, Any]:
    """Untagged images go after a week; of the tagged ones, the newest are kept."""
    return {
        "rules": [
            {
                "rulePriority": 1,
                "description": f"expire untagged images after {UNTAGGED_EXPIRY_DAYS} days",
                "selection": {
                    "tagStatus": "untagged",
                    "countType": "sinceImagePushed",
                    "countUnit": "days",
                    "countNumber": UNTAGGED_EXPIRY_DAYS,
                },
                "action": {"type": "expire"},
            },
            {
                "rulePriority": 2,
                "description": f"keep the newest {KEEP_TAGGED_IMAGES} tagged images",
                "selection": {
                    "tagStatus": "any",
                    "countType": "imageCountMoreThan",
                    "countNumber": KEEP_TAGGED_IMAGES,
                },
                "action": {"type": "expire"},
            },
        ]
    }


def create_repository(
    name: str, plan: ServicePlan, options: AwsOptions, opts: pulumi.ResourceOptions
) -> aws.ecr.Repository:
    """Create the repository and its lifecycle policy."""
    encryption = (
        aws.ecr.RepositoryEncryptionConfigurationArgs(
            encryption_type="KMS", kms_key=options.kms_key_arn
        )
        if options.kms_key_arn
        else aws.ecr.RepositoryEncryptionConfigurationArgs(encryption_type="AES256")
    )
    repository = aws.ecr.Repository(
        f"{name}-runtime-image",
        name=repository_name(plan),
        image_tag_mutability="IMMUTABLE",
        image_scanning_configuration=aws.ecr.RepositoryImageScanningConfigurationArgs(
            scan_on_push=True
        ),
        encryption_configurations=[encryption],
        force_delete=False,
        tags=resource_tags(plan),
        opts=opts,
    )
    aws.ecr.LifecyclePolicy(
        f"{name}-runtime-image-lifecycle",
        repository=repository.name,
        policy=json.dumps(lifecycle_policy()),
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(parent=repository)),
    )
    return repository


__all__ = ["create_repository", "lifecycle_policy", "repository_name"]
