"""The batch pool's job queue, its dead-letter queue and the results bucket.

- The job queue: encrypted, a visibility timeout of at least the longest job plus a margin (so
  a message is not handed to a second worker while the first still runs it), a retention, a
  redrive policy to the DLQ after `max_receive_count` deliveries, and a TLS-only queue policy.
  Its tags carry the max job time, which the policy pack reads.
- The DLQ: encrypted, kept as long as SQS allows, a redrive-allow policy that accepts messages
  only from the job queue, TLS only.
- Results: a bucket (or an existing one from the options) with every public access blocked,
  owner-enforced object ownership (no ACLs), default encryption, a TLS-only bucket policy, and a
  lifecycle rule that expires results under the prefix.

Names and ARNs are built from the names given here, the region and the account, so the policy
documents are known (and judged by the pack) already in preview.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

import pulumi
import pulumi_aws as aws

from inferstack.components.aws import iam
from inferstack.components.aws.options import DLQ_RETENTION_SECONDS, AwsOptions
from inferstack.components.aws.tags import resource_tags
from inferstack.components.planning.plan import ServicePlan
from inferstack.components.planning.pools import BatchPool, queue_name
from inferstack.components.planning.sizing import Derived
from inferstack.contract.labels import MAX_JOB_SECONDS_ANNOTATION

VISIBILITY_MARGIN_SECONDS: Final = 60
"""Beyond the longest job: the worker's final result write and acknowledgement."""
SQS_MAX_VISIBILITY_SECONDS: Final = 43_200


@dataclass(frozen=True)
class JobQueue:
    """What the rest of the stack needs of the queues and the bucket."""

    queue: aws.sqs.Queue
    dead_letter: aws.sqs.Queue
    queue_url: pulumi.Output[str]
    queue_arn: pulumi.Output[str]
    dead_letter_arn: pulumi.Output[str]
    bucket: pulumi.Input[str]
    """The bucket's name: a string, or an Output while the account ID is being read."""
    prefix: str
    bucket_resources: list[pulumi.Resource]

    @property
    def results_uri(self) -> pulumi.Input[str]:
        """The worker's `--results` URI (`s3://BUCKET/PREFIX`), an Output with the bucket's."""
        suffix = f"/{self.prefix}" if self.prefix else ""
        if isinstance(self.bucket, str):
            return f"s3://{self.bucket}{suffix}"
        return pulumi.Output.concat("s3://", self.bucket, suffix)


def visibility_timeout(pool: BatchPool) -> Derived[int]:
    """The job queue's visibility timeout, with its reason."""
    longest = pool.spec.max_job_seconds
    value = min(SQS_MAX_VISIBILITY_SECONDS, longest + VISIBILITY_MARGIN_SECONDS)
    return Derived(
        value,
        f"max_job_seconds {longest} + {VISIBILITY_MARGIN_SECONDS} s for the result write and "
        f"acknowledgement (SQS allows at most {SQS_MAX_VISIBILITY_SECONDS} s)",
    )


def dead_letter_name(plan: ServicePlan, pool: BatchPool) -> str:
    """The DLQ's name."""
    return f"{queue_name(plan.spec, pool.spec.queue)}-dlq"


def bucket_name(plan: ServicePlan, options: AwsOptions, account_id: str) -> str:
    """The results bucket: the options' bucket, else one named after service, account, region."""
    if options.results_bucket:
        return options.results_bucket
    return f"{plan.spec.name}-results-{account_id}-{options.region}"


def queue_arn(name: str, region: str, account_id: str, partition: str = "aws") -> str:
    """The ARN SQS gives a queue of that name."""
    return f"arn:{partition}:sqs:{region}:{account_id}:{name}"


def _encryption(options: AwsOptions) -> dict[str, Any]:
    if options.kms_key_arn:
        return {"kms_master_key_id": options.kms_key_arn, "kms_data_key_reuse_period_seconds": 300}
    return {"sqs_managed_sse_enabled": True}


def create_job_queue(
    name: str,
    plan: ServicePlan,
    pool: BatchPool,
    options: AwsOptions,
    account_id: pulumi.Output[str],
    opts: pulumi.ResourceOptions,
) -> JobQueue:
    """Create the job queue, its DLQ and their policies, and the results bucket (or bind one)."""
    region = options.region
    dlq_arn = account_id.apply(lambda a: queue_arn(dead_letter_name(plan, pool), region, a))
    jobs_arn = account_id.apply(
        lambda a: queue_arn(queue_name(plan.spec, pool.spec.queue), region, a)
    )
    dead_letter = aws.sqs.Queue(
        f"{name}-dlq",
        name=dead_letter_name(plan, pool),
        message_retention_seconds=DLQ_RETENTION_SECONDS,
        tags=resource_tags(plan),
        **_encryption(options),
        opts=opts,
    )
    visibility = visibility_timeout(pool)
    queue = aws.sqs.Queue(
        f"{name}-jobs",
        name=queue_name(plan.spec, pool.spec.queue),
        visibility_timeout_seconds=visibility.value,
        message_retention_seconds=options.message_retention_seconds,
        receive_wait_time_seconds=20,
        redrive_policy=dlq_arn.apply(
            lambda arn: json.dumps(
                {"deadLetterTargetArn": arn, "maxReceiveCount": options.max_receive_count}
            )
        ),
        tags=resource_tags(plan, **{MAX_JOB_SECONDS_ANNOTATION: str(pool.spec.max_job_seconds)}),
        **_encryption(options),
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[dead_letter])),
    )
    on_dlq = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(parent=dead_letter))
    aws.sqs.RedriveAllowPolicy(
        f"{name}-dlq-redrive-allow",
        queue_url=dead_letter.url,
        redrive_allow_policy=jobs_arn.apply(
            lambda arn: json.dumps({"redrivePermission": "byQueue", "sourceQueueArns": [arn]})
        ),
        opts=pulumi.ResourceOptions.merge(on_dlq, pulumi.ResourceOptions(depends_on=[queue])),
    )
    aws.sqs.QueuePolicy(
        f"{name}-dlq-policy",
        queue_url=dead_letter.url,
        policy=dlq_arn.apply(lambda arn: json.dumps(iam.job_queue_policy(arn))),
        opts=on_dlq,
    )
    aws.sqs.QueuePolicy(
        f"{name}-jobs-policy",
        queue_url=queue.url,
        policy=jobs_arn.apply(lambda arn: json.dumps(iam.job_queue_policy(arn))),
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(parent=queue)),
    )
    bucket, bucket_resources = _results_bucket(name, plan, options, account_id, opts)
    return JobQueue(
        queue=queue,
        dead_letter=dead_letter,
        queue_url=queue.url,
        queue_arn=jobs_arn,
        dead_letter_arn=dlq_arn,
        bucket=bucket,
        prefix=options.results_prefix.strip("/"),
        bucket_resources=bucket_resources,
    )


def _results_bucket(
    name: str,
    plan: ServicePlan,
    options: AwsOptions,
    account_id: pulumi.Output[str],
    opts: pulumi.ResourceOptions,
) -> tuple[pulumi.Input[str], list[pulumi.Resource]]:
    """The results bucket and its guards; an existing bucket from the options is only bound."""
    if options.results_bucket:
        return options.results_bucket, []
    # A bucket name must be known to the worker's argument list: the account ID is the only
    # unknown in it, so the name is an Output only until the caller identity answers.
    bucket_id = account_id.apply(lambda a: bucket_name(plan, options, a))
    bucket = aws.s3.Bucket(
        f"{name}-results",
        bucket=bucket_id,
        force_destroy=False,
        tags=resource_tags(plan),
        opts=opts,
    )
    on_bucket = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(parent=bucket))
    block = aws.s3.BucketPublicAccessBlock(
        f"{name}-results-public-access",
        bucket=bucket.id,
        block_public_acls=True,
        block_public_policy=True,
        ignore_public_acls=True,
        restrict_public_buckets=True,
        opts=on_bucket,
    )
    ownership = aws.s3.BucketOwnershipControls(
        f"{name}-results-ownership",
        bucket=bucket.id,
        rule={"object_ownership": "BucketOwnerEnforced"},
        opts=on_bucket,
    )
    by_default = (
        aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs
    )
    default_encryption = (
        by_default(sse_algorithm="aws:kms", kms_master_key_id=options.kms_key_arn)
        if options.kms_key_arn
        else by_default(sse_algorithm="AES256")
    )
    encryption = aws.s3.BucketServerSideEncryptionConfiguration(
        f"{name}-results-encryption",
        bucket=bucket.id,
        rules=[
            aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                apply_server_side_encryption_by_default=default_encryption,
                bucket_key_enabled=bool(options.kms_key_arn),
            )
        ],
        opts=on_bucket,
    )
    prefix = options.results_prefix.strip("/")
    lifecycle = aws.s3.BucketLifecycleConfiguration(
        f"{name}-results-expiry",
        bucket=bucket.id,
        rules=[
            {
                "id": "expire-results",
                "status": "Enabled",
                "filter": {"prefix": f"{prefix}/" if prefix else ""},
                "expiration": {"days": options.results_expiry_days},
                "abort_incomplete_multipart_upload": {"days_after_initiation": 1},
            }
        ],
        opts=on_bucket,
    )
    policy = aws.s3.BucketPolicy(
        f"{name}-results-policy",
        bucket=bucket.id,
        policy=bucket_id.apply(lambda b: json.dumps(iam.bucket_policy(b))),
        # The public access block first: a policy put before it is judged as a public policy.
        opts=pulumi.ResourceOptions.merge(on_bucket, pulumi.ResourceOptions(depends_on=[block])),
    )
    return bucket_id, [bucket, block, ownership, encryption, lifecycle, policy]


__all__ = [
    "JobQueue",
    "create_job_queue",
    "dead_letter_name",
    "queue_arn",
    "visibility_timeout",
]
