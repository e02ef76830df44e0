#!/usr/bin/env bash
# Install the operator with the kind overlay and wait until it runs.
set -euo pipefail
cd "$(dirname "$0")/.."
. hack/lib.sh

need kubectl
say "applying manifests/overlays/kind to $CONTEXT"
kc apply -k manifests/overlays/kind
kc wait --for condition=Established --timeout=60s crd/promdemos.promdemo.dev
kc -n "$OPERATOR_NAMESPACE" rollout status "deployment/$OPERATOR_DEPLOYMENT" --timeout=180s
