"""bucket-public-access-prevention: a GCS bucket enforces public access prevention.

Why: inference inputs and results are customer data. A bucket that only inherits the
organisation's setting can be opened to the whole internet by a single `allUsers` binding or
object ACL, in this stack or any later change; `publicAccessPrevention: enforced` makes every
such grant ineffective.

Fix: set `publicAccessPrevention="enforced"` on the `gcp.storage.Bucket` (and keep
`uniformBucketLevelAccess=True`, so no object ACL bypasses IAM).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from inferstack.contract import resource_types
from inferstack.policies.resources import UNKNOWN, Resource
from inferstack.policies.rule import Rule

ENFORCED: Final = "enforced"


def check(resource: Resource, config: Mapping[str, Any]) -> list[str]:
    """A message for a bucket whose public access prevention is not enforced."""
    if resource.type != resource_types.STORAGE_BUCKET:
        return []
    value = resource.get("publicAccessPrevention")
    if value is UNKNOWN or (isinstance(value, str) and value.lower() == ENFORCED):
        return []
    shown = "unset (inherited)" if value in (None, "") else repr(value)
    return [
        f"GCS bucket publicAccessPrevention is {shown}, so an allUsers binding or ACL could "
        'publish its objects; set publicAccessPrevention to "enforced"'
    ]


RULE: Final = Rule(
    name="bucket-public-access-prevention",
    description="GCS buckets must enforce public access prevention.",
    doc=__doc__,
    severity="high",
    enforcement="mandatory",
    check_resource=check,
)
