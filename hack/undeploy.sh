#!/usr/bin/env bash
# Remove the demo and the operator, in the order kopf needs: every PromDemo
# first, while the operator runs and can release its finalizers, then the demo
# namespace, then the operator, its RBAC and the CRD.
set -euo pipefail
cd "$(dirname "$0")/.."
. hack/lib.sh

need kubectl
if kc get crd promdemos.promdemo.dev >/dev/null 2>&1; then
  say "deleting every PromDemo (the operator removes kopf's finalizers)"
  kc delete promdemos --all --all-namespaces --wait=true --timeout=180s ||
    die "PromDemos are still there: is the operator running? (kubectl get pd -A)"
fi
say "deleting namespace $DEMO_NAMESPACE"
kc delete namespace "$DEMO_NAMESPACE" --ignore-not-found --wait=true --timeout=180s
say "deleting the operator, its RBAC and the CRD (manifests/overlays/kind)"
kustomize_with_image kind "$IMAGE" | kc delete -f - --ignore-not-found --wait=true --timeout=180s
