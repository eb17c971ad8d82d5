"""Label and annotation keys: the components write them, the policies read them."""

from typing import Final

PREFIX: Final = "inferstack.io"

# Labels, on every workload, pod template, Service and ScaledObject the components create.
TIER_LABEL: Final = f"{PREFIX}/tier"
"""`realtime` (synchronous, latency-bound) or `batch` (asynchronous, interruption-tolerant)."""
TIER_REALTIME: Final = "realtime"
TIER_BATCH: Final = "batch"
SERVICE_LABEL: Final = f"{PREFIX}/service"
"""The inference service's name (the spec's `name`)."""

# Annotations carrying declared values that a policy cannot derive from the resource itself.
LATENCY_BUDGET_MS_ANNOTATION: Final = f"{PREFIX}/latency-budget-ms"
"""The declared p99 latency budget of the synchronous path, in milliseconds (a decimal string)."""
MAX_QUEUE_DELAY_MS_ANNOTATION: Final = f"{PREFIX}/max-queue-delay-ms"
"""The batcher's max queue delay, in milliseconds (a decimal string)."""
COLD_START_SECONDS_ANNOTATION: Final = f"{PREFIX}/cold-start-seconds"
"""The measured cold start (node + image pull + model load), in seconds (a decimal string)."""
MAX_JOB_SECONDS_ANNOTATION: Final = f"{PREFIX}/max-job-seconds"
"""The longest a queue worker may spend on one message, in seconds. Also read as a queue tag."""

# A label other controllers read on GPU nodes.
GPU_PRESENT_LABEL: Final = "nvidia.com/gpu.present"
"""Set to "true" on a GPU node, it satisfies the NVIDIA device plugin chart's default node
affinity without Node Feature Discovery (NVIDIA/k8s-device-plugin
deployments/helm/nvidia-device-plugin/values.yaml: "We allow a GPU deployment to be forced by
setting the following label to "true"")."""
GPU_PRESENT_VALUE: Final = "true"
