#!/usr/bin/env bash
# Create (or reuse) the kind cluster, then install monitoring (STACK, see hack/lib.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
. hack/lib.sh

need kind docker kubectl
# helm is checked now, not after a cluster was created for nothing.
if [ "$STACK" = kube-prometheus-stack ]; then need helm; fi
docker info >/dev/null 2>&1 || die "docker cannot reach a Docker engine (is it running?)"
if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  say "kind cluster $CLUSTER exists; reusing it"
else
  say "creating kind cluster $CLUSTER (hack/kind.yaml)"
  kind create cluster --name "$CLUSTER" --config hack/kind.yaml --wait 120s
fi
hack/install-stack.sh
