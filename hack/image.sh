#!/usr/bin/env bash
# Build the image (the app and the operator) as $IMAGE. The Dockerfile uses no
# BuildKit-only syntax: Docker's legacy builder builds it as well.
set -euo pipefail
cd "$(dirname "$0")/.."
. hack/lib.sh

need docker
docker info >/dev/null 2>&1 || die "docker cannot reach a Docker engine (is it running?)"
say "building $IMAGE"
docker build -t "$IMAGE" .
