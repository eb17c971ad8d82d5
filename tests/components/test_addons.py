"""The cluster add-ons a stack needs, how it declares them, and `check`'s warning (issue 27 item 6).

Sources: the NVIDIA device plugin chart's default node affinity (NVIDIA/k8s-device-plugin
deployments/helm/nvidia-device-plugin/values.yaml, chart 0.20.0, commit 1b826acc), copied below
as the three terms it lists; GKE installs its own device plugin on GPU node pools (Google Cloud,
"About GPUs in GKE": the GPU device drivers and the device plugin are managed on GPU nodes);
Bottlerocket's NVIDIA variants ship the device plugin (bottlerocket-os, "NVIDIA GPUs" docs).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from inferstack.cli import main
from inferstack.components.aws import karpenter
from inferstack.components.kubernetes.addons import (
    CHARTS,
    AddOn,
    ClusterAddOns,
    missing_addons,
    needed_addons,
)
from inferstack.components.kubernetes.options import KubernetesOptions, parse_options
from inferstack.components.planning.plan import plan_service
from inferstack.contract.labels import GPU_PRESENT_LABEL, GPU_PRESENT_VALUE
from inferstack.offline.stack_config import from_values
from inferstack.profile import parse_profile
from tests.components.factories import PROFILE, make_spec
from tests.offline.stacks import REPO, project_with, stack_document

DEVICE_PLUGIN_AFFINITY_TERMS = (
    ("feature.node.kubernetes.io/pci-10de.present", "true"),
    ("feature.node.kubernetes.io/cpu-model.vendor_id", "NVIDIA"),
    ("nvidia.com/gpu.present", "true"),
)
"""The chart's `affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution` terms
(each `In` one value): a node matching none never runs the plugin, so never advertises GPUs."""
SHIPPED = ("dev", "aws-prod", "gcp-prod", "scale-to-zero")


def test_an_add_on_is_either_installed_or_present() -> None:
    assert AddOn(install=True).present is None
    assert AddOn(present="2.19.0").install is False
    for wrong in ({}, {"install": True, "present": "2.19.0"}):
        with pytest.raises(ValueError, match="exactly one of the two"):
            AddOn.model_validate(wrong)


def test_karpenter_is_installed_by_the_aws_target_not_here() -> None:
    options = KubernetesOptions(addons=ClusterAddOns(karpenter=AddOn(install=True)))
    [problem] = options.problems(make_spec())
    assert problem.path == "inferstack:kubernetes.addons.karpenter.install"
    assert "install_karpenter" in problem.message


def test_install_keda_and_a_present_keda_contradict() -> None:
    options = parse_options(
        {"install_keda": True, "addons": {"keda": {"present": "2.19.0"}}},
        source="inferstack:kubernetes",
    )
    [problem] = options.problems(make_spec())
    assert problem.path == "inferstack:kubernetes.addons.keda.present"


def test_needs_follow_the_target_and_the_spec() -> None:
    spec = make_spec()
    names = {target: [n.name for n in needed_addons(spec, target, "podmonitor")]
             for target in ("kubernetes", "aws", "gcp", "sagemaker")}  # fmt: skip
    assert names["kubernetes"] == ["nvidia_device_plugin", "keda", "prometheus"]
    assert names["aws"] == ["nvidia_device_plugin", "keda", "prometheus", "karpenter"]
    assert names["gcp"] == ["keda", "prometheus"]  # GKE's own device plugin
    assert names["sagemaker"] == []
    bottlerocket = needed_addons(spec, "aws", "podmonitor", ami_family="bottlerocket")
    assert "nvidia_device_plugin" not in [n.name for n in bottlerocket]
    zero = make_spec(realtime__scale_to_zero=True, realtime__allow_cold_start_over_budget=True)
    assert "keda_http_addon" in [n.name for n in needed_addons(zero, "kubernetes", "podmonitor")]
    batch_only = make_spec(realtime=None)
    assert "prometheus" not in [n.name for n in needed_addons(batch_only, "gcp", "podmonitor")]


def test_every_installable_add_on_is_pinned() -> None:
    for chart in CHARTS.values():
        assert chart.version[0].isdigit(), chart
        assert chart.repository.startswith("https://"), chart


@pytest.mark.parametrize("stack", SHIPPED)
def test_shipped_stacks_declare_every_add_on_they_need(stack: str) -> None:
    config_values = stack_document(stack)["config"]
    values = {key.removeprefix("inferstack:"): value for key, value in config_values.items()}
    config = from_values(values, project_dir=REPO)
    options, aws = config.kubernetes, config.aws
    mode = options.metrics or {"gcp": "pod_monitoring"}.get(config.target, "podmonitor")
    needs = needed_addons(
        config.spec, config.target, mode, ami_family=aws.ami_family if aws else None
    )
    assert needs
    installed = bool(aws and aws.install_karpenter)
    assert missing_addons(needs, options.addons, karpenter_installed=installed) == []


def test_check_warns_about_an_add_on_neither_installed_nor_present(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document: dict[str, Any] = stack_document("dev")
    del document["config"]["inferstack:kubernetes"]["addons"]["keda"]
    project = project_with(tmp_path, document)
    assert main(["check", "--project-dir", str(project), "--stack", "broken"]) == 0
    out = capsys.readouterr().out
    assert "warning: cluster add-on keda (runs the pools' ScaledObjects)" in out
    assert "inferstack:kubernetes.addons.keda.install: true" in out
    assert "add-on prometheus" not in out  # declared in the copy


def test_karpenter_gpu_nodes_satisfy_the_device_plugin_affinity() -> None:
    assert (GPU_PRESENT_LABEL, GPU_PRESENT_VALUE) in DEVICE_PLUGIN_AFFINITY_TERMS
    spec = make_spec()
    plan = plan_service(spec, parse_profile(PROFILE), target="aws")
    for pool in plan.pools:
        labels = karpenter.node_pool(plan, pool)["spec"]["template"]["metadata"]["labels"]
        assert any(labels.get(key) == value for key, value in DEVICE_PLUGIN_AFFINITY_TERMS)
