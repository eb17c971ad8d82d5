"""Every string Cloud Run, Cloud Scheduler and IAM interpret, checked against upstream sources.

Where pulumi-gcp (generated from Google's API and its Terraform provider) spells a value, the test
reads it from the installed package's own source: the v2 Service's ingress enum, its GPU example
(accelerator `nvidia-l4`, 4 CPU, 16Gi, `nvidia.com/gpu` "1", `gpu_zonal_redundancy_disabled`),
the worker pool's launch stages, the invoker role's `allUsers` member, Cloud Scheduler's default
OAuth scope. The rest is quoted from Google's pages, cited beside each:
- https://cloud.google.com/run/docs/configuring/services/gpu ("For L4 GPUs, you must use a
  minimum of 4 CPU and 16 GiB of memory"; regions us-central1, us-east4, europe-west1,
  europe-west4, asia-southeast1);
- https://cloud.google.com/run/docs/about-instance-autoscaling ("to maintain instance concurrency
  at 60% of the maximum concurrency over a one minute window");
- https://cloud.google.com/run/docs/about-concurrency ("You can increase this to a maximum of
  1,000");
- https://cloud.google.com/run/docs/reference/iam/roles (`roles/run.invoker`,
  `roles/run.developer` holds `run.services.get` and `run.services.update`);
- https://cloud.google.com/run/docs/configuring/workerpools/manual-scaling (worker pools scale
  manually: "all the instances that you requested are billed as active instances").
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap

import pulumi_gcp.cloudrunv2.service as service_module
import pulumi_gcp.cloudrunv2.service_iam_member as iam_module
import pulumi_gcp.cloudrunv2.worker_pool as worker_pool_module
import pulumi_gcp.cloudscheduler._inputs as scheduler_inputs

from inferstack.components.cloudrun import scaling
from inferstack.components.planning.clouds import CLOUDRUN, CLOUDRUN_L4_INSTANCE
from inferstack.contract.cloudrun import cloud_run_names, service_url

NAMES = cloud_run_names()


def _gpu_example() -> str:
    source = inspect.getsource(service_module)
    start = source.index("### Cloudrunv2 Service Gpu")
    return source[start : source.index("```\n", source.index("```python", start) + 10)]


def test_ingress_values_are_the_v2_enum() -> None:
    source = inspect.getsource(service_module)
    (line,) = {
        m.group(1)
        for m in re.finditer(r"Possible values are: (`INGRESS_TRAFFIC_ALL`[^\n]*)", source)
    }
    enum = set(re.findall(r"`([A-Z_]+)`", line))
    assert set(NAMES.ingress.values()) == enum


def test_gpu_service_strings_match_pulumi_gcps_gpu_example() -> None:
    example = _gpu_example()
    code = textwrap.dedent(example[example.index("```python\n") + 10 :])
    call = ast.parse(code).body[-1]
    assert isinstance(call, ast.Assign)
    assert isinstance(call.value, ast.Call)
    template = next(k.value for k in call.value.keywords if k.arg == "template")
    literal = ast.literal_eval(template)
    (container,) = literal["containers"]
    limits = container["resources"]["limits"]
    assert NAMES.gpu_limit in limits
    assert limits[NAMES.gpu_limit] == "1"
    assert literal["node_selector"] == {"accelerator": NAMES.accelerators["nvidia-l4"]}
    assert "gpu_zonal_redundancy_disabled" in literal
    # The example runs the least an L4 takes, as the GPU page says (4 CPU, 16 GiB).
    assert limits["cpu"] == str(NAMES.min_cpu_with_gpu["nvidia-l4"]) == str(scaling.CPU)
    assert limits["memory"] == f"{NAMES.min_memory_gib_with_gpu['nvidia-l4']}Gi"
    assert NAMES.min_memory_gib_with_gpu["nvidia-l4"] == scaling.MEMORY_GIB


def test_every_offered_gpu_has_an_accelerator_value() -> None:
    assert set(NAMES.accelerators) == set(CLOUDRUN.machines)
    assert CLOUDRUN.machines["nvidia-l4"].priced.name == CLOUDRUN_L4_INSTANCE


def test_worker_pool_launch_stage_is_one_pulumi_gcp_accepts() -> None:
    source = inspect.getsource(worker_pool_module)
    stages = re.search(r"Possible values are: (`UNIMPLEMENTED`[^\n]*)", source)
    assert stages is not None
    assert NAMES.launch_stage_of_worker_pools in re.findall(r"`([A-Z_]+)`", stages.group(1))


def test_public_member_and_invoker_role() -> None:
    source = inspect.getsource(iam_module)
    assert f"**{NAMES.public_member}**: A special identifier that represents anyone" in source
    # https://cloud.google.com/run/docs/reference/iam/roles: "Cloud Run Invoker (roles/run.invoker)"
    assert NAMES.invoker_role == "roles/run.invoker"


def test_scheduler_scope_is_the_cloud_platform_scope() -> None:
    source = inspect.getsource(scheduler_inputs)
    assert f'"{NAMES.scheduler_scope}" will be used' in source


def test_prewarm_permissions_are_a_subset_of_run_developer() -> None:
    # https://cloud.google.com/run/docs/reference/iam/roles: Cloud Run Developer holds
    # run.services.get and run.services.update (among others); the custom role keeps those two.
    assert NAMES.prewarm_permissions == ("run.services.get", "run.services.update")
    assert all(p.startswith("run.services.") for p in NAMES.prewarm_permissions)


def test_admin_api_address_and_mask() -> None:
    # https://cloud.google.com/run/docs/reference/rest/v2/projects.locations.services/patch:
    # PATCH https://run.googleapis.com/v2/{service.name=projects/*/locations/*/services/*}
    assert service_url("p-1234", "us-central1", "svc") == (
        "https://run.googleapis.com/v2/projects/p-1234/locations/us-central1/services/svc"
    )
    # ServiceScaling.minInstanceCount, a service-level field (no new revision).
    assert NAMES.min_instances_mask == "scaling.minInstanceCount"


def test_autoscaling_constants_are_the_documented_ones() -> None:
    assert scaling.CONCURRENCY_TARGET == 0.6
    assert scaling.MAX_CONCURRENCY == 1000
