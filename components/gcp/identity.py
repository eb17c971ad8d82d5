"""Who may do what: the node service account, the batch worker, KEDA. Nothing for realtime.

Every grant is decided here as plain data (`Grant`: the resource it sits on, the role, the member,
an optional IAM condition) and then created as an IAM member binding *on that resource*, never on
the project, except for the two identities that are not inference identities and whose roles
only exist project-wide: the nodes (`roles/container.defaultNodeServiceAccount`: logs, metrics)
and the KEDA operator (`roles/monitoring.viewer`: the Pub/Sub backlog from Managed Prometheus).

The batch worker's Kubernetes service account is the member itself (Workload Identity Federation
for GKE, `principal://.../subject/ns/NAMESPACE/sa/NAME`), or, with `identity: service_account`, a
Google service account of its own that only that Kubernetes service account may impersonate. It
gets exactly what `inferstack work` does on GCP:

- `roles/pubsub.subscriber` on its subscription (pull, ack, modify deadlines);
- `roles/pubsub.viewer` on its subscription: the worker reads the dead-letter policy when it opens
  the queue (`GetSubscription`), which the subscriber role does not allow;
- `roles/pubsub.publisher` on its dead-letter topic (it dead-letters a failing message itself);
- `roles/storage.objectCreator` and `roles/storage.objectViewer` on the results bucket, both
  conditioned on the service's prefix: it creates each result once and reads it back to tell a
  redelivered message (already answered) from a new one.

A model in Cloud Storage (`model.uri: gs://BUCKET/OBJECT`) is read by the runtime's fetch step
with the pool's own identity: each pool that runs it (the worker, and the realtime pool, which
otherwise has no binding at all) gets `roles/storage.objectViewer` on the model's bucket,
conditioned on that one object (`resource.name == "projects/_/buckets/B/objects/O"`). IAM
conditions on a bucket need uniform bucket-level access on it (Cloud Storage, "IAM Conditions":
conditions are not available with fine-grained ACLs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal, TypeVar

from inferstack.components.gcp.options import GcpOptions
from inferstack.components.gcp.storage import ResultsLocation
from inferstack.contract.model_uris import parse_remote

if TYPE_CHECKING:
    import pulumi
    import pulumi_gcp as gcp

T = TypeVar("T")

On = Literal[
    "project",
    "subscription",
    "dead_letter_topic",
    "results_bucket",
    "model_bucket",
    "repository",
    "gsa",
]

NODE_ROLE: Final = "roles/container.defaultNodeServiceAccount"
REGISTRY_READER: Final = "roles/artifactregistry.reader"
KEDA_ROLE: Final = "roles/monitoring.viewer"
SUBSCRIBER: Final = "roles/pubsub.subscriber"
PUBSUB_VIEWER: Final = "roles/pubsub.viewer"
PUBLISHER: Final = "roles/pubsub.publisher"
OBJECT_CREATOR: Final = "roles/storage.objectCreator"
OBJECT_VIEWER: Final = "roles/storage.objectViewer"
WORKLOAD_IDENTITY_USER: Final = "roles/iam.workloadIdentityUser"
GKE_SA_ANNOTATION: Final = "iam.gke.io/gcp-service-account"


@dataclass(frozen=True)
class Condition:
    """An IAM condition (CEL) on a binding."""

    title: str
    expression: str


@dataclass(frozen=True)
class Grant:
    """One IAM member binding: on which resource, which role, to whom, and why."""

    on: On
    role: str
    member: str
    why: str
    condition: Condition | None = None


def workload_principal(options: GcpOptions, namespace: str, service_account: str) -> str:
    """The IAM principal of a Kubernetes service account (Workload Identity Federation for GKE)."""
    return (
        f"principal://iam.googleapis.com/projects/{options.project_number}/locations/global/"
        f"workloadIdentityPools/{options.workload_pool}/subject/ns/{namespace}/sa/{service_account}"
    )


def node_account_id(service: str) -> str:
    """Account ID of the nodes' Google service account (6-30 characters)."""
    return f"{service[:24]}-nodes"


def batch_account_id(service: str) -> str:
    """Account ID of the batch pool's Google service account (`identity: service_account`)."""
    return f"{service[:24]}-batch"


def account_email(account_id: str, options: GcpOptions) -> str:
    """The email of a user-managed service account in the project."""
    return f"{account_id}@{options.project}.iam.gserviceaccount.com"


def realtime_account_id(service: str) -> str:
    """Account ID of the realtime pool's Google service account (`identity: service_account`,
    made only when the pool reads a model in Cloud Storage)."""
    return f"{service[:24]}-rt"


def batch_member(options: GcpOptions, service: str, namespace: str, ksa: str) -> str:
    """The member the worker's grants name."""
    if options.identity == "service_account":
        return f"serviceAccount:{account_email(batch_account_id(service), options)}"
    return workload_principal(options, namespace, ksa)


def realtime_member(options: GcpOptions, service: str, namespace: str, ksa: str) -> str:
    """The member the realtime pool's model grant names."""
    if options.identity == "service_account":
        return f"serviceAccount:{account_email(realtime_account_id(service), options)}"
    return workload_principal(options, namespace, ksa)


def batch_service_account_annotations(options: GcpOptions, service: str) -> dict[str, str]:
    """Annotations of the worker's Kubernetes service account (only for a Google one)."""
    if options.identity != "service_account":
        return {}
    return {GKE_SA_ANNOTATION: account_email(batch_account_id(service), options)}


def _prefix_condition(where: ResultsLocation, verb: str) -> Condition:
    return Condition(
        title=f"{verb} under {where.object_prefix}",
        expression=(
            f'resource.name.startsWith("projects/_/buckets/{where.bucket}/objects/'
            f'{where.object_prefix}")'
        ),
    )


def worker_grants(member: str, where: ResultsLocation) -> list[Grant]:
    """What the batch worker may do: its queue, its dead letters, its results prefix."""
    return [
        Grant("subscription", SUBSCRIBER, member, "pull, ack and extend leases"),
        Grant("subscription", PUBSUB_VIEWER, member, "read the dead-letter policy at start"),
        Grant("dead_letter_topic", PUBLISHER, member, "dead-letter a failing message itself"),
        Grant(
            "results_bucket",
            OBJECT_CREATOR,
            member,
            "write each result once",
            _prefix_condition(where, "create"),
        ),
        Grant(
            "results_bucket",
            OBJECT_VIEWER,
            member,
            "read a result back to recognise a redelivered message",
            _prefix_condition(where, "read"),
        ),
    ]


def model_location(uri: str) -> tuple[str, str] | None:
    """(bucket, object) of a model in Cloud Storage; None for any other model URI."""
    try:
        remote = parse_remote(uri)
    except ValueError:
        return None
    if remote is None or remote.scheme != "gs":
        return None
    return remote.container, remote.path


def model_grants(member: str, uri: str) -> list[Grant]:
    """Read the model object at pod start, nothing else in its bucket (none: not in GCS)."""
    location = model_location(uri)
    if location is None:
        return []
    bucket, name = location
    return [
        Grant(
            "model_bucket",
            OBJECT_VIEWER,
            member,
            "fetch the model at pod start",
            Condition(
                title="read the model object",
                expression=f'resource.name == "projects/_/buckets/{bucket}/objects/{name}"',
            ),
        )
    ]


def impersonation_grant(options: GcpOptions, namespace: str, ksa: str) -> Grant:
    """With `identity: service_account`: only the worker's KSA may act as its Google account."""
    return Grant(
        "gsa",
        WORKLOAD_IDENTITY_USER,
        f"serviceAccount:{options.workload_pool}[{namespace}/{ksa}]",
        "the worker's Kubernetes service account acts as this account",
    )


def keda_grants(options: GcpOptions) -> list[Grant]:
    """KEDA's operator reads Managed Prometheus (project-wide): the subscription backlog, and
    the realtime demand when the pods are scraped by managed collection."""
    namespace, _, name = options.keda_service_account.partition("/")
    return [
        Grant(
            "project",
            KEDA_ROLE,
            workload_principal(options, namespace, name),
            "read the Pub/Sub backlog and the realtime demand from Managed Prometheus",
        )
    ]


def node_grants(node_email: str, with_registry: bool) -> list[Grant]:
    """The nodes: GKE's minimal node role, and pulling from this service's repository."""
    member = f"serviceAccount:{node_email}"
    grants = [Grant("project", NODE_ROLE, member, "write logs and metrics, as GKE requires")]
    if with_registry:
        grants.append(Grant("repository", REGISTRY_READER, member, "pull the runtime image"))
    return grants


@dataclass(frozen=True)
class GrantTargets:
    """The resources grants sit on, as far as this service has them (see `Grant.on`)."""

    subscription: gcp.pubsub.Subscription | None = None
    dead_letter_topic: gcp.pubsub.Topic | None = None
    results_bucket: pulumi.Input[str] | None = None
    """The results bucket's name: created here (an Output) or existing (a string)."""
    model_bucket: str | None = None
    """The bucket the model is read from (the user's, never created here)."""
    repository: gcp.artifactregistry.Repository | None = None
    gsa: gcp.serviceaccount.Account | None = None


def _on(target: T | None, grant: Grant) -> T:
    if target is None:
        raise ValueError(f"no {grant.on} to grant {grant.role} on")
    return target


def bind(
    name: str,
    grant: Grant,
    targets: GrantTargets,
    options: GcpOptions,
    opts: pulumi.ResourceOptions,
) -> pulumi.CustomResource:
    """The IAM member resource of one grant, on its resource (`targets`' field `grant.on`)."""
    import pulumi_gcp as gcp

    role, member = grant.role, grant.member
    if grant.on == "project":
        return gcp.projects.IAMMember(
            name, project=options.project, role=role, member=member, opts=opts
        )
    if grant.on == "subscription":
        subscription = _on(targets.subscription, grant).name
        return gcp.pubsub.SubscriptionIAMMember(
            name,
            project=options.project,
            subscription=subscription,
            role=role,
            member=member,
            opts=opts,
        )
    if grant.on == "dead_letter_topic":
        topic = _on(targets.dead_letter_topic, grant).name
        return gcp.pubsub.TopicIAMMember(
            name, project=options.project, topic=topic, role=role, member=member, opts=opts
        )
    if grant.on in ("results_bucket", "model_bucket"):
        condition = grant.condition
        bucket = targets.results_bucket if grant.on == "results_bucket" else targets.model_bucket
        if bucket is None:
            raise ValueError(f"no {grant.on.replace('_', ' ')} to grant {grant.role} on")
        return gcp.storage.BucketIAMMember(
            name,
            bucket=bucket,
            condition=(
                gcp.storage.BucketIAMMemberConditionArgs(
                    title=condition.title, expression=condition.expression
                )
                if condition
                else None
            ),
            role=role,
            member=member,
            opts=opts,
        )
    if grant.on == "repository":
        return gcp.artifactregistry.RepositoryIamMember(
            name,
            project=options.project,
            location=options.region,
            repository=_on(targets.repository, grant).name,
            role=role,
            member=member,
            opts=opts,
        )
    account = _on(targets.gsa, grant).name
    return gcp.serviceaccount.IAMMember(
        name, service_account_id=account, role=role, member=member, opts=opts
    )


__all__ = [
    "Condition",
    "Grant",
    "GrantTargets",
    "account_email",
    "batch_member",
    "bind",
    "impersonation_grant",
    "keda_grants",
    "model_grants",
    "model_location",
    "node_grants",
    "realtime_account_id",
    "realtime_member",
    "worker_grants",
    "workload_principal",
]
