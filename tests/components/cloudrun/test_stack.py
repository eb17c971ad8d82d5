"""CloudRunInferenceStack rendered under the Pulumi SDK's mock monitor, resource by resource.

The resources went through pulumi-gcp's typed constructors; the tests read their wire inputs
back: the GPU service (accelerator, limits, CPU always allocated, zonal redundancy, instances,
concurrency, probes, identity, ingress), every IAM binding (each on the resource it is about,
none project-level), the pre-warm identity's custom role and scheduler jobs, the worker pool on
the Pub/Sub subscription with dead letters, and the refusals.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from inferstack.components.cloudrun.scaling import service_scaling, worker_scaling
from inferstack.contract.cloudrun import cloud_run_names
from inferstack.offline.capture import Capture, CapturedResource
from tests.components.aws.factories import NOW
from tests.components.cloudrun.factories import (
    CLOUDRUN_OPTIONS,
    GATEWAY,
    IMAGE,
    MODEL,
    MODEL_PROFILE,
    MODEL_URI,
    NUMBER,
    PROJECT,
    QUEUE,
    REGION,
    make_plan,
)
from tests.components.factories import spec_data
from tests.components.scenarios import capture_scenarios

NAMES = cloud_run_names()
SERVICE = "gcp:cloudrunv2/service:Service"
SERVICE_IAM = "gcp:cloudrunv2/serviceIamMember:ServiceIamMember"
WORKER_POOL = "gcp:cloudrunv2/workerPool:WorkerPool"
ACCOUNT = "gcp:serviceaccount/account:Account"
ACCOUNT_IAM = "gcp:serviceaccount/iAMMember:IAMMember"
CUSTOM_ROLE = "gcp:projects/iAMCustomRole:IAMCustomRole"
JOB = "gcp:cloudscheduler/job:Job"
BUCKET_IAM = "gcp:storage/bucketIAMMember:BucketIAMMember"
SUBSCRIPTION_IAM = "gcp:pubsub/subscriptionIAMMember:SubscriptionIAMMember"
TOPIC_IAM = "gcp:pubsub/topicIAMMember:TopicIAMMember"
REPOSITORY_IAM = "gcp:artifactregistry/repositoryIamMember:RepositoryIamMember"


def _scenario(name: str, options: dict[str, Any] | None = None, **changes: Any) -> dict[str, Any]:
    return {
        "spec": spec_data(name=name, **{"model": MODEL, "batch__queue": QUEUE, **changes}),
        "cloudrun": {**CLOUDRUN_OPTIONS, **(options or {})},
        "profile": MODEL_PROFILE,
    }


SCENARIOS = [
    # Both pools, the plan's floor, a pre-warmed weekday spike, one named invoker.
    _scenario("full"),
    # Realtime only, scaled to zero, public on purpose (ingress all).
    _scenario(
        "zero",
        {"public": True, "ingress": "all", "invokers": []},
        batch=None,
        traffic__baseline_rps=0,
        traffic__spikes=[],
        realtime__scale_to_zero=True,
        realtime__allow_cold_start_over_budget=True,
        realtime__scaling__min_replicas=0,
    ),
    # Refused: an SQS queue, no results bucket, public behind internal ingress.
    _scenario("refused", {"public": True, "results_bucket": None}, batch__queue={"kind": "sqs"}),
]


@pytest.fixture(scope="module")
def capture() -> Capture:
    scenarios = json.loads(json.dumps(SCENARIOS))
    scenarios[2]["cloudrun"].pop("results_bucket")
    scenarios[2]["spec"]["batch"]["queue"] = {"kind": "sqs", "name": "jobs"}
    return capture_scenarios("cloudrun_stacks", scenarios, NOW)


def _of(capture: Capture, service: str, type_: str) -> list[CapturedResource]:
    return [
        r
        for r in capture.resources
        if r.type == type_ and (r.name == service or r.name.startswith(f"{service}-"))
    ]


def _one(capture: Capture, service: str, type_: str, suffix: str = "") -> CapturedResource:
    found = [r for r in _of(capture, service, type_) if r.name.endswith(suffix)]
    assert len(found) == 1, [r.name for r in found]
    return found[0]


def _urn(capture: Capture, service: str, type_: str, suffix: str) -> str:
    return _one(capture, service, type_, suffix).urn


def test_every_resource_of_the_full_service(capture: Capture) -> None:
    counts: dict[str, int] = {}
    for resource in capture.resources:
        if resource.name.startswith("full") and resource.custom:
            counts[resource.type] = counts.get(resource.type, 0) + 1
    assert counts == {
        ACCOUNT: 3,  # runtime, pre-warm, worker
        REPOSITORY_IAM: 1,
        SERVICE: 1,
        SERVICE_IAM: 2,  # the gateway's invoker, the pre-warm updater
        CUSTOM_ROLE: 1,
        ACCOUNT_IAM: 1,  # the pre-warm identity acts as the runtime identity only
        JOB: 2,  # the spike's start and end
        "gcp:pubsub/topic:Topic": 2,
        "gcp:pubsub/subscription:Subscription": 2,
        SUBSCRIPTION_IAM: 3,  # agent subscriber; worker subscriber and viewer
        TOPIC_IAM: 2,  # agent publisher; worker publisher
        BUCKET_IAM: 4,  # two model readers; results create and read
        WORKER_POOL: 1,
    }


def test_no_binding_is_project_level(capture: Capture) -> None:
    project_level = {
        r.name
        for r in capture.resources
        if r.type.startswith("gcp:projects/") and r.type != CUSTOM_ROLE
    }
    assert project_level == set()
    # The custom role is a definition; it is bound only on the service.
    for role in _of(capture, "full", CUSTOM_ROLE):
        users = [
            r.name for r in capture.resources if role.urn in r.property_dependencies.get("role", [])
        ]
        assert users == ["full-prewarm-updater"]


def test_gpu_service_shape(capture: Capture) -> None:
    plan = make_plan(name="full")
    assert plan.realtime is not None
    scaling = service_scaling(plan, plan.realtime)
    service = _one(capture, "full", SERVICE).inputs
    assert service["name"] == "full"
    assert service["location"] == REGION
    assert service["ingress"] == "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER"
    assert service["scaling"] == {"minInstanceCount": scaling.min_instances.value}
    assert scaling.min_instances.value == plan.realtime.sizing.min_replicas.value > 0
    template = service["template"]
    assert template["nodeSelector"] == {"accelerator": "nvidia-l4"}
    assert template["gpuZonalRedundancyDisabled"] is True
    assert template["scaling"] == {"maxInstanceCount": plan.realtime.sizing.max_replicas.value}
    assert template["maxInstanceRequestConcurrency"] == scaling.max_concurrency.value
    assert scaling.max_concurrency.value >= plan.realtime.sizing.batch_size.value
    (container,) = template["containers"]
    assert container["image"] == IMAGE
    assert container["resources"]["limits"] == {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1"}
    assert container["resources"]["cpuIdle"] is False
    probe = container["startupProbe"]
    assert probe["httpGet"]["path"] == "/v2/health/ready"
    covered = probe["periodSeconds"] * probe["failureThreshold"]
    assert covered >= plan.realtime.sizing.startup_seconds.value
    env = {e["name"]: e["value"] for e in container["envs"]}
    assert env["INFERSTACK_MODEL"] == MODEL_URI
    assert env["INFERSTACK_DEVICE"] == "cuda"
    assert env["INFERSTACK_MAX_BATCH_SIZE"] == str(plan.realtime.sizing.batch_size.value)
    # Its own identity, not the default compute account.
    runtime = _urn(capture, "full", ACCOUNT, "-run-identity")
    assert runtime in _one(capture, "full", SERVICE).property_dependencies["template"]


def test_concurrency_reason_is_the_batcher_model() -> None:
    plan = make_plan(name="full")
    assert plan.realtime is not None
    concurrency = service_scaling(plan, plan.realtime).max_concurrency
    assert "in flight" in concurrency.reason
    assert "60 %" in concurrency.reason


def test_invokers_are_exactly_the_named_members(capture: Capture) -> None:
    invokers = [
        r.inputs for r in _of(capture, "full", SERVICE_IAM) if r.name.startswith("full-invoker")
    ]
    assert invokers == [
        {
            "role": "roles/run.invoker",
            "member": GATEWAY,
            "location": REGION,
            "project": PROJECT,
            "name": "full",
        }
    ]
    # allUsers only where the options say public.
    public = [r.inputs["member"] for r in _of(capture, "zero", SERVICE_IAM)]
    assert public == ["allUsers"]
    assert all(
        r.inputs.get("member") != "allUsers"
        for r in capture.resources
        if not r.name.startswith("zero")
    )


def test_scale_to_zero_service(capture: Capture) -> None:
    service = _one(capture, "zero", SERVICE).inputs
    assert service["scaling"] == {"minInstanceCount": 0}
    assert service["ingress"] == "INGRESS_TRAFFIC_ALL"
    assert _of(capture, "zero", JOB) == []  # no spikes, nothing to pre-warm
    assert _of(capture, "zero", WORKER_POOL) == []


def test_prewarm_identity_and_jobs(capture: Capture) -> None:
    role = _one(capture, "full", CUSTOM_ROLE).inputs
    assert role["permissions"] == ["run.services.get", "run.services.update"]
    assert role["roleId"] == "inferstack.full.prewarm"
    updater = _one(capture, "full", SERVICE_IAM, "-prewarm-updater")
    prewarm = _urn(capture, "full", ACCOUNT, "-prewarm-identity")
    assert updater.property_dependencies["role"] == [_urn(capture, "full", CUSTOM_ROLE, "")]
    assert updater.property_dependencies["member"] == [prewarm]
    assert updater.inputs["name"] == "full"
    act_as = _one(capture, "full", ACCOUNT_IAM)
    assert act_as.inputs["role"] == "roles/iam.serviceAccountUser"
    assert act_as.property_dependencies["serviceAccountId"] == [
        _urn(capture, "full", ACCOUNT, "-run-identity")
    ]
    plan = make_plan(name="full")
    assert plan.realtime is not None
    windows = service_scaling(plan, plan.realtime).prewarm
    jobs = {r.name.removeprefix("full-"): r.inputs for r in _of(capture, "full", JOB)}
    assert set(jobs) == {window.name for window in windows}
    for window in windows:
        job = jobs[window.name]
        assert job["schedule"] == window.schedule
        assert job["timeZone"] == "America/New_York"
        target = job["httpTarget"]
        assert target["httpMethod"] == "PATCH"
        assert target["uri"] == (
            f"https://run.googleapis.com/v2/projects/{PROJECT}/locations/{REGION}/services/full"
            "?updateMask=scaling.minInstanceCount"
        )
        body = json.loads(base64.b64decode(target["body"]))
        assert body == {"scaling": {"minInstanceCount": window.min_instances}}
        assert target["oauthToken"]["scope"] == "https://www.googleapis.com/auth/cloud-platform"
    assert (
        jobs["prewarm-0-start"]["httpTarget"]["body"] != jobs["prewarm-0-end"]["httpTarget"]["body"]
    )


def test_image_pulled_by_the_service_agent_from_that_repository(capture: Capture) -> None:
    reader = _one(capture, "full", REPOSITORY_IAM).inputs
    assert reader == {
        "repository": "embedder",
        "location": REGION,
        "project": PROJECT,
        "role": "roles/artifactregistry.reader",
        "member": f"serviceAccount:service-{NUMBER}@serverless-robot-prod.iam.gserviceaccount.com",
    }


def test_worker_pool_runs_inferstack_work_on_the_subscription(capture: Capture) -> None:
    plan = make_plan(name="full")
    assert plan.batch is not None
    pool = _one(capture, "full", WORKER_POOL).inputs
    assert pool["scaling"] == {
        "manualInstanceCount": worker_scaling(plan, plan.batch).instances.value
    }
    assert pool["launchStage"] == "BETA"
    template = pool["template"]
    assert template["nodeSelector"] == {"accelerator": "nvidia-l4"}
    (container,) = template["containers"]
    assert container["commands"] == ["inferstack", "work"]
    assert container["args"] == [
        "--queue",
        f"pubsub://projects/{PROJECT}/subscriptions/jobs",
        "--model",
        MODEL_URI,
        "--results",
        "gs://team-results/results/full",
    ]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    (subscription,) = [
        r
        for r in _of(capture, "full", "gcp:pubsub/subscription:Subscription")
        if r.name == "full-subscription"
    ]
    assert subscription.inputs["deadLetterPolicy"]["maxDeliveryAttempts"] == 5


def test_worker_grants_sit_on_their_resources(capture: Capture) -> None:
    worker = _urn(capture, "full", ACCOUNT, "-work-identity")
    grants = {
        (r.type, r.inputs["role"])
        for r in capture.resources
        if worker in r.property_dependencies.get("member", [])
    }
    assert grants == {
        (SUBSCRIPTION_IAM, "roles/pubsub.subscriber"),
        (SUBSCRIPTION_IAM, "roles/pubsub.viewer"),
        (TOPIC_IAM, "roles/pubsub.publisher"),
        (BUCKET_IAM, "roles/storage.objectCreator"),
        (BUCKET_IAM, "roles/storage.objectViewer"),
    }
    creator = _one(capture, "full", BUCKET_IAM, "-results-bucket-storage-objectCreator").inputs
    assert creator["condition"]["expression"] == (
        'resource.name.startsWith("projects/_/buckets/team-results/objects/results/full/")'
    )


def test_refusals_name_each_field(capture: Capture) -> None:
    error = capture.stack_outputs["error-refused"]
    for field in (
        "inferstack:cloudrun.results_bucket",
        "batch.queue.kind",
        "inferstack:cloudrun.public",
    ):
        assert field in error, field
    assert not _of(capture, "refused", SERVICE)


def test_the_component_registers_its_declaration_for_the_offline_tools(capture: Capture) -> None:
    """simulate and the declared-day check plan a program's Cloud Run service again from it."""
    from inferstack.components.planning.plan import DECLARATION_OUTPUT, plan_service
    from inferstack.components.planning.spec import parse_spec
    from inferstack.profile import parse_profile

    [component] = [
        r for r in capture.resources if r.name == "full" and r.type.startswith("inferstack:")
    ]
    declaration = component.outputs[DECLARATION_OUTPUT]
    assert declaration["target"] == "cloudrun"
    assert declaration["cloudrun"]["project"] == CLOUDRUN_OPTIONS["project"]
    spec = parse_spec(declaration["spec"])
    again = plan_service(spec, parse_profile(MODEL_PROFILE), target="cloudrun", now=NOW)
    registered = {k: v for k, v in component.outputs["sizing"].items() if k != "platform"}
    assert registered == again.sizing.to_dict()
