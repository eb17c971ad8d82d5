"""private-results-bucket: every S3 bucket of the stack blocks public access.

Why: inference results are the model's answers to users' inputs. A bucket without a public
access block is one ACL or bucket policy away from publishing all of them; S3's account-level
block may be off, and a bucket-level block is the one the stack itself guarantees.

Fix: add an `aws.s3.BucketPublicAccessBlock` for the bucket with `blockPublicAcls`,
`blockPublicPolicy`, `ignorePublicAcls` and `restrictPublicBuckets` all true (or list a bucket
meant to be public in `publicBuckets`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from inferstack.contract import resource_types
from inferstack.policies.resources import UNKNOWN, Finding, Resource, is_true
from inferstack.policies.rule import Rule, config_value

FLAGS: Final = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")


def check(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[Finding]:
    """Findings for buckets without a complete public access block."""
    allowed = {str(name) for name in config_value(config, RULE, "publicBuckets")}
    blocks: dict[str, Resource] = {}
    for resource in resources:
        if resource.type == resource_types.S3_PUBLIC_ACCESS_BLOCK:
            for urn in resource.property_dependencies.get("bucket", ()):
                blocks[urn] = resource
    findings = []
    for bucket in resources:
        if bucket.type not in resource_types.S3_BUCKETS or bucket.name in allowed:
            continue
        block = blocks.get(bucket.urn)
        if block is None:
            findings.append(
                Finding(
                    "S3 bucket has no public access block, so one ACL or policy can publish "
                    "every result in it; add an aws.s3.BucketPublicAccessBlock with "
                    f"{', '.join(FLAGS)} all true",
                    bucket.urn,
                )
            )
            continue
        off = [f for f in FLAGS if block.get(f) is not UNKNOWN and not is_true(block.get(f))]
        if off:
            findings.append(
                Finding(
                    f"S3 bucket's public access block leaves {', '.join(off)} off; set "
                    f"{', '.join(off)} to true",
                    bucket.urn,
                )
            )
    return findings


RULE: Final = Rule(
    name="private-results-bucket",
    description="S3 buckets must block public access with a bucket-level public access block.",
    doc=__doc__,
    severity="high",
    enforcement="mandatory",
    check_stack=check,
    config_schema={
        "publicBuckets": {
            "type": "array",
            "items": {"type": "string", "minLength": 1},
            "default": [],
            "description": "Pulumi names of buckets that are meant to be public",
        }
    },
)
