#!/usr/bin/env bash
# Install the operator with the kind overlay, its image set to $IMAGE, and wait until it runs.
set -euo pipefail
cd "$(dirname "$0")/.."
. hack/lib.sh

need kubectl
say "applying manifests/overlays/kind (image $IMAGE) to $CONTEXT"
kustomize_with_image kind "$IMAGE" | kc apply -f -
kc wait --for condition=Established --timeout=60s crd/promdemos.promdemo.dev
# The Alertmanager webhook's bearer token (autoHeal.source: alertmanager): made
# once here, never committed, never rotated by a redeploy.
if ! kc -n "$OPERATOR_NAMESPACE" get secret promdemo-webhook-token >/dev/null 2>&1; then
  say "creating secret promdemo-webhook-token"
  token="$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  kc -n "$OPERATOR_NAMESPACE" create secret generic promdemo-webhook-token \
    --from-literal=token="$token"
  kc -n "$OPERATOR_NAMESPACE" rollout restart "deployment/$OPERATOR_DEPLOYMENT"
fi
kc -n "$OPERATOR_NAMESPACE" rollout status "deployment/$OPERATOR_DEPLOYMENT" --timeout=180s
