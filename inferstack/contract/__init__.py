"""The contract: every fact that the runtime, the components and the policies must agree on.

One definition per fact, in plain modules with no third-party imports, so that the runtime image
(no Pulumi), a team's Pulumi repo (no torch) and the policy pack (no components) can all import
it. The three packages import this and never each other for constants.

- `labels`: label and annotation keys on every object the components create.
- `pods`: what a pod and the runtime in it agree on (ports, paths, the GPU resource, pre-stop).
- `env`: environment variables the runtime processes read.
- `metrics`: Prometheus metric names the runtime exports and the KEDA triggers query.
- `queues`: queue URI schemes, with the one builder and the one parser.
- `clouds`: spot capacity labels and interruption notices, per cloud.
- `thresholds`: limits the spec enforces and the policy pack judges with the same default.
- `resource_types`: Pulumi type tokens of the resources the rules match.
- `images`: container image references (tag, digest), with the one parser.
- `sagemaker`, `cloudrun`: the strings SageMaker and Cloud Run (and their scalers and IAM) read.
"""
