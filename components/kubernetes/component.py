"""`KubernetesInferenceService`: one spec, sized, as workloads and KEDA autoscalers on any cluster.

Needs a cluster with the add-ons `inferstack.components.kubernetes.addons` lists (the NVIDIA
device plugin, KEDA, the KEDA HTTP add-on when the spec scales the realtime pool to zero, a
Prometheus); those `options.addons` marks `install: true` (or `install_keda`) are installed here
as Helm releases at pinned chart versions.
The AWS and GCP components reuse it, handing over their own queue, identities, image and
nodes as `KubernetesBindings`; a plain-Kubernetes stack's bindings come from its options.

It takes a `ServicePlan` (sized once by `plan_service`) and never sizes again: a spec that
cannot work (a hold timeout shorter than the cold start, a budget no batch fits) has already
failed with a `SpecError` naming the field. Constructor order (see DESIGN.md): validate the
options before any child exists; then create the children, named `{name}-{role}` and parented to
this component; then the outputs; `register_outputs` last.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from inferstack.components.kubernetes import addons
from inferstack.components.kubernetes import network as k8s_network
from inferstack.components.kubernetes import scaling as k8s_scaling
from inferstack.components.kubernetes import workloads as k8s_workloads
from inferstack.components.kubernetes.bindings import KubernetesBindings
from inferstack.components.kubernetes.options import KubernetesOptions
from inferstack.components.kubernetes.workloads import Manifest
from inferstack.components.planning.plan import DECLARATION_OUTPUT, ServicePlan
from inferstack.components.planning.pools import BatchPool, Pool, RealtimePool
from inferstack.contract import resource_types
from inferstack.errors import SpecError

TYPE_TOKEN = resource_types.KUBERNETES_SERVICE
ADDON_ROLES: dict[addons.AddOnName, str] = {
    "nvidia_device_plugin": "nvidia-device-plugin",
    "keda": "keda",
    "keda_http_addon": "keda-http",
    "prometheus": "prometheus",
}
"""Each installed add-on's role in its Helm release's resource name (`{name}-{role}`)."""


class KubernetesInferenceService(pulumi.ComponentResource):
    """A GPU inference service on Kubernetes: realtime and batch pools with KEDA autoscaling."""

    service_url: pulumi.Output[str | None]
    """In-cluster URL of the realtime pool (the HTTP add-on proxy when it scales to zero)."""
    realtime_workload: pulumi.Output[str | None]
    """Name of the realtime Deployment, or None without a realtime pool."""
    batch_workload: pulumi.Output[str | None]
    """Name of the batch (queue worker) Deployment, or None without a batch pool."""
    realtime_scaled_object: pulumi.Output[str | None]
    """Name of the realtime pool's KEDA ScaledObject."""
    batch_scaled_object: pulumi.Output[str | None]
    """Name of the batch pool's KEDA ScaledObject."""
    sizing_output: pulumi.Output[dict[str, Any]]
    """The sizing that was applied, every number with its reason."""
    cost_output: pulumi.Output[dict[str, Any]]
    """The plan's monthly cost, naive against configured, lever by lever."""
    declaration_output: pulumi.Output[dict[str, Any]]
    """What the plan was made from (target, spec) and these options: the offline tools plan
    the service again from it (`inferstack simulate` and `tune` on any program)."""

    def __init__(
        self,
        name: str,
        plan: ServicePlan,
        options: KubernetesOptions | None = None,
        *,
        bindings: KubernetesBindings | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(TYPE_TOKEN, name, {}, opts)
        options = options or KubernetesOptions()
        # A cloud target wires its own queue, identities, image and nodes; a plain stack's come
        # from its options.
        bindings = bindings or KubernetesBindings.from_options(options)
        spec = plan.spec
        # Every problem at once, before any child exists.
        problems = options.problems(spec) + bindings.problems(spec)
        if problems:
            raise SpecError(problems, source="KubernetesInferenceService options")
        self.plan = plan
        self.spec = spec
        self.sizing = plan.sizing
        self.options = options
        self.bindings = bindings

        child = pulumi.ResourceOptions(parent=self)
        installed = self._install_addons(name, options, child)
        after_addons = pulumi.ResourceOptions(parent=self, depends_on=installed)

        workloads: dict[str, str] = {}
        scalers: dict[str, str] = {}
        for pool in plan.pools:
            workloads[pool.tier], scalers[pool.tier] = self._pool(name, pool, after_addons)

        self.service_url = pulumi.Output.from_input(k8s_scaling.service_url(spec, options))
        self.realtime_workload = pulumi.Output.from_input(workloads.get("realtime"))
        self.batch_workload = pulumi.Output.from_input(workloads.get("batch"))
        self.realtime_scaled_object = pulumi.Output.from_input(scalers.get("realtime"))
        self.batch_scaled_object = pulumi.Output.from_input(scalers.get("batch"))
        self.sizing_output = pulumi.Output.from_input(self.sizing.to_dict())
        self.cost_output = pulumi.Output.from_input(plan.cost.to_dict())
        self.declaration_output = pulumi.Output.from_input(
            {**plan.declaration(), "kubernetes": options.model_dump(mode="json")}
        )
        self.register_outputs(
            {
                "service_url": self.service_url,
                "realtime_workload": self.realtime_workload,
                "batch_workload": self.batch_workload,
                "realtime_scaled_object": self.realtime_scaled_object,
                "batch_scaled_object": self.batch_scaled_object,
                "sizing": self.sizing_output,
                "cost": self.cost_output,
                DECLARATION_OUTPUT: self.declaration_output,
            }
        )

    # -----------------------------------------------------------------------------------------

    def _install_addons(
        self, name: str, options: KubernetesOptions, child: pulumi.ResourceOptions
    ) -> list[pulumi.Resource]:
        """The add-ons this stack installs (`options.installs`), each at its pinned chart.

        KEDA's releases go to `keda_namespace`, kube-prometheus-stack to `prometheus_namespace`
        under `prometheus_release` (the name the PodMonitor's `release` label carries); the HTTP
        add-on waits for KEDA, whose CRDs it needs.
        """
        installed: dict[str, pulumi.Resource] = {}
        for addon, chart in addons.CHARTS.items():
            if not options.installs(addon):
                continue
            release, namespace = chart.release, chart.namespace
            values: dict[str, Any] = {}
            depends: list[pulumi.Resource] = []
            if addon in ("keda", "keda_http_addon"):
                namespace = options.keda_namespace
                depends = (
                    [installed["keda"]]
                    if addon == "keda_http_addon" and "keda" in installed
                    else []
                )
            elif addon == "prometheus":
                namespace, release = options.prometheus_namespace, options.prometheus_release
            elif addon == "nvidia_device_plugin":
                values = dict(addons.DEVICE_PLUGIN_VALUES)
            installed[addon] = k8s.helm.v3.Release(
                f"{name}-{ADDON_ROLES[addon]}",
                name=release,
                chart=chart.chart,
                version=chart.version,
                namespace=namespace,
                create_namespace=True,
                repository_opts={"repo": chart.repository},
                values=values,
                opts=pulumi.ResourceOptions(parent=self, depends_on=depends),
            )
        return list(installed.values())

    def _pool(self, name: str, pool: Pool, base: pulumi.ResourceOptions) -> tuple[str, str]:
        """One pool: its identity, Deployment, NetworkPolicy and autoscaler, plus what its tier
        needs besides (the realtime Service, or the batch queue's KEDA authentication).

        Returns the Deployment's and the ScaledObject's names.
        """
        spec, sizing, options, bindings = self.spec, self.sizing, self.options, self.bindings
        prefix = f"{name}-{pool.tier}"
        account = _service_account(
            f"{prefix}-sa", k8s_workloads.service_account(spec, pool.tier, options, bindings), base
        )
        deployment = _deployment(
            prefix,
            k8s_workloads.deployment(spec, sizing, pool, options, bindings),
            pulumi.ResourceOptions.merge(base, pulumi.ResourceOptions(depends_on=[account])),
        )
        if isinstance(pool, RealtimePool):
            scaler_deps = [deployment, *self._realtime_extras(name, pool, base)]
        else:
            scaler_deps = [deployment, *self._batch_extras(name, pool, base)]
        if options.network_policy:
            _network_policy(
                f"{prefix}-netpol",
                k8s_network.network_policy(spec, pool, options, bindings),
                base,
            )
        manifest = k8s_scaling.scaled_object(spec, sizing, pool, options, bindings)
        custom_resource(
            f"{prefix}-scaler",
            manifest,
            pulumi.ResourceOptions.merge(base, pulumi.ResourceOptions(depends_on=scaler_deps)),
        )
        return k8s_workloads.workload_name(spec, pool.tier), manifest["metadata"]["name"]

    def _realtime_extras(
        self, name: str, pool: RealtimePool, base: pulumi.ResourceOptions
    ) -> list[pulumi.Resource]:
        """The realtime Service, its PDB and scraping, and the wake-from-zero route.

        Returns what the autoscaler must wait for.
        """
        spec, options = self.spec, self.options
        service = _service(
            f"{name}-realtime-service", k8s_workloads.realtime_service(spec, options), base
        )
        _pdb(f"{name}-realtime-pdb", k8s_workloads.realtime_pdb(spec, options), base)
        scrape = self.bindings.scrape
        scrape_object = k8s_workloads.scrape_object(spec, options, scrape)
        if scrape_object is not None:
            # Named by mode: switching modes replaces one kind of object with the other.
            role = "podmonitor" if scrape.mode == "podmonitor" else "podmonitoring"
            custom_resource(f"{name}-realtime-{role}", scrape_object, base)
        waits: list[pulumi.Resource] = []
        authentication = k8s_scaling.metrics_trigger_authentication(spec, options, self.bindings)
        if authentication is not None:
            waits.append(custom_resource(f"{name}-metrics-auth", authentication, base))
        if not pool.spec.scale_to_zero:
            return waits
        _service(f"{name}-proxy", k8s_scaling.proxy_service(spec, options), base)
        route = custom_resource(
            f"{name}-realtime-route",
            k8s_scaling.interceptor_route(spec, self.sizing, pool, options),
            pulumi.ResourceOptions.merge(base, pulumi.ResourceOptions(depends_on=[service])),
        )
        # The add-on's scaler answers KEDA with an empty metric spec (and KEDA falls back to
        # CPU) if the ScaledObject arrives before its InterceptorRoute.
        return [*waits, route]

    def _batch_extras(
        self, name: str, pool: BatchPool, base: pulumi.ResourceOptions
    ) -> list[pulumi.Resource]:
        """KEDA's pod-identity authentication for a cloud queue; what the autoscaler waits for."""
        if not k8s_scaling.needs_trigger_authentication(pool, self.bindings):
            return []
        manifest = k8s_scaling.trigger_authentication(self.spec, pool, self.options, self.bindings)
        return [custom_resource(f"{name}-queue-auth", manifest, base)]


def _deployment(
    name: str, manifest: Manifest, opts: pulumi.ResourceOptions
) -> k8s.apps.v1.Deployment:
    return k8s.apps.v1.Deployment(
        name, metadata=manifest["metadata"], spec=manifest["spec"], opts=opts
    )


def _service(name: str, manifest: Manifest, opts: pulumi.ResourceOptions) -> k8s.core.v1.Service:
    return k8s.core.v1.Service(
        name, metadata=manifest["metadata"], spec=manifest["spec"], opts=opts
    )


def _service_account(
    name: str, manifest: Manifest, opts: pulumi.ResourceOptions
) -> k8s.core.v1.ServiceAccount:
    return k8s.core.v1.ServiceAccount(
        name,
        metadata=manifest["metadata"],
        automount_service_account_token=manifest["automountServiceAccountToken"],
        opts=opts,
    )


def _pdb(
    name: str, manifest: Manifest, opts: pulumi.ResourceOptions
) -> k8s.policy.v1.PodDisruptionBudget:
    return k8s.policy.v1.PodDisruptionBudget(
        name, metadata=manifest["metadata"], spec=manifest["spec"], opts=opts
    )


def _network_policy(
    name: str, manifest: Manifest, opts: pulumi.ResourceOptions
) -> k8s.networking.v1.NetworkPolicy:
    return k8s.networking.v1.NetworkPolicy(
        name, metadata=manifest["metadata"], spec=manifest["spec"], opts=opts
    )


def custom_resource(
    name: str, manifest: Manifest, opts: pulumi.ResourceOptions
) -> k8s.apiextensions.CustomResource:
    """A custom resource (KEDA, Karpenter, ComputeClass ...) from its wire-form manifest."""
    return k8s.apiextensions.CustomResource(
        name,
        api_version=manifest["apiVersion"],
        kind=manifest["kind"],
        metadata=manifest["metadata"],
        spec=manifest["spec"],
        opts=opts,
    )


__all__ = ["TYPE_TOKEN", "KubernetesInferenceService"]
