"""How the model reaches the pods, as the spec and the plan see it: URIs a pod can reach, the
cache volume, and the download term of the cold start with its reason."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import pytest

from inferstack.components.kubernetes.bindings import KubernetesBindings
from inferstack.components.kubernetes.options import KubernetesOptions
from inferstack.components.kubernetes.workloads import deployment
from inferstack.components.planning.model_delivery import DEFAULT_DOWNLOAD_MB_PER_S
from inferstack.components.planning.plan import plan_service
from inferstack.contract.env import ENV_MODEL, ENV_MODEL_CACHE, ENV_MODEL_SHA256
from inferstack.contract.model_uris import MODEL_CACHE_MOUNT
from inferstack.profile import Profile, parse_profile
from inferstack.runtime.server.settings import ServerSettings
from inferstack.runtime.settings import resolve
from inferstack.runtime.worker.settings import WorkerSettings
from tests.components.downward import resolved_env
from tests.components.factories import PROFILE, make_spec, spec_data
from tests.components.schemas import validate_kubernetes
from tests.components.test_spec import assert_one_problem, problems_of

URI = "s3://models/embedder/v3.pt"
DIGEST = "a" * 64
COMMIT = "0123456789abcdef0123456789abcdef01234567"
SIZE = 2_000_000_000  # 2 GB: 20 s at the default 100 MB/s


def _profile(model_bytes: int | None = SIZE, uri: str = URI) -> Profile:
    data = copy.deepcopy(PROFILE)
    data["model"] = uri
    if model_bytes is not None:
        data["model_bytes"] = model_bytes
    return parse_profile(data)


def _model(**fields: object) -> dict[str, object]:
    return {"uri": URI, "profile": "profiles/embedder.json", **fields}


@pytest.mark.parametrize("uri", ["/home/me/model.pt", "model.pt", "file:///home/me/model.pt"])
def test_a_local_path_is_refused_at_model_uri_with_both_fixes(uri: str) -> None:
    assert_one_problem(
        spec_data(model=_model(uri=uri)),
        "model.uri",
        "no pod has",
        "scripts/image.sh build --model PATH",
        "file:///opt/inferstack/model/",
        "s3://BUCKET/KEY",
    )


@pytest.mark.parametrize(
    ("model", "path", "fragment"),
    [
        (_model(uri="https://example.com/m.pt"), "model.sha256", "add model.sha256"),
        (_model(sha256="ABC"), "model.sha256", "is not a sha256 digest"),
        (_model(uri="hf://org/repo/m.pt"), "model.uri", "pin a commit"),
        (_model(uri="s3://only-a-bucket"), "model.uri", "use s3://BUCKET/KEY"),
        (_model(cache={"volume": "claim"}), "model.cache", "claim_name names the"),
        (_model(cache={"volume": "claim", "claim_name": "c", "size_limit": "1Gi"}), "model.cache",
         "size_limit is for volume: empty_dir"),
        (_model(download_mb_per_s=0), "model.download_mb_per_s", "greater than 0"),
    ],
)  # fmt: skip
def test_each_delivery_rule_names_its_field(
    model: dict[str, object], path: str, fragment: str
) -> None:
    assert_one_problem(spec_data(model=model), path, fragment)


@pytest.mark.parametrize(
    "model",
    [
        _model(),
        _model(uri="gs://m/m.pt2", sha256=DIGEST, cache={"volume": "claim", "claim_name": "c"}),
        _model(uri=f"hf://org/repo@{COMMIT}/m.pt"),
        _model(uri="https://example.com/m.pt", sha256=DIGEST),
        _model(uri="file:///opt/inferstack/model/m.pt"),
        {"uri": "builtin://mlp"},
    ],
)
def test_what_a_pod_can_reach_passes(model: dict[str, object]) -> None:
    assert make_spec(model=model).model.uri == model["uri"]


def test_a_local_path_is_listed_with_the_other_problems_in_one_run() -> None:
    problems = problems_of(spec_data(model=_model(uri="./m.pt"), name="BAD"))
    assert sorted(problem.split(":")[0] for problem in problems) == ["model.uri", "name"]


def test_the_plan_adds_the_download_to_the_cold_start_with_its_reason() -> None:
    spec = make_spec(model=_model())
    plan = plan_service(spec, _profile())
    cold = plan.sizing.cold_start_seconds
    assert cold.value == 180 + 20  # node 90 + image 60 + download 20 + load 20 + warm-up 10
    assert "download 20 s (2,000 MB / 100 MB/s (default, declare model.download_mb_per_s))" in (
        cold.reason
    )
    assert plan.profile.cold_start.pod_seconds == 50
    realtime = plan.sizing.realtime
    assert realtime is not None
    assert "download + measured model load + warm-up (50.0 s)" in realtime.startup_seconds.reason


def test_a_declared_bandwidth_replaces_the_default() -> None:
    spec = make_spec(model=_model(download_mb_per_s=400))
    cold = plan_service(spec, _profile()).sizing.cold_start_seconds
    assert cold.value == 185
    assert "download 5 s (2,000 MB / 400 MB/s (model.download_mb_per_s))" in cold.reason
    assert DEFAULT_DOWNLOAD_MB_PER_S == 100


def test_an_unknown_size_says_to_profile_again_and_adds_nothing() -> None:
    plan = plan_service(make_spec(model=_model()), _profile(model_bytes=None))
    cold = plan.sizing.cold_start_seconds
    assert cold.value == 180
    assert "model size unknown" in cold.reason
    assert "inferstack profile" in cold.reason


def test_a_model_in_the_image_or_built_in_downloads_nothing() -> None:
    baked = "file:///opt/inferstack/model/m.pt"
    plan = plan_service(make_spec(model=_model(uri=baked)), _profile(uri=baked))
    assert plan.sizing.cold_start_seconds.value == 180
    assert "download" not in plan.sizing.cold_start_seconds.reason


# ---------------------------------------------------------------------------------------------
# What the pods carry: the fetch step's settings and its volume, read back by the runtime


def _deployments(model: dict[str, object]) -> list[dict[str, Any]]:
    spec = make_spec(model=model)
    plan = plan_service(spec, _profile(uri=str(model["uri"])))
    options = KubernetesOptions()
    bindings = KubernetesBindings.from_options(options)
    bindings = replace(
        bindings, queue=replace(bindings.queue, results_uri="s3://embedder-results/out")
    )
    return [deployment(spec, plan.sizing, pool, options, bindings) for pool in plan.pools]


def test_a_fetched_model_gets_its_cache_volume_digest_and_folder_in_every_pool() -> None:
    manifests = _deployments(_model(sha256=DIGEST))
    assert len(manifests) == 2
    for manifest in manifests:
        validate_kubernetes(manifest)
        pod = manifest["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        env = resolved_env(container)
        assert env[ENV_MODEL_SHA256] == DIGEST
        assert env[ENV_MODEL_CACHE] == MODEL_CACHE_MOUNT
        assert {"name": "model-cache", "emptyDir": {}} in pod["volumes"]
        assert {"name": "model-cache", "mountPath": MODEL_CACHE_MOUNT} in container["volumeMounts"]
        # The runtime reads these under the names written (the settings of `serve` / `work`).
        args = container.get("args", [])
        flags = dict(zip(args[::2], args[1::2], strict=True))
        model_uri = env.get(ENV_MODEL) or flags["--model"]
        assert model_uri == URI
        settings = resolve(
            ServerSettings if container["command"][1] == "serve" else WorkerSettings,
            {"model": model_uri, "queue": "sqs://jobs", "results": "s3://r/out"}
            if container["command"][1] == "work"
            else {"model": model_uri},
            environ=env,
        )
        assert (settings.model_sha256, settings.model_cache) == (DIGEST, MODEL_CACHE_MOUNT)


def test_a_claim_cache_mounts_the_named_claim() -> None:
    cache = {"volume": "claim", "claim_name": "model-cache-rwx"}
    for manifest in _deployments(_model(cache=cache)):
        validate_kubernetes(manifest)
        volumes = manifest["spec"]["template"]["spec"]["volumes"]
        assert {
            "name": "model-cache",
            "persistentVolumeClaim": {"claimName": "model-cache-rwx"},
        } in volumes


def test_an_empty_dir_size_limit_is_rendered() -> None:
    (manifest, _) = _deployments(_model(cache={"size_limit": "20Gi"}))
    volumes = manifest["spec"]["template"]["spec"]["volumes"]
    assert {"name": "model-cache", "emptyDir": {"sizeLimit": "20Gi"}} in volumes


def test_a_model_that_is_not_fetched_gets_no_cache() -> None:
    for manifest in _deployments({"uri": "builtin://mlp"}):
        pod = manifest["spec"]["template"]["spec"]
        assert [volume["name"] for volume in pod["volumes"]] == ["scratch"]
        env = {item["name"] for item in pod["containers"][0]["env"]}
        assert not {ENV_MODEL_SHA256, ENV_MODEL_CACHE} & env


@pytest.mark.parametrize(
    ("image", "warned"),
    [
        ("localhost/inferstack-runtime:cpu", True),
        ("ghcr.io/inferstack/runtime:0.1.0-cpu@sha256:" + "b" * 64, True),
        ("ghcr.io/inferstack/runtime:0.1.0-cuda", False),
        ("ghcr.io/inferstack/runtime:0.1.0", False),  # names no flavour: not judged
    ],
)
def test_a_cpu_image_for_gpu_pools_is_warned_about(image: str, warned: bool) -> None:
    plan = plan_service(make_spec(image=image), parse_profile(PROFILE))
    found = [w for w in plan.sizing.warnings if w.startswith("image: ")]
    assert bool(found) == warned, plan.sizing.warnings
    if warned:
        assert "use the cuda image (e.g. ghcr.io/inferstack/runtime:0.1.0-cuda" in found[0]
