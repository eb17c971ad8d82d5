"""GcpInferenceStack rendered under the Pulumi SDK's mock monitor, resource by resource.

One capture of a fixture program builds several stacks (one per scenario) in a fresh interpreter,
through pulumi-gcp's typed arguments, exactly as `pulumi preview` would register them. The tests
read the wire inputs back: GCP resources field by field, Kubernetes and KEDA objects strictly
against their schemas, the ComputeClass against GKE's CRD reference (asserted directly: there is
no machine-readable schema for it here), every IAM binding by its exact role and member, and the
pods against nodes labelled and tainted the way GKE labels and taints these three pools.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from inferstack.components.gcp import node_pools as gke_pools
from inferstack.components.gcp.options import parse_gcp_options
from inferstack.components.planning.plan import plan_service
from inferstack.components.planning.spec import parse_spec
from inferstack.contract import resource_types
from inferstack.contract.clouds import INTERRUPTION_NOTICE_SECONDS
from inferstack.contract.pods import WORKER_METRICS_PORT
from inferstack.contract.queues import parse_queue_uri
from inferstack.offline.capture import Capture, CapturedResource
from tests.components import schemas
from tests.components.factories import PROFILE, make_profile, spec_data
from tests.components.netpol import Peer, allows
from tests.components.scenarios import capture_scenarios
from tests.components.scheduling import NODES, Node, preference_score, schedulable

NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
PROJECT = "acme-inference"
NUMBER = "123456789012"
POOL = f"{PROJECT}.svc.id.goog"
AGENT = f"serviceAccount:service-{NUMBER}@gcp-sa-pubsub.iam.gserviceaccount.com"
GCP = {
    "project": PROJECT,
    "project_number": NUMBER,
    "region": "us-central1",
    "cluster": "inference",
    "node_locations": ["us-central1-a", "us-central1-c"],
}
PUBSUB_BATCH = {
    "gpu": {"type": "nvidia-l4"},
    "queue": {"kind": "pubsub", "name": "embedder-jobs"},
    "scaling": {"max_replicas": 10},
    "max_job_seconds": 300,
}


def _scenario(name: str, gcp: dict[str, Any], kubernetes: dict[str, Any], **changes: Any) -> Any:
    return {
        "spec": spec_data(name=name, batch=dict(PUBSUB_BATCH), **changes),
        "gcp": gcp,
        "kubernetes": kubernetes,
        "profile": PROFILE,
    }


SCENARIOS = [
    # Both pools; the batch pool on Spot with on-demand fallback; principal bindings; a new
    # bucket and registry.
    _scenario("embedder", GCP, {"namespace": "inference"}),
    # Batch only, spot required; a Google service account per pool; an existing bucket under a
    # prefix; the spec's own image, no registry.
    _scenario(
        "ranker",
        GCP
        | {
            "identity": "service_account",
            "create_results_bucket": False,
            "results_bucket": "shared-results",
            "results_prefix": "teams/ranker",
            "create_registry": False,
        },
        {"namespace": "ranking"},
        realtime=None,
        image="us-docker.pkg.dev/acme/runtime/inferstack:7",
        batch__queue={"kind": "pubsub"},
        batch__capacity={"spot": True, "fallback": "none"},
    ),
    # Batch pool kept off spot: one on-demand pool.
    _scenario("steady", GCP, {}, batch__capacity={"spot": False, "fallback": "on_demand"}),
    # Bad options: every problem at once, before any resource.
    _scenario(
        "badopts",
        {
            **GCP,
            "project_number": "not-a-number",
            "region": "mars",
            "node_locations": ["us-central1-a", "moon"],
        },
        {},
    ),
    # An SQS queue on GCP: the component refuses it before any child exists.
    _scenario("sqsjobs", GCP, {}, batch__queue={"kind": "sqs", "name": "jobs"}),
]


@dataclass(frozen=True)
class Rendered:
    """What the fixture program registered."""

    capture: Capture

    def component(self, stack: str) -> CapturedResource:
        return next(
            r
            for r in self.capture.resources
            if r.type == resource_types.GCP_STACK and r.name == stack
        )

    def under(self, stack: str) -> list[CapturedResource]:
        """Every resource below the stack's component, at any depth."""
        root = self.component(stack).urn
        by_urn = {r.urn: r for r in self.capture.resources}
        found = []
        for resource in self.capture.resources:
            parent = resource.parent
            while parent and parent != root:
                parent = by_urn[parent].parent if parent in by_urn else ""
            if parent == root:
                found.append(resource)
        return found

    def of_type(self, stack: str, type_token: str) -> list[CapturedResource]:
        return [r for r in self.under(stack) if r.type == type_token]

    def one(self, stack: str, type_token: str, name: str) -> CapturedResource:
        found = [r for r in self.of_type(stack, type_token) if r.name == name]
        assert len(found) == 1, (type_token, name, [r.name for r in self.under(stack)])
        return found[0]

    def manifest(self, stack: str, kind: str, name: str) -> dict[str, Any]:
        for resource in self.under(stack):
            if resource.type.startswith("kubernetes:") and resource.type.endswith(f":{kind}"):
                manifest = schemas.manifest_from_wire(resource.type, resource.inputs)
                if manifest["metadata"]["name"] == name:
                    return manifest
        raise AssertionError(f"no {kind} {name} under {stack}")


@pytest.fixture(scope="module")
def rendered() -> Rendered:
    return Rendered(capture_scenarios("gcp_stacks", SCENARIOS, NOW))


def _plan(name: str) -> Any:
    scenario = next(s for s in SCENARIOS if s["spec"]["name"] == name)
    return plan_service(parse_spec(scenario["spec"]), make_profile(), target="gcp", now=NOW)


def _pod(deployment: dict[str, Any]) -> dict[str, Any]:
    pod: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return pod


def principal(namespace: str, account: str) -> str:
    return (
        f"principal://iam.googleapis.com/projects/{NUMBER}/locations/global/"
        f"workloadIdentityPools/{POOL}/subject/ns/{namespace}/sa/{account}"
    )


# ---------------------------------------------------------------------------------------------
# Refusals


def test_bad_options_fail_before_any_resource_naming_each_field(rendered: Rendered) -> None:
    error = rendered.capture.stack_outputs["error-badopts"]
    assert "inferstack:gcp.project_number" in error
    assert "gcloud projects describe" in error
    assert "inferstack:gcp.region" in error
    # With no valid region to compare with, only the zone that is no zone at all is named.
    assert "inferstack:gcp.node_locations: 'moon' is not a zone; use e.g. us-central1-a" in error
    assert not [r for r in rendered.capture.resources if "badopts" in r.name]


def test_a_queue_gcp_lacks_is_refused_before_any_child(rendered: Rendered) -> None:
    error = rendered.capture.stack_outputs["error-sqsjobs"]
    assert "batch.queue.kind: sqs is not a GCP queue; use pubsub on the gcp target" in error
    component = rendered.component("sqsjobs")
    assert not [r for r in rendered.capture.resources if r.parent == component.urn]


def test_options_parser_names_unknown_keys() -> None:
    with pytest.raises(Exception, match=r"inferstack:gcp\.zone: unknown option"):
        parse_gcp_options({**GCP, "zone": "us-central1-a"}, source="inferstack:gcp")


def test_a_gpu_gce_lacks_is_refused_by_the_plan() -> None:
    spec = parse_spec(spec_data(realtime__gpu={"type": "nvidia-a10g", "count": 1}))
    with pytest.raises(Exception, match=r"realtime\.gpu\.type: nvidia-a10g is not offered on GCP"):
        plan_service(spec, make_profile(), target="gcp", now=NOW)


# ---------------------------------------------------------------------------------------------
# Node pools


def _pools(rendered: Rendered, stack: str) -> dict[str, dict[str, Any]]:
    return {
        r.inputs["name"]: schemas.integral_floats_to_int(r.inputs)
        for r in rendered.of_type(stack, resource_types.GKE_NODE_POOL)
    }


def test_three_pools_on_g2_with_the_l4_and_gke_installed_drivers(rendered: Rendered) -> None:
    pools = _pools(rendered, "embedder")
    assert sorted(pools) == ["embedder-batch-ondemand", "embedder-batch-spot", "embedder-realtime"]
    for pool in pools.values():
        assert pool["project"] == PROJECT
        assert pool["location"] == "us-central1"
        assert pool["cluster"] == "inference"
        assert pool["nodeLocations"] == ["us-central1-a", "us-central1-c"]
        config = pool["nodeConfig"]
        assert config["machineType"] == "g2-standard-8"
        assert config["guestAccelerators"] == [
            {
                "type": "nvidia-l4",
                "count": 1,
                "gpuDriverInstallationConfig": {"gpuDriverVersion": "LATEST"},
            }
        ]
        assert {"key": "nvidia.com/gpu", "value": "present", "effect": "NO_SCHEDULE"} in config[
            "taints"
        ]
        assert config["workloadMetadataConfig"] == {"mode": "GKE_METADATA"}
        assert config["serviceAccount"] == f"embedder-nodes@{PROJECT}.iam.gserviceaccount.com"
        assert config["oauthScopes"] == ["https://www.googleapis.com/auth/cloud-platform"]
        assert config["shieldedInstanceConfig"] == {
            "enableSecureBoot": True,
            "enableIntegrityMonitoring": True,
        }
        assert pool["management"] == {"autoRepair": True, "autoUpgrade": True}
        assert config["labels"]["inferstack.io/service"] == "embedder"


def test_only_the_spot_pool_is_spot_and_tiers_are_labelled(rendered: Rendered) -> None:
    pools = _pools(rendered, "embedder")
    realtime = pools["embedder-realtime"]["nodeConfig"]
    spot = pools["embedder-batch-spot"]["nodeConfig"]
    fallback = pools["embedder-batch-ondemand"]["nodeConfig"]
    assert realtime.get("spot") is False
    assert "preemptible" not in realtime
    assert spot["spot"] is True
    assert fallback.get("spot") is False
    assert realtime["labels"]["inferstack.io/tier"] == "realtime"
    assert "cloud.google.com/compute-class" not in realtime["labels"]
    for batch in (spot, fallback):
        assert batch["labels"]["inferstack.io/tier"] == "batch"
        assert batch["labels"]["cloud.google.com/compute-class"] == "embedder-batch"
        assert {
            "key": "cloud.google.com/compute-class",
            "value": "embedder-batch",
            "effect": "NO_SCHEDULE",
        } in batch["taints"]
    assert {"key": "cloud.google.com/gke-spot", "value": "true", "effect": "NO_SCHEDULE"} in spot[
        "taints"
    ]


def test_autoscaling_limits_are_the_plans_replicas(rendered: Rendered) -> None:
    plan = _plan("embedder")
    pools = _pools(rendered, "embedder")
    assert plan.sizing.realtime is not None
    assert plan.sizing.batch is not None
    assert pools["embedder-realtime"]["autoscaling"] == {
        "totalMinNodeCount": plan.sizing.realtime.min_replicas.value,
        "totalMaxNodeCount": plan.sizing.realtime.max_replicas.value,
        "locationPolicy": "BALANCED",
    }
    # initialNodeCount is per zone (two here); the autoscaler keeps the totals.
    assert pools["embedder-realtime"]["initialNodeCount"] == -(
        -plan.sizing.realtime.min_replicas.value // 2
    )
    assert pools["embedder-batch-spot"]["initialNodeCount"] == 0
    assert pools["embedder-batch-spot"]["autoscaling"] == {
        "totalMinNodeCount": 0,
        "totalMaxNodeCount": plan.sizing.batch.max_replicas.value,
        "locationPolicy": "ANY",
    }
    assert pools["embedder-batch-ondemand"]["autoscaling"] == {
        "totalMinNodeCount": 0,
        "totalMaxNodeCount": plan.sizing.batch.max_replicas.value,
        "locationPolicy": "BALANCED",
    }


def test_spot_without_fallback_has_one_pool_and_no_spot_means_no_spot_pool(
    rendered: Rendered,
) -> None:
    assert sorted(_pools(rendered, "ranker")) == ["ranker-batch-spot"]
    steady = _pools(rendered, "steady")
    assert sorted(steady) == ["steady-batch-ondemand", "steady-realtime"]
    assert all(not pool["nodeConfig"].get("spot") for pool in steady.values())


# ---------------------------------------------------------------------------------------------
# ComputeClass


def test_compute_class_prefers_spot_falls_back_and_migrates_back(rendered: Rendered) -> None:
    manifest = rendered.manifest("embedder", "ComputeClass", "embedder-batch")
    assert manifest["apiVersion"] == "cloud.google.com/v1"
    assert "namespace" not in manifest["metadata"]  # cluster-scoped
    assert manifest["metadata"]["labels"]["inferstack.io/tier"] == "batch"
    assert manifest["spec"] == {
        "description": "embedder batch pool: Spot VMs first, on-demand when Spot is out",
        "priorities": [
            {"nodepools": ["embedder-batch-spot"]},
            {"nodepools": ["embedder-batch-ondemand"]},
        ],
        "activeMigration": {"optimizeRulePriority": True},
        "nodePoolAutoCreation": {"enabled": False},
        "whenUnsatisfiable": "DoNotScaleUp",
    }


def test_a_single_pool_class_has_nothing_to_migrate_to(rendered: Rendered) -> None:
    spec = rendered.manifest("ranker", "ComputeClass", "ranker-batch")["spec"]
    assert spec["priorities"] == [{"nodepools": ["ranker-batch-spot"]}]
    assert "activeMigration" not in spec


def test_compute_class_waits_for_the_pools_it_names(rendered: Rendered) -> None:
    klass = rendered.one("embedder", resource_types.COMPUTE_CLASS, "embedder-compute-class")
    pool_urns = {r.urn for r in rendered.of_type("embedder", resource_types.GKE_NODE_POOL)}
    assert pool_urns <= set(klass.dependencies)


# ---------------------------------------------------------------------------------------------
# Kubernetes objects and scheduling


def test_every_kubernetes_object_validates_strictly(rendered: Rendered) -> None:
    schemas.require_schema_dir()
    checked = 0
    for stack in ("embedder", "ranker", "steady"):
        for resource in rendered.under(stack):
            if not resource.type.startswith("kubernetes:"):
                continue
            if resource.type == resource_types.COMPUTE_CLASS:
                continue  # no schema here: asserted field by field above
            schemas.validate(schemas.manifest_from_wire(resource.type, resource.inputs))
            checked += 1
    assert checked >= 12


def _gke_nodes(rendered: Rendered, stack: str) -> dict[str, Node]:
    """One node per rendered pool, labelled and tainted as GKE does it for that pool."""
    plans = {pool.name: pool for pool in gke_pools.pool_plans(_plan(stack), _options(stack))}
    nodes = {}
    for name, pool in _pools(rendered, stack).items():
        config = pool["nodeConfig"]
        assert plans[name].labels == config["labels"]  # the plan is what was rendered
        effects = {"NO_SCHEDULE": "NoSchedule", "NO_EXECUTE": "NoExecute"}
        taints = [
            {"key": t["key"], "value": t["value"], "effect": effects[t["effect"]]}
            for t in config["taints"]
        ]
        nodes[name] = Node(
            name,
            gke_pools.node_labels_on_gke(plans[name]),
            taints,
            spot=bool(config.get("spot")),
        )
    return nodes


def _options(stack: str) -> Any:
    scenario = next(s for s in SCENARIOS if s["spec"]["name"] == stack)
    return parse_gcp_options(scenario["gcp"], source="inferstack:gcp")


def test_gke_labels_mark_spot_nodes_as_the_contract_says(rendered: Rendered) -> None:
    nodes = _gke_nodes(rendered, "embedder")
    assert nodes["embedder-batch-spot"].labels["cloud.google.com/gke-spot"] == "true"
    assert "cloud.google.com/gke-spot" not in nodes["embedder-batch-ondemand"].labels
    assert "cloud.google.com/gke-spot" not in nodes["embedder-realtime"].labels


def test_realtime_pods_land_only_on_the_realtime_pool(rendered: Rendered) -> None:
    nodes = _gke_nodes(rendered, "embedder")
    pod = _pod(rendered.manifest("embedder", "Deployment", "embedder-realtime"))
    assert schedulable(pod, nodes["embedder-realtime"])
    assert not schedulable(pod, nodes["embedder-batch-spot"])
    assert not schedulable(pod, nodes["embedder-batch-ondemand"])
    for node in NODES:  # nor on any other platform's spot node
        if node.spot:
            assert not schedulable(pod, node), node.name


def test_batch_pods_land_on_the_class_pools_preferring_spot(rendered: Rendered) -> None:
    nodes = _gke_nodes(rendered, "embedder")
    pod = _pod(rendered.manifest("embedder", "Deployment", "embedder-batch"))
    assert pod["nodeSelector"]["cloud.google.com/compute-class"] == "embedder-batch"
    assert schedulable(pod, nodes["embedder-batch-spot"])
    assert schedulable(pod, nodes["embedder-batch-ondemand"])
    assert not schedulable(pod, nodes["embedder-realtime"])
    assert preference_score(pod, nodes["embedder-batch-spot"]) > preference_score(
        pod, nodes["embedder-batch-ondemand"]
    )


def test_spot_only_batch_pods_never_land_on_on_demand(rendered: Rendered) -> None:
    nodes = _gke_nodes(rendered, "ranker")
    pod = _pod(rendered.manifest("ranker", "Deployment", "ranker-batch"))
    assert schedulable(pod, nodes["ranker-batch-spot"])
    fallback_like = Node(
        "ondemand",
        {**nodes["ranker-batch-spot"].labels, "cloud.google.com/gke-provisioning": "standard"}
        | {"cloud.google.com/gke-spot": "false"},
        nodes["ranker-batch-spot"].taints,
    )
    assert not schedulable(pod, fallback_like)


def test_on_demand_batch_pods_land_on_the_on_demand_class_pool(rendered: Rendered) -> None:
    nodes = _gke_nodes(rendered, "steady")
    pod = _pod(rendered.manifest("steady", "Deployment", "steady-batch"))
    assert schedulable(pod, nodes["steady-batch-ondemand"])
    assert not schedulable(pod, nodes["steady-realtime"])
    realtime = _pod(rendered.manifest("steady", "Deployment", "steady-realtime"))
    assert realtime["nodeSelector"] == {"cloud.google.com/gke-nodepool": "steady-realtime"}
    assert not schedulable(realtime, nodes["steady-batch-ondemand"])


def test_batch_grace_fits_the_30_second_gcp_notice(rendered: Rendered) -> None:
    for stack in ("embedder", "ranker", "steady"):
        pod = _pod(rendered.manifest(stack, "Deployment", f"{stack}-batch"))
        assert pod["terminationGracePeriodSeconds"] <= INTERRUPTION_NOTICE_SECONDS["gcp"]
        # GKE's graceful node shutdown gives non-system pods the first 15 s of the notice.
        assert pod["terminationGracePeriodSeconds"] <= gke_pools.GKE_POD_SHUTDOWN_SECONDS
        assert (
            pod["terminationGracePeriodSeconds"]
            == _plan(stack).sizing.batch.termination_grace_seconds.value
        )


def test_worker_reads_the_created_subscription_and_writes_to_the_bucket(
    rendered: Rendered,
) -> None:
    container = _pod(rendered.manifest("embedder", "Deployment", "embedder-batch"))["containers"][0]
    args = container["args"]
    queue = parse_queue_uri(args[args.index("--queue") + 1])
    assert (queue.kind, queue.gcp_project, queue.name) == ("pubsub", PROJECT, "embedder-jobs")
    assert args[args.index("--results") + 1] == f"gs://{PROJECT}-embedder-results/embedder"
    ranker = _pod(rendered.manifest("ranker", "Deployment", "ranker-batch"))["containers"][0]
    assert ranker["args"][ranker["args"].index("--results") + 1] == (
        "gs://shared-results/teams/ranker"
    )
    assert parse_queue_uri(ranker["args"][1]).name == "ranker-jobs"


def test_keda_reads_the_backlog_of_the_created_subscription(rendered: Rendered) -> None:
    scaler = rendered.manifest("embedder", "ScaledObject", "embedder-batch")
    trigger = scaler["spec"]["triggers"][0]
    assert trigger["type"] == "prometheus"
    assert f"projects/{PROJECT}/location/global/prometheus" in trigger["metadata"]["serverAddress"]
    assert 'subscription_id="embedder-jobs"' in trigger["metadata"]["query"]
    auth = rendered.manifest("embedder", "TriggerAuthentication", "embedder-queue")
    assert auth["spec"] == {"podIdentity": {"provider": "gcp"}}


def test_realtime_demand_is_scraped_and_queried_through_managed_prometheus(
    rendered: Rendered,
) -> None:
    """Issue 27 item 4: on GKE nothing wired the realtime trigger to Managed Prometheus, so the
    demand query went to a Prometheus that never scraped the pods."""
    monitoring = rendered.manifest("embedder", "PodMonitoring", "embedder-realtime")
    assert monitoring["apiVersion"] == "monitoring.googleapis.com/v1"
    assert monitoring["spec"]["endpoints"] == [
        {"port": "http", "path": "/metrics", "interval": "15s"}
    ]
    mapped = {m["from"]: m["to"] for m in monitoring["spec"]["targetLabels"]["fromPod"]}
    assert mapped == {"inferstack.io/service": "inferstack_io_service", "inferstack.io/tier":
                      "inferstack_io_tier"}  # fmt: skip
    trigger = rendered.manifest("embedder", "ScaledObject", "embedder-realtime")["spec"][
        "triggers"
    ][0]
    assert trigger["metadata"]["serverAddress"] == (
        f"https://monitoring.googleapis.com/v1/projects/{PROJECT}/location/global/prometheus"
    )
    # The labels the PodMonitoring maps, plus this cluster's (two clusters never add up).
    for matcher in ('inferstack_io_service="embedder"', 'namespace="inference"',
                    'cluster="inference"'):  # fmt: skip
        assert matcher in trigger["metadata"]["query"]
    assert trigger["authenticationRef"] == {"name": "embedder-metrics"}
    auth = rendered.manifest("embedder", "TriggerAuthentication", "embedder-metrics")
    assert auth["spec"] == {"podIdentity": {"provider": "gcp"}}
    # GKE's managed collectors scrape the pods, so their namespace is admitted to the port.
    policy = rendered.manifest("embedder", "NetworkPolicy", "embedder-realtime")
    callers = policy["spec"]["ingress"][0]["from"]
    assert {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "gke-gmp-system"}}
    } in callers
    pods = rendered.manifest("embedder", "Deployment", "embedder-realtime")["spec"]["template"]
    assert "prometheus.io/scrape" not in pods["metadata"]["annotations"]


def test_deployments_default_to_the_registry_image(rendered: Rendered) -> None:
    image = f"us-central1-docker.pkg.dev/{PROJECT}/embedder/runtime:0.1.0-cuda"
    for tier in ("realtime", "batch"):
        pod = _pod(rendered.manifest("embedder", "Deployment", f"embedder-{tier}"))
        assert pod["containers"][0]["image"] == image
    ranker = _pod(rendered.manifest("ranker", "Deployment", "ranker-batch"))
    assert ranker["containers"][0]["image"] == "us-docker.pkg.dev/acme/runtime/inferstack:7"
    assert rendered.capture.stack_outputs["image-embedder"] == image


def test_only_the_google_account_mode_annotates_the_worker_account(rendered: Rendered) -> None:
    worker = rendered.manifest("embedder", "ServiceAccount", "embedder-batch")
    assert "annotations" not in worker["metadata"]
    realtime = rendered.manifest("embedder", "ServiceAccount", "embedder-realtime")
    assert "annotations" not in realtime["metadata"]
    ranker = rendered.manifest("ranker", "ServiceAccount", "ranker-batch")
    assert ranker["metadata"]["annotations"] == {
        "iam.gke.io/gcp-service-account": f"ranker-batch@{PROJECT}.iam.gserviceaccount.com"
    }


# ---------------------------------------------------------------------------------------------
# Pub/Sub


def test_subscription_has_dead_letters_retry_and_plan_deadlines(rendered: Rendered) -> None:
    subscription = rendered.one(
        "embedder", resource_types.PUBSUB_SUBSCRIPTION, "embedder-subscription"
    )
    topic = rendered.one("embedder", resource_types.PUBSUB_TOPIC, "embedder-topic")
    dead_topic = rendered.one("embedder", resource_types.PUBSUB_TOPIC, "embedder-dead-letter-topic")
    inputs = schemas.integral_floats_to_int(subscription.inputs)
    assert inputs["name"] == "embedder-jobs"
    assert inputs["ackDeadlineSeconds"] == 300  # batch.max_job_seconds
    assert inputs["messageRetentionDuration"] == "604800s"
    assert inputs["expirationPolicy"] == {"ttl": ""}
    assert inputs["retryPolicy"] == {"minimumBackoff": "10s", "maximumBackoff": "600s"}
    assert inputs["deadLetterPolicy"]["maxDeliveryAttempts"] == 5
    assert subscription.property_dependencies["topic"] == [topic.urn]
    assert subscription.property_dependencies["deadLetterPolicy"] == [dead_topic.urn]
    assert topic.inputs["name"] == "embedder-jobs"
    assert dead_topic.inputs["name"] == "embedder-jobs-dead-letter"


def test_dead_letters_are_kept_by_a_subscription_of_their_own(rendered: Rendered) -> None:
    keeper = rendered.one(
        "embedder", resource_types.PUBSUB_SUBSCRIPTION, "embedder-dead-letter-subscription"
    )
    dead_topic = rendered.one("embedder", resource_types.PUBSUB_TOPIC, "embedder-dead-letter-topic")
    assert keeper.property_dependencies["topic"] == [dead_topic.urn]
    assert keeper.inputs["messageRetentionDuration"] == "2678400s"
    assert keeper.inputs["expirationPolicy"] == {"ttl": ""}
    assert "deadLetterPolicy" not in keeper.inputs


# ---------------------------------------------------------------------------------------------
# IAM: every binding, exactly


def _name(resource: CapturedResource) -> str:
    inputs = resource.inputs
    return str(inputs.get("name") or inputs.get("repositoryId") or inputs.get("accountId"))


def _bindings(rendered: Rendered, stack: str) -> set[tuple[str, str, str, str, str]]:
    """(type, on, role, member, condition expression) of every IAM member binding."""
    found = set()
    by_urn = {r.urn: r for r in rendered.capture.resources}
    for resource in rendered.under(stack):
        if "IAMMember" not in resource.type and "IamMember" not in resource.type:
            continue
        inputs = resource.inputs
        on = ""
        for key in ("topic", "subscription", "bucket", "repository", "serviceAccountId"):
            if key in inputs or key in resource.property_dependencies:
                deps = resource.property_dependencies.get(key) or []
                on = f"{key}:{_name(by_urn[deps[0]])}" if deps else f"{key}:{inputs[key]}"
        if resource.type == resource_types.PROJECT_IAM_MEMBER:
            on = f"project:{inputs['project']}"
        condition = (inputs.get("condition") or {}).get("expression", "")
        found.add(
            (resource.type.rsplit(":", 1)[1], on, inputs["role"], inputs["member"], condition)
        )
    return found


def test_every_binding_of_the_principal_stack_exactly(rendered: Rendered) -> None:
    worker = principal("inference", "embedder-batch")
    keda = principal("keda", "keda-operator")
    nodes = f"serviceAccount:embedder-nodes@{PROJECT}.iam.gserviceaccount.com"
    prefix = f'resource.name.startsWith("projects/_/buckets/{PROJECT}-embedder-results/objects/'
    assert _bindings(rendered, "embedder") == {
        # The Pub/Sub service agent: forwards dead letters, acks them on the source.
        ("TopicIAMMember", "topic:embedder-jobs-dead-letter", "roles/pubsub.publisher", AGENT, ""),
        (
            "SubscriptionIAMMember",
            "subscription:embedder-jobs",
            "roles/pubsub.subscriber",
            AGENT,
            "",
        ),
        # The worker: its subscription, its dead-letter topic, its results prefix.
        (
            "SubscriptionIAMMember",
            "subscription:embedder-jobs",
            "roles/pubsub.subscriber",
            worker,
            "",
        ),
        ("SubscriptionIAMMember", "subscription:embedder-jobs", "roles/pubsub.viewer", worker, ""),
        ("TopicIAMMember", "topic:embedder-jobs-dead-letter", "roles/pubsub.publisher", worker, ""),
        (
            "BucketIAMMember",
            f"bucket:{PROJECT}-embedder-results",
            "roles/storage.objectCreator",
            worker,
            prefix + 'embedder/")',
        ),
        (
            "BucketIAMMember",
            f"bucket:{PROJECT}-embedder-results",
            "roles/storage.objectViewer",
            worker,
            prefix + 'embedder/")',
        ),
        # KEDA reads the backlog; the nodes log, report metrics and pull the image.
        ("IAMMember", f"project:{PROJECT}", "roles/monitoring.viewer", keda, ""),
        ("IAMMember", f"project:{PROJECT}", "roles/container.defaultNodeServiceAccount", nodes, ""),
        ("RepositoryIamMember", "repository:embedder", "roles/artifactregistry.reader", nodes, ""),
    }


def test_every_binding_of_the_service_account_stack_exactly(rendered: Rendered) -> None:
    gsa = f"serviceAccount:ranker-batch@{PROJECT}.iam.gserviceaccount.com"
    nodes = f"serviceAccount:ranker-nodes@{PROJECT}.iam.gserviceaccount.com"
    prefix = 'resource.name.startsWith("projects/_/buckets/shared-results/objects/teams/ranker/")'
    assert _bindings(rendered, "ranker") == {
        ("TopicIAMMember", "topic:ranker-jobs-dead-letter", "roles/pubsub.publisher", AGENT, ""),
        ("SubscriptionIAMMember", "subscription:ranker-jobs", "roles/pubsub.subscriber", AGENT, ""),
        ("SubscriptionIAMMember", "subscription:ranker-jobs", "roles/pubsub.subscriber", gsa, ""),
        ("SubscriptionIAMMember", "subscription:ranker-jobs", "roles/pubsub.viewer", gsa, ""),
        ("TopicIAMMember", "topic:ranker-jobs-dead-letter", "roles/pubsub.publisher", gsa, ""),
        ("BucketIAMMember", "bucket:shared-results", "roles/storage.objectCreator", gsa, prefix),
        ("BucketIAMMember", "bucket:shared-results", "roles/storage.objectViewer", gsa, prefix),
        (
            "IAMMember",
            "serviceAccountId:ranker-batch",
            "roles/iam.workloadIdentityUser",
            f"serviceAccount:{POOL}[ranking/ranker-batch]",
            "",
        ),
        (
            "IAMMember",
            f"project:{PROJECT}",
            "roles/monitoring.viewer",
            principal("keda", "keda-operator"),
            "",
        ),
        ("IAMMember", f"project:{PROJECT}", "roles/container.defaultNodeServiceAccount", nodes, ""),
    }


def test_no_inference_identity_holds_a_project_level_role(rendered: Rendered) -> None:
    for stack, namespace in (
        ("embedder", "inference"),
        ("ranker", "ranking"),
        ("steady", "default"),
    ):
        inference_members = {
            principal(namespace, f"{stack}-batch"),
            principal(namespace, f"{stack}-realtime"),
            f"serviceAccount:{stack}-batch@{PROJECT}.iam.gserviceaccount.com",
        }
        for binding in _bindings(rendered, stack):
            if binding[1].startswith("project:"):
                assert binding[3] not in inference_members, binding
        realtime = principal(namespace, f"{stack}-realtime")
        assert all(binding[3] != realtime for binding in _bindings(rendered, stack))


# ---------------------------------------------------------------------------------------------
# Results bucket and registry


def test_results_bucket_is_private_uniform_and_expires(rendered: Rendered) -> None:
    bucket = rendered.one("embedder", resource_types.STORAGE_BUCKET, "embedder-results")
    inputs = schemas.integral_floats_to_int(bucket.inputs)
    assert inputs["name"] == f"{PROJECT}-embedder-results"
    assert inputs["location"] == "US-CENTRAL1"
    assert inputs["uniformBucketLevelAccess"] is True
    assert inputs["publicAccessPrevention"] == "enforced"
    assert inputs["lifecycleRules"] == [
        {"action": {"type": "Delete"}, "condition": {"age": 30, "matchesPrefixes": ["embedder/"]}}
    ]
    assert not rendered.of_type("ranker", resource_types.STORAGE_BUCKET)  # an existing bucket


def test_registry_has_immutable_tags_and_a_cleanup_policy(rendered: Rendered) -> None:
    repo = rendered.one("embedder", resource_types.ARTIFACT_REPOSITORY, "embedder-registry")
    inputs = schemas.integral_floats_to_int(repo.inputs)
    assert inputs["repositoryId"] == "embedder"
    assert inputs["format"] == "DOCKER"
    assert inputs["location"] == "us-central1"
    assert inputs["dockerConfig"] == {"immutableTags": True}
    assert inputs["cleanupPolicyDryRun"] is False
    assert inputs["cleanupPolicies"] == [
        {"id": "keep-recent", "action": "KEEP", "mostRecentVersions": {"keepCount": 10}},
        {
            "id": "delete-untagged",
            "action": "DELETE",
            "condition": {"tagState": "UNTAGGED", "olderThan": "604800s"},
        },
    ]
    assert not rendered.of_type("ranker", resource_types.ARTIFACT_REPOSITORY)


def test_bindings_wait_for_the_accounts_they_name(rendered: Rendered) -> None:
    nodes = rendered.one("ranker", "gcp:serviceaccount/account:Account", "ranker-nodes")
    gsa = rendered.one("ranker", "gcp:serviceaccount/account:Account", "ranker-batch-identity")
    for resource in rendered.under("ranker"):
        if "IAMMember" not in resource.type and "IamMember" not in resource.type:
            continue
        member = resource.inputs["member"]
        if member.startswith("serviceAccount:ranker-nodes@"):
            assert nodes.urn in resource.dependencies, resource.name
        if member.startswith("serviceAccount:ranker-batch@"):
            assert gsa.urn in resource.dependencies, resource.name


# ---------------------------------------------------------------------------------------------
# The GKE pods' flows, through their NetworkPolicies (tests/components/netpol.py's evaluator)

KUBE_SYSTEM = {"kubernetes.io/metadata.name": "kube-system"}
INFERENCE = {"kubernetes.io/metadata.name": "inference"}
GMP = {"kubernetes.io/metadata.name": "gke-gmp-system"}
MONITORING = {"kubernetes.io/metadata.name": "monitoring"}
GOOGLE_API = "199.36.153.8"  # private.googleapis.com: Pub/Sub and GCS over TCP 443
METADATA = "169.254.169.254"
"""GKE's metadata server, which answers Workload Identity token requests there (port 80)."""
DNS = Peer(KUBE_SYSTEM, {"k8s-app": "kube-dns"})
REALTIME_PORT = 8000


@pytest.mark.parametrize(
    ("pool", "direction", "peer", "port", "protocol", "allowed"),
    [
        # Batch: DNS, Pub/Sub and GCS over HTTPS, Workload Identity tokens and the spot notice
        # from the metadata server; Prometheus on the worker's metrics port.
        ("batch", "Egress", DNS, 53, "UDP", True),
        ("batch", "Egress", DNS, 53, "TCP", True),
        ("batch", "Egress", Peer(ip=GOOGLE_API), 443, "TCP", True),
        ("batch", "Egress", Peer(ip=METADATA), 80, "TCP", True),
        ("batch", "Ingress", Peer(MONITORING, {}), WORKER_METRICS_PORT, "TCP", True),
        # Undeclared: plain HTTP out, a database in the VPC, a caller of the worker.
        ("batch", "Egress", Peer(ip=GOOGLE_API), 80, "TCP", False),
        ("batch", "Egress", Peer(ip="10.8.0.4"), 5432, "TCP", False),
        ("batch", "Ingress", Peer(INFERENCE, {"app": "client"}), WORKER_METRICS_PORT, "TCP", False),
        # Realtime (a built-in model: no cloud API): DNS only out; in, the pods beside it and
        # GKE's managed collectors on the serving port.
        ("realtime", "Egress", DNS, 53, "UDP", True),
        ("realtime", "Egress", Peer(ip=GOOGLE_API), 443, "TCP", False),
        ("realtime", "Egress", Peer(ip=METADATA), 80, "TCP", False),
        ("realtime", "Ingress", Peer(INFERENCE, {"app": "client"}), REALTIME_PORT, "TCP", True),
        ("realtime", "Ingress", Peer(GMP, {}), REALTIME_PORT, "TCP", True),
        # Undeclared: another namespace's pods, the monitoring namespace nobody scrapes from.
        (
            "realtime",
            "Ingress",
            Peer({"kubernetes.io/metadata.name": "other"}, {}),
            REALTIME_PORT,
            "TCP",
            False,
        ),  # fmt: skip
        ("realtime", "Ingress", Peer(MONITORING, {}), REALTIME_PORT, "TCP", False),
        ("realtime", "Ingress", Peer(INFERENCE, {"app": "client"}), 22, "TCP", False),
    ],
)
def test_the_gke_pods_flows(
    rendered: Rendered,
    pool: str,
    direction: str,
    peer: Peer,
    port: int,
    protocol: str,
    allowed: bool,
) -> None:
    policy = rendered.manifest("embedder", "NetworkPolicy", f"embedder-{pool}")
    verdict = allows(policy, direction, peer, port, protocol=protocol, own_namespace=INFERENCE)
    assert verdict is allowed
