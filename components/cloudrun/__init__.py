"""The Cloud Run target: the same plan on serverless GPUs (`inferstack:target: cloudrun`).

`CloudRunInferenceStack` (component), `CloudRunOptions` (`inferstack:cloudrun`) and the pure
scaling derivation (`scaling`); the strings Cloud Run interprets are in
`inferstack.contract.cloudrun`, which the policy pack reads too. Importing the package does not
import Pulumi; the component module does.
"""

from inferstack.components.cloudrun.options import (
    CONFIG_KEY,
    CloudRunOptions,
    parse_cloudrun_options,
)
from inferstack.components.cloudrun.scaling import (
    ServiceScaling,
    WorkerScaling,
    service_scaling,
    worker_scaling,
)

__all__ = [
    "CONFIG_KEY",
    "CloudRunOptions",
    "ServiceScaling",
    "WorkerScaling",
    "parse_cloudrun_options",
    "service_scaling",
    "worker_scaling",
]
