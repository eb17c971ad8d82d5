#!/usr/bin/env bash
# Build the runtime image with buildah (no daemon, no registry) from a Debian base made here.
#
#   scripts/image.sh base    the base: mmdebstrap of Debian with Python 3.11, imported into
#                            buildah's storage as $BASE_IMAGE (kept: made once per machine)
#   scripts/image.sh build   the base if missing, then runtime/Containerfile as $IMAGE (the CPU
#                            image, torch's +cpu build from runtime/requirements.lock)
#   scripts/image.sh build-gpu   the same with runtime/requirements-gpu.lock (`make lock-gpu`):
#                            torch's CUDA build and the NVIDIA libraries from PyPI, as $GPU_IMAGE
#   ... build[-gpu] --model PATH   then one more layer: the model file at
#                            /opt/inferstack/model/<file name>, INFERSTACK_MODEL naming it and
#                            INFERSTACK_MODEL_SHA256 its digest, as $MODEL_IMAGE (default: the
#                            image's name with -<model file stem> added to its tag); the stack
#                            then names model.uri: file:///opt/inferstack/model/<file name>
#                            (`make image MODEL=PATH`, `make image-gpu MODEL=PATH`)
#   scripts/image.sh bake --model PATH   only that layer, on an image already built ($IMAGE)
#
# Settings (environment): IMAGE, GPU_IMAGE, MODEL_IMAGE, BASE_IMAGE, SUITE (Debian suite),
# TORCH_WHEELS (a folder with the torch wheel the CPU lock pins; default: pip's find-links),
# PIP_CERT (the CA bundle pip trusts here, default pip's own setting: a proxy that re-signs TLS
# needs it inside the build too). The tags say the flavour (`:cpu`, `:cuda`; see
# inferstack/contract/images.py). Tools missing here (buildah, mmdebstrap) are installed with
# apt-get as root; otherwise the script says what to install.
set -euo pipefail
CALLER_DIR=$PWD  # --model PATH is relative to where the script was called from
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-localhost/inferstack-runtime:cpu}
GPU_IMAGE=${GPU_IMAGE:-localhost/inferstack-runtime:cuda}
# Where a baked model goes: inferstack.contract.model_uris.BAKED_MODEL_DIR.
BAKED_MODEL_DIR=/opt/inferstack/model
BASE_IMAGE=${BASE_IMAGE:-localhost/inferstack-base:bookworm}
SUITE=${SUITE:-bookworm}
TORCH_WHEELS=${TORCH_WHEELS:-${PIP_FIND_LINKS:-$(python3 -m pip config get global.find-links 2>/dev/null || true)}}
PIP_CERT=${PIP_CERT:-$(python3 -m pip config get global.cert 2>/dev/null || true)}
# vfs and chroot need neither kernel overlay support nor user namespaces: they work in a container.
BUILDAH=(buildah --storage-driver vfs)

need() {
  local missing=()
  for tool in "$@"; do command -v "$tool" >/dev/null || missing+=("$tool"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "image: installing ${missing[*]} with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get -qq -o DPkg::Lock::Timeout=300 update
    DEBIAN_FRONTEND=noninteractive apt-get -qq -o DPkg::Lock::Timeout=300 install -y \
      --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "image: ${missing[*]} missing. Fix: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
}

base() {
  if [ -z "${FORCE:-}" ] && "${BUILDAH[@]}" inspect --type image "$BASE_IMAGE" >/dev/null 2>&1; then
    echo "image: base $BASE_IMAGE present (FORCE=1 rebuilds it)"
    return
  fi
  need mmdebstrap buildah
  mkdir -p build
  local tarball=build/base-$SUITE.tar
  # minbase: dpkg, apt and the essential set; Python 3.11 with venv for the build stage, passwd
  # for the service user, CA certificates for pip.
  mmdebstrap --quiet --variant=minbase --include=python3,python3-venv,passwd,ca-certificates \
    "$SUITE" "$tarball"
  local container
  container=$("${BUILDAH[@]}" from scratch)
  "${BUILDAH[@]}" add "$container" "$tarball" / >/dev/null
  "${BUILDAH[@]}" config --env LANG=C.UTF-8 --cmd /bin/bash "$container"
  "${BUILDAH[@]}" commit --quiet --rm "$container" "$BASE_IMAGE" >/dev/null
  rm -f "$tarball"
  echo "image: base $BASE_IMAGE made from Debian $SUITE"
}

# build FLAVOUR: cpu (torch from TORCH_WHEELS, the CPU lock) or cuda (torch from PyPI, the GPU lock).
build() {
  local flavour=$1 image lock torch=()
  need buildah
  base
  if [ "$flavour" = cuda ]; then
    image=$GPU_IMAGE lock=runtime/requirements-gpu.lock
    if [ ! -f "$lock" ]; then
      echo "image: $lock missing; make it with: make lock-gpu" >&2
      exit 1
    fi
    torch=(--build-arg TORCH_FIND_LINKS=)
  else
    image=$IMAGE lock=runtime/requirements.lock
    if [ -z "$TORCH_WHEELS" ] || ! compgen -G "$TORCH_WHEELS/torch-*.whl" >/dev/null; then
      echo "image: no torch wheel in TORCH_WHEELS='$TORCH_WHEELS'; set it to the folder that" \
        "holds the wheel runtime/requirements.lock pins" >&2
      exit 1
    fi
    torch=(--build-arg TORCH_FIND_LINKS=/wheels --volume "$(realpath "$TORCH_WHEELS")":/wheels:ro)
  fi
  local trust=()
  if [ -n "$PIP_CERT" ] && [ -f "$PIP_CERT" ]; then
    trust=(--volume "$(realpath "$PIP_CERT")":/run/pip-ca.crt:ro --build-arg PIP_CERT=/run/pip-ca.crt)
  fi
  # Docker format: OCI images have no HEALTHCHECK.
  "${BUILDAH[@]}" bud --quiet --isolation chroot --layers=false --format docker \
    -f runtime/Containerfile "${trust[@]}" "${torch[@]}" \
    --build-arg BASE_IMAGE="$BASE_IMAGE" \
    --build-arg LOCK="$lock" \
    -t "$image" .
  echo "image: $image built; $("${BUILDAH[@]}" images --format '{{.Size}}' "$image")"
  if [ -n "$MODEL" ]; then
    bake "$image" "$MODEL"
  fi
}

# bake IMAGE PATH: IMAGE plus one layer holding the model file, named by the runtime's settings.
bake() {
  local image=$1 model=$2 name digest container target
  [[ $model = /* ]] || model=$CALLER_DIR/$model
  if [ ! -f "$model" ]; then
    echo "image: --model $model is not a file; give the TorchScript (.pt) or torch.export (.pt2)" \
      "file to bake in" >&2
    exit 1
  fi
  name=$(basename "$model")
  digest=$(sha256sum "$model" | cut -d' ' -f1)
  target=${MODEL_IMAGE:-$image-${name%.*}}
  container=$("${BUILDAH[@]}" from --quiet "$image")
  "${BUILDAH[@]}" copy --quiet --chown 0:0 --chmod 0444 "$container" "$model" \
    "$BAKED_MODEL_DIR/$name" >/dev/null
  "${BUILDAH[@]}" config --env INFERSTACK_MODEL="file://$BAKED_MODEL_DIR/$name" \
    --env INFERSTACK_MODEL_SHA256="$digest" "$container"
  "${BUILDAH[@]}" commit --quiet --rm --format docker "$container" "$target" >/dev/null
  echo "image: $target built with the model at file://$BAKED_MODEL_DIR/$name (sha256 $digest);" \
    "set model.uri: file://$BAKED_MODEL_DIR/$name, model.sha256: $digest and image: <where you push it>"
}

command=${1:-build}
shift || true
MODEL=${MODEL:-}
while [ $# -gt 0 ]; do
  case "$1" in
    --model) MODEL=${2:?--model needs a file}; shift 2 ;;
    --model=*) MODEL=${1#--model=}; shift ;;
    *) echo "usage: $0 [base|build|build-gpu|bake] [--model PATH]" >&2; exit 2 ;;
  esac
done
case "$command" in
  base) base ;;
  build) build cpu ;;
  build-gpu) build cuda ;;
  bake)
    need buildah
    [ -n "$MODEL" ] || { echo "image: bake needs --model PATH" >&2; exit 2; }
    bake "$IMAGE" "$MODEL"
    ;;
  *) echo "usage: $0 [base|build|build-gpu|bake] [--model PATH]" >&2; exit 2 ;;
esac
