"""Container image references: `[registry/]repository[:tag][@sha256:<64 hex>]`.

One parser for the spec and options (which accept a digest wherever an image is set), the
components that derive a registry address from the shipped image, and the policy that advises
pinning inference images by digest (a tag can be moved; a digest names one image forever).

The runtime image comes in two flavours built from one Containerfile, and its tag says which:
`<version>-cuda` (torch's CUDA build and the NVIDIA libraries: what every GPU pool runs, and the
spec's default) and `<version>-cpu` (torch's CPU build: tests, laptops, `--device cpu`).
`scripts/image.sh` tags its local builds `:cpu` and `:cuda` by the same names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

DIGEST_ALGORITHM: Final = "sha256"
RUNTIME_REPOSITORY: Final = "ghcr.io/inferstack/runtime"
RUNTIME_VERSION: Final = "0.1.0"
Flavour = Literal["cpu", "cuda"]
FLAVOURS: Final[tuple[Flavour, ...]] = ("cpu", "cuda")
GPU_FLAVOUR: Final[Flavour] = "cuda"
"""The flavour GPU pools run: a CPU build of torch cannot use the GPU it is scheduled on."""
_REFERENCE = re.compile(
    r"^(?P<repository>[a-z0-9]+(?:[._-][a-z0-9]+|__)*"  # first path component (or registry)
    r"(?::[0-9]+)?"  # a registry port
    r"(?:/[a-zA-Z0-9]+(?:[._-][a-zA-Z0-9]+|__)*)*)"  # more path components
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9._-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)
FORM: Final = "[registry/]repository[:tag][@sha256:<64 hex digits>]"


class ImageReferenceError(ValueError):
    """A string that is not an image reference."""


@dataclass(frozen=True)
class ImageReference:
    """A container image reference split into its parts: by tag, by digest, or both."""

    repository: str
    """Registry (with port) and path, e.g. `ghcr.io/inferstack/runtime`."""
    tag: str | None
    digest: str | None
    """`sha256:<hex>`, when the reference pins one image."""


def parse_image(reference: str) -> ImageReference:
    """Split a reference; raise ImageReferenceError naming the expected form."""
    match = _REFERENCE.match(reference)
    if match is None:
        raise ImageReferenceError(f"{reference!r} is not an image reference of the form {FORM}")
    return ImageReference(match["repository"], match["tag"], match["digest"])


def has_digest(reference: str) -> bool:
    """Whether the reference pins its image by digest (False for a malformed one)."""
    try:
        return parse_image(reference).digest is not None
    except ImageReferenceError:
        return False


def runtime_image(flavour: Flavour, version: str = RUNTIME_VERSION) -> str:
    """The published runtime image of `flavour`: `ghcr.io/inferstack/runtime:0.1.0-cuda`."""
    return f"{RUNTIME_REPOSITORY}:{runtime_tag(flavour, version)}"


def runtime_tag(flavour: Flavour, version: str = RUNTIME_VERSION) -> str:
    """The tag of a runtime image of `flavour`: `<version>-<flavour>`."""
    return f"{version}-{flavour}"


def image_flavour(reference: str) -> Flavour | None:
    """The flavour a runtime image's tag names (`...-cuda`, `:cuda`), None when it names none."""
    try:
        tag = parse_image(reference).tag
    except ImageReferenceError:
        return None
    if tag is None:
        return None
    return next((f for f in FLAVOURS if tag == f or tag.endswith(f"-{f}")), None)
