#!/usr/bin/env bash
# Install monitoring into the kind cluster:
#   STACK=kube-prometheus-stack (default) | crds | none   (see hack/lib.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
. hack/lib.sh

need kubectl
case "$STACK" in
  kube-prometheus-stack)
    need helm
    say "installing kube-prometheus-stack ${KPS_VERSION} as release ${KPS_RELEASE} in ${KPS_NAMESPACE}"
    helm repo add prometheus-community https://prometheus-community.github.io/helm-charts >/dev/null
    helm repo update prometheus-community >/dev/null
    # shellcheck disable=SC2086 # KPS_EXTRA_ARGS is a list of helm flags
    helm upgrade --install "$KPS_RELEASE" prometheus-community/kube-prometheus-stack \
      --kube-context "$CONTEXT" --namespace "$KPS_NAMESPACE" --create-namespace \
      --version "$KPS_VERSION" -f hack/kube-prometheus-stack-values.yaml \
      --wait --timeout 10m ${KPS_EXTRA_ARGS:-}
    ;;
  crds)
    say "installing the prometheus-operator CRDs ${PROMETHEUS_OPERATOR_VERSION} (nothing will scrape)"
    # Server-side: the CRDs are larger than client-side apply's annotation limit.
    kc apply --server-side --force-conflicts -f "$CRDS_URL"
    kc wait --for condition=Established --timeout=120s \
      crd/servicemonitors.monitoring.coreos.com crd/prometheusrules.monitoring.coreos.com
    ;;
  none)
    say "STACK=none: no monitoring CRDs (the operator deploys the app and says so in a condition)"
    ;;
  *)
    die "STACK must be kube-prometheus-stack, crds or none (got '$STACK')"
    ;;
esac
