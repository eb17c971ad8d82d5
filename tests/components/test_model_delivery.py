"""How the model reaches the pods, as the spec and the plan see it: URIs a pod can reach, the
cache volume, and the download term of the cold start with its reason."""

from __future__ import annotations

import copy

import pytest

from inferstack.components.planning.model_delivery import DEFAULT_DOWNLOAD_MB_PER_S
from inferstack.components.planning.plan import plan_service
from inferstack.profile import Profile, parse_profile
from tests.components.factories import PROFILE, make_spec, spec_data
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
