"""The names of a service's SageMaker endpoints, component and topics, and the ARNs they make.

Named explicitly rather than auto-named, so the scaling resource ids, the alarm dimensions and
the execution role's documents are plain strings known before anything exists (what a preview
shows is what `pulumi up` writes). SageMaker names match `[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}`
(CreateEndpoint, CreateInferenceComponent); SNS topic names allow 256 of `[A-Za-z0-9_-]`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

MAX_SAGEMAKER_NAME: Final = 63
_SAGEMAKER_NAME: Final = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")


@dataclass(frozen=True)
class ServiceNames:
    """Every name a SageMaker stack of one service gives."""

    realtime_endpoint: str
    inference_component: str
    async_endpoint: str
    success_topic: str
    error_topic: str

    @classmethod
    def of(cls, service: str) -> ServiceNames:
        """The names of `service`'s resources."""
        return cls(
            realtime_endpoint=f"{service}-realtime",
            inference_component=f"{service}-realtime-model",
            async_endpoint=f"{service}-async",
            success_topic=f"{service}-async-success",
            error_topic=f"{service}-async-error",
        )

    def problems(self) -> list[str]:
        """Names SageMaker would refuse, each with why."""
        return [
            f"{name!r} is not a SageMaker name (at most {MAX_SAGEMAKER_NAME} letters, digits "
            "and single hyphens)"
            for name in (self.realtime_endpoint, self.inference_component, self.async_endpoint)
            if not _SAGEMAKER_NAME.match(name)
        ]


def partition_of(region: str) -> str:
    """The ARN partition of `region`."""
    if region.startswith("cn-"):
        return "aws-cn"
    return "aws-us-gov" if region.startswith("us-gov-") else "aws"


def topic_arn(region: str, account: str, name: str) -> str:
    """The ARN of the SNS topic `name`."""
    return f"arn:{partition_of(region)}:sns:{region}:{account}:{name}"


__all__ = ["ServiceNames", "partition_of", "topic_arn"]
