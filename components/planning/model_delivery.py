"""How the model reaches the pods: the spec's cache volume, the URI rules, and the download term
the plan adds to the cold start.

The runtime image fetches a remote model at pod start (`inferstack.runtime.model_source`), so a
pod that needs a new node waits for node, image, download, load and warm-up. The download is
`model_bytes` (measured by `inferstack profile`) over a bandwidth: `model.download_mb_per_s`
when declared, else `DEFAULT_DOWNLOAD_MB_PER_S`. The plan puts it into the profile's cold start
(`with_model_download`), so every consumer - pre-warm lead, startup probe, the scale-to-zero
checks, the simulator - counts it once, the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Literal

from pydantic import model_validator

from inferstack.components.planning.validation import StrictModel
from inferstack.contract.images import GPU_FLAVOUR, image_flavour, runtime_image
from inferstack.contract.model_uris import (
    SHA256_FORM,
    ModelUriError,
    is_sha256,
    local_path_problem,
    parse_remote,
)
from inferstack.profile import ColdStartPart, Profile

if TYPE_CHECKING:
    from inferstack.components.planning.spec import ModelSource

DEFAULT_DOWNLOAD_MB_PER_S: Final = 100.0
"""MB/s a GPU node reads one object at: AWS documents 85-90 MB/s per S3 connection and boto3's
transfer opens 10 (so more is possible); GCS and the Hub's CDN are of the same order per stream.
Conservative on purpose: a cold start underestimated starts pre-warm too late."""
_MB: Final = 1_000_000


class ModelCache(StrictModel):
    """Where the pod keeps the fetched model."""

    volume: Literal["empty_dir", "claim"] = "empty_dir"
    """`empty_dir`: a fresh folder per pod (every start downloads); `claim`: an existing
    PersistentVolumeClaim (a node-local or shared volume) that keeps the file across restarts,
    reused when its sha256 matches model.sha256."""
    claim_name: str | None = None
    """The PersistentVolumeClaim to mount (volume: claim); ReadWriteMany, or ReadWriteOnce on
    one node, as the pool's replicas share it."""
    size_limit: str | None = None
    """emptyDir size limit, a Kubernetes quantity such as 20Gi (default: none, the node's
    ephemeral storage bounds it)."""

    @model_validator(mode="after")
    def _claim_named(self) -> ModelCache:
        if (self.volume == "claim") != (self.claim_name is not None):
            raise ValueError(
                "model.cache.claim_name names the PersistentVolumeClaim of volume: claim, and "
                "only then; set both or neither"
            )
        if self.size_limit is not None and self.volume != "empty_dir":
            raise ValueError(
                "model.cache.size_limit is for volume: empty_dir; the claim sizes itself"
            )
        return self


def uri_problem(uri: str) -> str | None:
    """Why the pods could not get the model `uri` names, the digest aside (None: they can)."""
    problem = local_path_problem(uri)
    if problem is None:
        try:
            parse_remote(uri)
        except ModelUriError as error:
            problem = str(error)
    return problem


def digest_problem(uri: str | None, sha256: str | None) -> str | None:
    """Why `sha256` does not do for `uri` (None: it does); `uri` None when it was refused."""
    if sha256 is not None and not is_sha256(sha256):
        return f"{sha256!r} is not a sha256 digest; write {SHA256_FORM}"
    if uri is not None and sha256 is None and uri.startswith("https://"):
        return (
            f"model.uri {uri!r} is an https URL: what a URL serves can change, so the digest of "
            f"the file that was profiled is required; add model.sha256 ({SHA256_FORM})"
        )
    return None


def is_fetched(uri: str) -> bool:
    """Whether the runtime fetches `uri` at pod start (s3, gs, hf, https)."""
    try:
        return parse_remote(uri) is not None
    except ValueError:
        return False


def download_part(model: ModelSource, profile: Profile) -> ColdStartPart | None:
    """The cold start's download of a fetched model, with its reason (None: nothing fetched)."""
    if not is_fetched(model.uri):
        return None
    declared = model.download_mb_per_s
    rate = declared or DEFAULT_DOWNLOAD_MB_PER_S
    why = "model.download_mb_per_s" if declared else "default, declare model.download_mb_per_s"
    if profile.model_bytes is None:
        return ColdStartPart(
            seconds=0.0,
            source="assumed",
            note="model size unknown (a profile older than model_bytes): profile the model again "
            "with `inferstack profile` to count its download",
        )
    seconds = profile.model_bytes / (rate * _MB)
    return ColdStartPart(
        seconds=round(seconds, 2),
        source="assumed",
        note=f"{profile.model_bytes / _MB:,.0f} MB / {rate:g} MB/s ({why})",
    )


def with_model_download(model: ModelSource, profile: Profile) -> Profile:
    """`profile` with the download in its cold start, when the model is fetched."""
    part = download_part(model, profile)
    if part is None:
        return profile
    cold = profile.cold_start.model_copy(update={"model_download": part})
    return profile.model_copy(update={"cold_start": cold})


def image_warnings(image: str) -> list[str]:
    """A warning when the runtime image is the CPU flavour: every pool runs on GPUs with
    `INFERSTACK_DEVICE=cuda`, which a CPU build of torch refuses at start."""
    flavour = image_flavour(image)
    if flavour is None or flavour == GPU_FLAVOUR:
        return []
    return [
        f"image: {image} is the {flavour} flavour, but the pools run on GPUs with device cuda: "
        f"its pods would stop at start ('this torch is a CPU build'); use the {GPU_FLAVOUR} "
        f"image (e.g. {runtime_image(GPU_FLAVOUR)}, `make image-gpu`)"
    ]
