"""`CloudRunInferenceStack`: a planned service on Cloud Run's serverless GPUs.

From the same plan as the Kubernetes and cloud targets:
- the realtime pool is a Cloud Run service ("Configure GPUs for services",
  https://cloud.google.com/run/docs/configuring/services/gpu): one L4 per instance (node selector
  accelerator, `nvidia.com/gpu` limit 1), 4 vCPU and 16 GiB (the least Cloud Run allows beside
  an L4), CPU always allocated (instance-based billing, which GPU services require), GPU zonal
  redundancy off unless the options buy it ("GPU zonal redundancy",
  https://cloud.google.com/run/docs/configuring/services/gpu-zonal-redundancy); instances,
  concurrency and the startup probe as `scaling` derives them; its own service account; ingress
  and the invoker role explicit ("Access control with IAM",
  https://cloud.google.com/run/docs/securing/managing-access): only the members the options name,
  `allUsers` only with `public: true`;
- pre-warm windows are Cloud Scheduler jobs that PATCH the service's minimum instances through
  the Admin API with an identity of their own, which holds a custom role of `run.services.get`
  and `run.services.update` on this service only, and actAs on the runtime identity only
  ("Schedule jobs with HTTP targets", https://cloud.google.com/scheduler/docs/http-target-auth);
- queue work is a Cloud Run worker pool ("Deploy worker pools",
  https://cloud.google.com/run/docs/deploy-worker-pools) running `inferstack work` on the
  Pub/Sub subscription with the GCP target's dead letters (`gcp.pubsub`), at the manual
  instance count `scaling` derives; its own service account holds the GCP target's worker grants.

No binding is project-level: each sits on the service, the subscription, the topic, the
bucket, the repository or the service account it is about. Constructor order (see DESIGN.md):
validate before any child exists; children named `{name}-{role}` parented to this component;
outputs; `register_outputs` last.
"""

from __future__ import annotations

import base64
import json
from dataclasses import asdict
from typing import Any, Final

import pulumi
import pulumi_gcp as gcp

from inferstack.components.cloudrun import container
from inferstack.components.cloudrun.options import CloudRunOptions
from inferstack.components.cloudrun.scaling import (
    ServiceScaling,
    WorkerScaling,
    service_scaling,
    worker_scaling,
)
from inferstack.components.gcp import identity
from inferstack.components.gcp.labels import resource_labels
from inferstack.components.gcp.pubsub import PubSubQueue, pubsub_queue, queue_settings
from inferstack.components.gcp.storage import ResultsLocation
from inferstack.components.planning.plan import DECLARATION_OUTPUT, ServicePlan, target_problems
from inferstack.components.planning.pools import BatchPool, RealtimePool
from inferstack.contract.cloudrun import cloud_run_names, service_url
from inferstack.contract.pods import (
    DEFAULT_PORT,
    LIVE_PATH,
    READY_PATH,
    WORKER_HEALTH_PATH,
    WORKER_METRICS_PORT,
)
from inferstack.contract.queues import queue_uri as worker_queue_uri
from inferstack.errors import Problem, SpecError

TYPE_TOKEN: Final = "inferstack:cloudrun:InferenceStack"
MAX_ACCOUNT_ID: Final = 30
DRAIN_S: Final = 8
"""Cloud Run gives a stopping instance 10 s after SIGTERM: the server drains in 8."""


def account_ids(service: str) -> dict[str, str]:
    """The service accounts' IDs (6-30 characters): runtime, pre-warm, worker."""
    return {role: f"{service[: MAX_ACCOUNT_ID - 8]}-{role}" for role in ("run", "prewarm", "work")}


def prewarm_role_id(service: str) -> str:
    """The custom role's ID (`[a-zA-Z0-9_.]{3,64}`): `inferstack.<service>.prewarm`."""
    return "inferstack." + service.replace("-", "_")[:40] + ".prewarm"


def plan_problems(plan: ServicePlan, options: CloudRunOptions) -> list[Problem]:
    """What this target cannot build for `plan`, with `options`: each with its field and fix."""
    problems = options.problems(plan.spec) + target_problems(plan, "cloudrun")
    if len(plan.spec.name) > 49:
        problems.append(Problem("name", "Cloud Run names allow 49 characters; shorten the name"))
    return problems


def _member(email: pulumi.Input[str]) -> pulumi.Output[str]:
    return pulumi.Output.concat("serviceAccount:", email)


class CloudRunInferenceStack(pulumi.ComponentResource):
    """A GPU inference service on Cloud Run: a GPU service, pre-warm jobs, a worker pool."""

    service_uri: pulumi.Output[str] | None
    """The realtime service's URL (callers need `roles/run.invoker` unless public)."""
    service_name: pulumi.Output[str] | None
    worker_pool: pulumi.Output[str] | None
    subscription: pulumi.Output[str] | None
    dead_letter_subscription: pulumi.Output[str] | None
    results_uri: str | None
    sizing_output: pulumi.Output[dict[str, Any]]
    """The plan's sizing with the Cloud Run scaling derived from it (what the preview prints)."""
    cost_output: pulumi.Output[dict[str, Any]]
    """The plan's monthly cost, lever by lever, at Cloud Run's per-second prices."""
    declaration_output: pulumi.Output[dict[str, Any]]
    """The target and spec the plan was made from, and these options: what the offline tools
    plan again for a program that builds its spec in code (simulate, the declared-day check)."""

    def __init__(
        self,
        name: str,
        plan: ServicePlan,
        options: CloudRunOptions,
        *,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(TYPE_TOKEN, name, {}, opts)
        problems = plan_problems(plan, options)
        if problems:
            raise SpecError(problems, source="CloudRunInferenceStack options")
        self.plan, self.options = plan, options
        self._labels = resource_labels(plan.spec.name)
        self._ids = account_ids(plan.spec.name)
        realtime, batch = plan.realtime, plan.batch
        platform: dict[str, Any] = {}

        self.service_uri = self.service_name = None
        if realtime is not None:
            scaling = service_scaling(plan, realtime, zonal_redundancy=options.gpu_zonal_redundancy)
            service = self._service(name, realtime, scaling)
            self.service_uri, self.service_name = service.uri, service.name
            platform["service"] = asdict(scaling)

        self.worker_pool = self.subscription = self.dead_letter_subscription = None
        self.results_uri = None
        if batch is not None:
            workers = worker_scaling(plan, batch)
            queue = pubsub_queue(
                name,
                queue_settings(plan, batch, options),
                options,
                self._labels,
                pulumi.ResourceOptions(parent=self),
            )
            pool = self._worker_pool(name, batch, workers, queue)
            self.worker_pool = pool.name
            self.subscription = queue.subscription.id
            self.dead_letter_subscription = queue.dead_letter_subscription.id
            platform["worker pool"] = asdict(workers)

        sizing = plan.sizing.to_dict()
        sizing["platform"] = {"Cloud Run": platform}
        self.sizing_output = pulumi.Output.from_input(sizing)
        self.cost_output = pulumi.Output.from_input(plan.cost.to_dict())
        self.declaration_output = pulumi.Output.from_input(
            {**plan.declaration(), "cloudrun": options.model_dump(mode="json")}
        )
        self.register_outputs(
            {
                "sizing": self.sizing_output,
                "cost": self.cost_output,
                DECLARATION_OUTPUT: self.declaration_output,
                "service_uri": self.service_uri,
                "service_name": self.service_name,
                "worker_pool": self.worker_pool,
                "subscription": self.subscription,
                "dead_letter_subscription": self.dead_letter_subscription,
                "results_uri": self.results_uri,
            }
        )

    # -----------------------------------------------------------------------------------------

    def _account(self, name: str, role: str, what: str) -> gcp.serviceaccount.Account:
        return gcp.serviceaccount.Account(
            f"{name}-{role}-identity",
            account_id=self._ids[role],
            project=self.options.project,
            display_name=f"{what} of {self.plan.spec.name}",
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _image_reader(self, name: str) -> None:
        """Cloud Run's service agent pulls the image: reader on that repository only."""
        registry = self.options.registry
        gcp.artifactregistry.RepositoryIamMember(
            f"{name}-image-reader",
            project=registry.project,
            location=registry.location,
            repository=registry.repository,
            role=identity.REGISTRY_READER,
            member=cloud_run_names().service_agent.format(number=self.options.project_number),
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _model_reader(self, name: str, who: str, account: gcp.serviceaccount.Account) -> None:
        """Read the model object in Cloud Storage, nothing else (no grant: not in GCS)."""
        location = identity.model_location(self.plan.spec.model.uri)
        if location is None:
            return
        for grant in identity.model_grants("", self.plan.spec.model.uri):
            self._bucket_grant(f"{name}-{who}-model-reader", location[0], grant, account)

    def _bucket_grant(
        self,
        resource: str,
        bucket: str,
        grant: identity.Grant,
        account: gcp.serviceaccount.Account,
    ) -> gcp.storage.BucketIAMMember:
        condition = (
            gcp.storage.BucketIAMMemberConditionArgs(
                title=grant.condition.title, expression=grant.condition.expression
            )
            if grant.condition is not None
            else None
        )
        return gcp.storage.BucketIAMMember(
            resource,
            bucket=bucket,
            role=grant.role,
            member=_member(account.email),
            condition=condition,
            opts=pulumi.ResourceOptions(parent=account),
        )

    def _service(
        self, name: str, pool: RealtimePool, scaling: ServiceScaling
    ) -> gcp.cloudrunv2.Service:
        names, options, spec = cloud_run_names(), self.options, self.plan.spec
        account = self._account(name, "run", "the Cloud Run service")
        self._model_reader(name, "realtime", account)
        self._image_reader(name)
        gpu = pool.gpu.type
        service = gcp.cloudrunv2.Service(
            f"{name}-realtime",
            name=spec.name,
            project=options.project,
            location=options.region,
            ingress=names.ingress[options.ingress],
            labels=self._labels,
            # Service-level minimum: what the pre-warm jobs change, without a new revision.
            scaling={"min_instance_count": scaling.min_instances.value},
            template={
                "service_account": account.email,
                "max_instance_request_concurrency": scaling.max_concurrency.value,
                "gpu_zonal_redundancy_disabled": not scaling.gpu_zonal_redundancy.value,
                "node_selector": {"accelerator": names.accelerators[gpu]},
                "scaling": {"max_instance_count": scaling.max_instances.value},
                "labels": self._labels,
                "containers": [
                    {
                        "image": options.image,
                        "ports": {"name": "http1", "container_port": DEFAULT_PORT},
                        "envs": [
                            {"name": key, "value": value}
                            for key, value in container.serve_environment(
                                spec, pool.sizing.batch_size.value, DEFAULT_PORT, DRAIN_S
                            ).items()
                        ],
                        "resources": {
                            "limits": {
                                "cpu": str(scaling.cpu.value),
                                "memory": f"{scaling.memory_gib.value}Gi",
                                names.gpu_limit: str(pool.gpu.count),
                            },
                            "cpu_idle": not scaling.cpu_always_allocated.value,
                            "startup_cpu_boost": True,
                        },
                        "startup_probe": {
                            "http_get": {"path": READY_PATH, "port": DEFAULT_PORT},
                            "period_seconds": scaling.startup_period_s,
                            "timeout_seconds": 5,
                            "failure_threshold": scaling.startup_failure_threshold.value,
                        },
                        "liveness_probe": {
                            "http_get": {"path": LIVE_PATH, "port": DEFAULT_PORT},
                            "period_seconds": 10,
                            "timeout_seconds": 5,
                            "failure_threshold": 3,
                        },
                    }
                ],
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[account]),
        )
        self._invokers(name, service)
        if scaling.prewarm:
            self._prewarm(name, service, account, scaling)
        return service

    def _invokers(self, name: str, service: gcp.cloudrunv2.Service) -> None:
        names, options = cloud_run_names(), self.options
        members = list(options.invokers) + ([names.public_member] if options.public else [])
        for index, member in enumerate(members):
            gcp.cloudrunv2.ServiceIamMember(
                f"{name}-invoker-{index}",
                project=options.project,
                location=options.region,
                name=service.name,
                role=names.invoker_role,
                member=member,
                opts=pulumi.ResourceOptions(parent=service),
            )

    def _prewarm(
        self,
        name: str,
        service: gcp.cloudrunv2.Service,
        runtime: gcp.serviceaccount.Account,
        scaling: ServiceScaling,
    ) -> None:
        names, options, spec = cloud_run_names(), self.options, self.plan.spec
        account = self._account(name, "prewarm", "the pre-warm scheduler")
        role = gcp.projects.IAMCustomRole(
            f"{name}-prewarm-role",
            project=options.project,
            role_id=prewarm_role_id(spec.name),
            title=f"inferstack pre-warm of {spec.name}",
            description="read and update one Cloud Run service's minimum instances",
            permissions=list(names.prewarm_permissions),
            opts=pulumi.ResourceOptions(parent=self),
        )
        on_service = gcp.cloudrunv2.ServiceIamMember(
            f"{name}-prewarm-updater",
            project=options.project,
            location=options.region,
            name=service.name,
            role=role.name,
            member=_member(account.email),
            opts=pulumi.ResourceOptions(parent=service),
        )
        act_as = gcp.serviceaccount.IAMMember(
            f"{name}-prewarm-act-as-runtime",
            service_account_id=runtime.name,
            role=names.service_account_user_role,
            member=_member(account.email),
            opts=pulumi.ResourceOptions(parent=runtime),
        )
        url = f"{service_url(options.project, options.region, spec.name)}"
        for job in scaling.prewarm:
            body = {"scaling": {"minInstanceCount": job.min_instances}}
            gcp.cloudscheduler.Job(
                f"{name}-{job.name}",
                name=f"{spec.name}-{job.name}",
                project=options.project,
                region=options.region,
                description=job.reason[:500],
                schedule=job.schedule,
                time_zone=job.timezone,
                http_target={
                    "uri": f"{url}?updateMask={names.min_instances_mask}",
                    "http_method": "PATCH",
                    "body": base64.b64encode(json.dumps(body).encode()).decode(),
                    "headers": {"Content-Type": "application/json"},
                    "oauth_token": {
                        "service_account_email": account.email,
                        "scope": names.scheduler_scope,
                    },
                },
                opts=pulumi.ResourceOptions(parent=self, depends_on=[on_service, act_as]),
            )

    def _worker_pool(
        self, name: str, pool: BatchPool, workers: WorkerScaling, queue: PubSubQueue
    ) -> gcp.cloudrunv2.WorkerPool:
        names, options, spec = cloud_run_names(), self.options, self.plan.spec
        assert options.results_bucket is not None  # noqa: S101 (plan_problems refused it)
        where = ResultsLocation(
            bucket=options.results_bucket,
            prefix=f"{options.results_prefix}/{spec.name}",
            create=False,
            expiry_days=0,
        )
        self.results_uri = where.uri
        account = self._account(name, "work", "the Cloud Run worker pool")
        ready: list[pulumi.Resource] = [account, *queue.agent_bindings]
        for grant in identity.worker_grants("", where):
            resource = f"{name}-worker-{grant.on.replace('_', '-')}-" + grant.role.removeprefix(
                "roles/"
            ).replace(".", "-")
            if grant.on == "subscription":
                ready.append(
                    gcp.pubsub.SubscriptionIAMMember(
                        resource,
                        project=options.project,
                        subscription=queue.subscription.name,
                        role=grant.role,
                        member=_member(account.email),
                        opts=pulumi.ResourceOptions(parent=queue.subscription),
                    )
                )
            elif grant.on == "dead_letter_topic":
                ready.append(
                    gcp.pubsub.TopicIAMMember(
                        resource,
                        project=options.project,
                        topic=queue.dead_letter_topic.name,
                        role=grant.role,
                        member=_member(account.email),
                        opts=pulumi.ResourceOptions(parent=queue.dead_letter_topic),
                    )
                )
            else:
                ready.append(self._bucket_grant(resource, where.bucket, grant, account))
        self._model_reader(name, "worker", account)
        gpu = pool.gpu.type
        queue_uri = worker_queue_uri(
            "pubsub",
            queue_settings(self.plan, pool, options).subscription,
            gcp_project=options.project,
        )
        grace = pool.sizing.termination_grace_seconds.value
        return gcp.cloudrunv2.WorkerPool(
            f"{name}-worker",
            name=f"{spec.name}-worker",
            project=options.project,
            location=options.region,
            launch_stage=names.launch_stage_of_worker_pools,
            labels=self._labels,
            scaling={"manual_instance_count": workers.instances.value},
            template={
                "service_account": account.email,
                "gpu_zonal_redundancy_disabled": not options.gpu_zonal_redundancy,
                "node_selector": {"accelerator": names.accelerators[gpu]},
                "labels": self._labels,
                "containers": [
                    {
                        "image": options.image,
                        "commands": ["inferstack", "work"],
                        "args": [
                            "--queue",
                            queue_uri,
                            "--model",
                            spec.model.uri,
                            "--results",
                            where.uri,
                        ],
                        "envs": [
                            {"name": key, "value": value}
                            for key, value in container.work_environment(
                                spec, pool.sizing.batch_size.value, min(grace, DRAIN_S)
                            ).items()
                        ],
                        "resources": {
                            "limits": {
                                "cpu": "4",
                                "memory": "16Gi",
                                names.gpu_limit: str(pool.gpu.count),
                            }
                        },
                        "startup_probe": {
                            "http_get": {"path": WORKER_HEALTH_PATH, "port": WORKER_METRICS_PORT},
                            "period_seconds": 10,
                            "timeout_seconds": 5,
                            "failure_threshold": max(
                                1, -(-pool.sizing.startup_seconds.value // 10)
                            ),
                        },
                    }
                ],
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=ready),
        )


__all__ = ["TYPE_TOKEN", "CloudRunInferenceStack", "account_ids", "plan_problems"]
