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

# The AWS target's component, and the raw AWS and Karpenter types the rules match.
AWS_STACK: Final = "inferstack:aws:InferenceStack"
AWS_KARPENTER: Final = "inferstack:aws:Karpenter"
"""The cluster's one Karpenter (controller, interruption queue, GPU node role)."""
KARPENTER_NODE_POOL: Final = "kubernetes:karpenter.sh/v1:NodePool"
KARPENTER_NODE_POOLS: Final = frozenset(
    {KARPENTER_NODE_POOL, "kubernetes:karpenter.sh/v1beta1:NodePool"}
)
EC2_NODE_CLASS: Final = "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"
EKS_NODE_GROUP: Final = "aws:eks/nodeGroup:NodeGroup"
SQS_QUEUE: Final = "aws:sqs/queue:Queue"
SQS_QUEUE_POLICY: Final = "aws:sqs/queuePolicy:QueuePolicy"
EVENT_RULE: Final = "aws:cloudwatch/eventRule:EventRule"
EVENT_TARGET: Final = "aws:cloudwatch/eventTarget:EventTarget"
IAM_ROLE: Final = "aws:iam/role:Role"
IAM_ROLE_POLICY: Final = "aws:iam/rolePolicy:RolePolicy"
IAM_POLICY: Final = "aws:iam/policy:Policy"
S3_BUCKETS: Final = frozenset({"aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2"})
S3_PUBLIC_ACCESS_BLOCK: Final = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
HELM_RELEASE: Final = "kubernetes:helm.sh/v3:Release"

# The SageMaker target's component, and the raw SageMaker, Application Auto Scaling and
# CloudWatch types the rules match (the inference component exists only in aws-native).
SAGEMAKER_STACK: Final = "inferstack:sagemaker:InferenceStack"
SAGEMAKER_MODEL: Final = "aws:sagemaker/model:Model"
SAGEMAKER_ENDPOINT_CONFIG: Final = "aws:sagemaker/endpointConfiguration:EndpointConfiguration"
SAGEMAKER_ENDPOINT: Final = "aws:sagemaker/endpoint:Endpoint"
SAGEMAKER_INFERENCE_COMPONENT: Final = "aws-native:sagemaker:InferenceComponent"
SCALABLE_TARGET: Final = "aws:appautoscaling/target:Target"
SCALING_POLICY: Final = "aws:appautoscaling/policy:Policy"
SCHEDULED_ACTION: Final = "aws:appautoscaling/scheduledAction:ScheduledAction"
METRIC_ALARM: Final = "aws:cloudwatch/metricAlarm:MetricAlarm"
SNS_TOPIC: Final = "aws:sns/topic:Topic"
