"""Pulumi type tokens of the resources the components create and the policy rules match.

As pulumi-kubernetes registers them: custom resources built with
`apiextensions.CustomResource(api_version=..., kind=...)` register as
`kubernetes:<group>/<version>:<Kind>`, the same shape as the typed resources.
"""

from typing import Final

STACK: Final = "pulumi:pulumi:Stack"

# Our components.
KUBERNETES_SERVICE: Final = "inferstack:kubernetes:InferenceService"

# Kubernetes workloads and services.
DEPLOYMENT: Final = "kubernetes:apps/v1:Deployment"
STATEFUL_SET: Final = "kubernetes:apps/v1:StatefulSet"
DAEMON_SET: Final = "kubernetes:apps/v1:DaemonSet"
REPLICA_SET: Final = "kubernetes:apps/v1:ReplicaSet"
JOB: Final = "kubernetes:batch/v1:Job"
CRON_JOB: Final = "kubernetes:batch/v1:CronJob"
POD: Final = "kubernetes:core/v1:Pod"
SERVICE: Final = "kubernetes:core/v1:Service"
WORKLOAD_TYPES: Final = frozenset(
    {DEPLOYMENT, STATEFUL_SET, DAEMON_SET, REPLICA_SET, JOB, CRON_JOB, POD}
)

# Autoscalers.
SCALED_OBJECT: Final = "kubernetes:keda.sh/v1alpha1:ScaledObject"
SCALED_JOB: Final = "kubernetes:keda.sh/v1alpha1:ScaledJob"
HTTP_SCALED_OBJECT: Final = "kubernetes:http.keda.sh/v1alpha1:HTTPScaledObject"
INTERCEPTOR_ROUTE: Final = "kubernetes:http.keda.sh/v1beta1:InterceptorRoute"
HPA_TYPES: Final = frozenset(
    {
        "kubernetes:autoscaling/v1:HorizontalPodAutoscaler",
        "kubernetes:autoscaling/v2:HorizontalPodAutoscaler",
        "kubernetes:autoscaling/v2beta2:HorizontalPodAutoscaler",
    }
)
