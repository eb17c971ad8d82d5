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

# The GCP target.
GCP_STACK: Final = "inferstack:gcp:InferenceStack"
GKE_NODE_POOL: Final = "gcp:container/nodePool:NodePool"
GKE_CLUSTER: Final = "gcp:container/cluster:Cluster"
COMPUTE_CLASS: Final = "kubernetes:cloud.google.com/v1:ComputeClass"
PUBSUB_TOPIC: Final = "gcp:pubsub/topic:Topic"
PUBSUB_SUBSCRIPTION: Final = "gcp:pubsub/subscription:Subscription"
PUBSUB_TOPIC_IAM_MEMBER: Final = "gcp:pubsub/topicIAMMember:TopicIAMMember"
PUBSUB_TOPIC_IAM_BINDING: Final = "gcp:pubsub/topicIAMBinding:TopicIAMBinding"
PUBSUB_TOPIC_IAM_POLICY: Final = "gcp:pubsub/topicIAMPolicy:TopicIAMPolicy"
PUBSUB_SUBSCRIPTION_IAM_MEMBER: Final = "gcp:pubsub/subscriptionIAMMember:SubscriptionIAMMember"
PUBSUB_SUBSCRIPTION_IAM_BINDING: Final = "gcp:pubsub/subscriptionIAMBinding:SubscriptionIAMBinding"
PUBSUB_SUBSCRIPTION_IAM_POLICY: Final = "gcp:pubsub/subscriptionIAMPolicy:SubscriptionIAMPolicy"
STORAGE_BUCKET: Final = "gcp:storage/bucket:Bucket"
STORAGE_BUCKET_IAM_MEMBER: Final = "gcp:storage/bucketIAMMember:BucketIAMMember"
ARTIFACT_REPOSITORY: Final = "gcp:artifactregistry/repository:Repository"
PROJECT_IAM_MEMBER: Final = "gcp:projects/iAMMember:IAMMember"
