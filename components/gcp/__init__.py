"""The GCP target: GKE GPU node pools, a ComputeClass, Pub/Sub, GCS, Artifact Registry and IAM.

One module per responsibility; `component` assembles them and hands the result to the Kubernetes
layer. Everything but `component` and the resource builders is plain Python without Pulumi.
"""
