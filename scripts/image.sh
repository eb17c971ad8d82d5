#!/usr/bin/env bash
# Build the runtime image with buildah (no daemon, no registry) from a Debian base made here.
#
#   scripts/image.sh base    the base: mmdebstrap of Debian with Python 3.11, imported into
#                            buildah's storage as $BASE_IMAGE (kept: made once per machine)
#   scripts/image.sh build   the base if missing, then runtime/Containerfile as $IMAGE
#
# Settings (environment): IMAGE, BASE_IMAGE, SUITE (Debian suite), TORCH_WHEELS (a folder with
# the torch wheel the lock pins; default: pip's find-links), PIP_CERT (the CA bundle pip trusts
# here, default pip's own setting: a proxy that re-signs TLS needs it inside the build too). Tools missing here (buildah,
# mmdebstrap) are installed with apt-get as root; otherwise the script says what to install.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-localhost/inferstack-runtime:cpu}
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

build() {
  need buildah
  base
  if [ -z "$TORCH_WHEELS" ] || ! compgen -G "$TORCH_WHEELS/torch-*.whl" >/dev/null; then
    echo "image: no torch wheel in TORCH_WHEELS='$TORCH_WHEELS'; set it to the folder that holds" \
      "the wheel runtime/requirements.lock pins" >&2
    exit 1
  fi
  local trust=()
  if [ -n "$PIP_CERT" ] && [ -f "$PIP_CERT" ]; then
    trust=(--volume "$(realpath "$PIP_CERT")":/run/pip-ca.crt:ro --build-arg PIP_CERT=/run/pip-ca.crt)
  fi
  # Docker format: OCI images have no HEALTHCHECK.
  "${BUILDAH[@]}" bud --quiet --isolation chroot --layers=false --format docker \
    -f runtime/Containerfile "${trust[@]}" \
    --build-arg BASE_IMAGE="$BASE_IMAGE" \
    --build-arg TORCH_FIND_LINKS=/wheels \
    --volume "$(realpath "$TORCH_WHEELS")":/wheels:ro \
    -t "$IMAGE" .
  echo "image: $IMAGE built; $("${BUILDAH[@]}" images --format '{{.Size}}' "$IMAGE")"
}

case "${1:-build}" in
  base) base ;;
  build) build ;;
  *) echo "usage: $0 [base|build]" >&2; exit 2 ;;
esac
