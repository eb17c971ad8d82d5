"""sagemaker-async-error-destination: an async endpoint says where failed requests go.

Why: an asynchronous invocation that fails leaves its error only where the endpoint
configuration says: the `S3FailurePath` and the `ErrorTopic`. Without them a failed request is
found only by polling its output location forever, and nobody is told; they are the SageMaker
form of a dead-letter queue, where failures are found and replayed ("Asynchronous inference:
check prediction results", https://docs.aws.amazon.com/sagemaker/latest/dg/async-inference-check-predictions.html).

Fix: set `asyncInferenceConfig.outputConfig.s3FailurePath` and
`asyncInferenceConfig.outputConfig.notificationConfig.errorTopic` (an SNS topic someone reads).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from inferstack.policies import sagemaker
from inferstack.policies.resources import UNKNOWN, Finding, Resource, mapping_of
from inferstack.policies.rule import Rule


def check(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[Finding]:
    """Findings for async endpoint configurations without a failure path or error topic."""
    findings = []
    for resource in resources:
        if resource.type != sagemaker.ENDPOINT_CONFIG or not sagemaker.is_async(resource):
            continue
        output = mapping_of(resource.get("asyncInferenceConfig.outputConfig"))
        missing = []
        if not output.get("s3FailurePath"):
            missing.append("outputConfig.s3FailurePath")
        topic = mapping_of(output.get("notificationConfig")).get("errorTopic")
        if not topic and topic is not UNKNOWN:
            missing.append("outputConfig.notificationConfig.errorTopic")
        if missing:
            findings.append(
                Finding(
                    f"asynchronous endpoint without {' and '.join(missing)}: failed requests "
                    "land nowhere a user looks; set both (the SageMaker dead letter)",
                    resource.urn,
                )
            )
    return findings


RULE: Final = Rule(
    name="sagemaker-async-error-destination",
    description="An asynchronous SageMaker endpoint must name a failure path and an error topic.",
    doc=__doc__,
    severity="medium",
    enforcement="mandatory",
    check_stack=check,
)
