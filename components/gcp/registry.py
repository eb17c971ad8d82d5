"""The Artifact Registry docker repository the runtime image is pushed to and pulled from.

Immutable tags (a tag names one image forever, so a rollout cannot change under a running
Deployment) and a cleanup policy that keeps the most recent versions and deletes untagged images
after a week, so the registry does not grow without bound. The nodes' service account may read
this one repository and nothing else in Artifact Registry. Deployments use it when the spec names
no image of its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from inferstack.components.gcp.options import GcpOptions
from inferstack.components.planning.spec import DEFAULT_IMAGE, InferenceServiceSpec
from inferstack.contract.images import parse_image

if TYPE_CHECKING:
    import pulumi
    import pulumi_gcp as gcp

UNTAGGED_AFTER_SECONDS: Final = 7 * 24 * 3600
READER_ROLE: Final = "roles/artifactregistry.reader"
IMAGE_NAME: Final = "runtime"


def repository_id(service: str) -> str:
    """The repository's ID: the service name."""
    return service


def image_in_registry(service: str, options: GcpOptions) -> str:
    """The runtime image's address in this service's repository, at the shipped version."""
    tag = parse_image(DEFAULT_IMAGE).tag
    host = f"{options.region}-docker.pkg.dev"
    return f"{host}/{options.project}/{repository_id(service)}/{IMAGE_NAME}:{tag}"


def deployment_image(spec: InferenceServiceSpec, options: GcpOptions) -> str | None:
    """The image the Deployments run: the spec's own when it names one, else the registry's."""
    if "image" in spec.model_fields_set or not options.create_registry:
        return None  # the Kubernetes layer uses spec.image
    return image_in_registry(spec.name, options)


def repository(
    name: str,
    service: str,
    options: GcpOptions,
    labels: dict[str, str],
    opts: pulumi.ResourceOptions,
) -> gcp.artifactregistry.Repository:
    """The `gcp.artifactregistry.Repository` for the runtime image."""
    import pulumi_gcp as gcp

    registry = gcp.artifactregistry
    return registry.Repository(
        f"{name}-registry",
        repository_id=repository_id(service),
        project=options.project,
        location=options.region,
        format="DOCKER",
        description=f"inferstack runtime image for {service}",
        labels=labels,
        docker_config=registry.RepositoryDockerConfigArgs(immutable_tags=True),
        cleanup_policy_dry_run=False,
        cleanup_policies=[
            registry.RepositoryCleanupPolicyArgs(
                id="keep-recent",
                action="KEEP",
                most_recent_versions=registry.RepositoryCleanupPolicyMostRecentVersionsArgs(
                    keep_count=options.keep_images
                ),
            ),
            registry.RepositoryCleanupPolicyArgs(
                id="delete-untagged",
                action="DELETE",
                condition=registry.RepositoryCleanupPolicyConditionArgs(
                    tag_state="UNTAGGED", older_than=f"{UNTAGGED_AFTER_SECONDS}s"
                ),
            ),
        ],
        opts=opts,
    )


__all__ = ["deployment_image", "image_in_registry", "repository", "repository_id"]
