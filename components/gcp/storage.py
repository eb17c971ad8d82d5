"""The results bucket: where the batch worker writes one object per message (`gs://BUCKET/PREFIX`).

Uniform bucket-level access (IAM only, no per-object ACLs that could open one result to the
world), public access prevention enforced (no binding to allUsers can ever take effect), and a
lifecycle rule that deletes results under the service's prefix after the configured days, so a
results store does not become an unbounded bill. With `create_results_bucket: false` the bucket
is someone else's: only the worker's prefix-scoped bindings are created on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from inferstack.components.gcp.options import GcpOptions

if TYPE_CHECKING:
    import pulumi
    import pulumi_gcp as gcp

PUBLIC_ACCESS_PREVENTION: Final = "enforced"
STORAGE_CLASS: Final = "STANDARD"


@dataclass(frozen=True)
class ResultsLocation:
    """Where results go, and whether the bucket is created here."""

    bucket: str
    prefix: str
    create: bool
    expiry_days: int

    @property
    def uri(self) -> str:
        """The worker's `--results` URI."""
        return f"gs://{self.bucket}/{self.prefix}"

    @property
    def object_prefix(self) -> str:
        """The prefix every result object name starts with (the worker adds `/`)."""
        return f"{self.prefix}/"


def results_location(service: str, options: GcpOptions) -> ResultsLocation:
    """The bucket and prefix of `service`'s results under `options`."""
    bucket = options.results_bucket or f"{options.project}-{service}-results"
    prefix = (options.results_prefix or service).strip("/")
    return ResultsLocation(
        bucket=bucket,
        prefix=prefix,
        create=options.create_results_bucket,
        expiry_days=options.results_expiry_days,
    )


def results_bucket(
    name: str,
    where: ResultsLocation,
    options: GcpOptions,
    labels: dict[str, str],
    opts: pulumi.ResourceOptions,
) -> gcp.storage.Bucket:
    """The `gcp.storage.Bucket` for results (only when `where.create`)."""
    import pulumi_gcp as gcp

    storage = gcp.storage
    return storage.Bucket(
        f"{name}-results",
        name=where.bucket,
        project=options.project,
        location=options.region.upper(),
        storage_class=STORAGE_CLASS,
        uniform_bucket_level_access=True,
        public_access_prevention=PUBLIC_ACCESS_PREVENTION,
        force_destroy=False,
        labels=labels,
        lifecycle_rules=[
            storage.BucketLifecycleRuleArgs(
                action=storage.BucketLifecycleRuleActionArgs(type="Delete"),
                condition=storage.BucketLifecycleRuleConditionArgs(
                    age=where.expiry_days, matches_prefixes=[where.object_prefix]
                ),
            )
        ],
        opts=opts,
    )


__all__ = ["ResultsLocation", "results_bucket", "results_location"]
