"""The SageMaker target: the same plan on managed endpoints (`inferstack:target: sagemaker`).

`SageMakerInferenceStack` (component), `SageMakerOptions` (`inferstack:sagemaker`), the pure
scaling derivation (`scaling`) and the execution role's documents (`iam`). Importing the
package does not import Pulumi; the component module does.
"""

from inferstack.components.sagemaker.options import (
    CONFIG_KEY,
    SageMakerOptions,
    parse_sagemaker_options,
)
from inferstack.components.sagemaker.scaling import (
    AsyncScaling,
    RealtimeScaling,
    async_scaling,
    realtime_scaling,
)

__all__ = [
    "CONFIG_KEY",
    "AsyncScaling",
    "RealtimeScaling",
    "SageMakerOptions",
    "async_scaling",
    "parse_sagemaker_options",
    "realtime_scaling",
]
