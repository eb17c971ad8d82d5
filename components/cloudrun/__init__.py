"""The Cloud Run target: the same plan on serverless GPUs (`inferstack:target: cloudrun`).

`CloudRunInferenceStack` (component), `CloudRunOptions` (`inferstack:cloudrun`), the pure
scaling derivation (`scaling`) and the strings Cloud Run interprets (`names`). Importing the
package does not import Pulumi; the component module does.
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
