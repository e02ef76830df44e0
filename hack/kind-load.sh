#!/usr/bin/env bash
# Load $IMAGE into every node of the kind cluster, from `docker save`: an archive
# also works with Docker's containerd image store, where `kind load docker-image`
# fails. Nothing is pulled from a registry.
set -euo pipefail
cd "$(dirname "$0")/.."
. hack/lib.sh

need docker kind
docker image inspect "$IMAGE" >/dev/null 2>&1 || die "no local image $IMAGE (make image first)"
kind get clusters 2>/dev/null | grep -qx "$CLUSTER" || die "no kind cluster $CLUSTER (make kind-up first)"
archive="$(mktemp -d)"
trap 'rm -rf "$archive"' EXIT
say "loading $IMAGE into kind cluster $CLUSTER"
docker save -o "$archive/image.tar" "$IMAGE"
kind load image-archive "$archive/image.tar" --name "$CLUSTER"
