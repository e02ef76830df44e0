# Shared by the hack/ scripts: names, pinned versions, small helpers.
# shellcheck shell=bash
# shellcheck disable=SC2034 # the variables are read by the scripts that source this file
CLUSTER="${CLUSTER:-promdemo}"
CONTEXT="kind-${CLUSTER}"
IMAGE="${IMAGE:-promdemo:0.1.0}"
# What `make kind-up` installs for monitoring:
#   crds                   the prometheus-operator CRDs only (ServiceMonitor, PrometheusRule, ...)
#   kube-prometheus-stack  Prometheus, Alertmanager, Grafana and the operator, with helm
#   none                   nothing (the operator reports MonitoringReady=False)
STACK="${STACK:-crds}"
PROMETHEUS_OPERATOR_VERSION="${PROMETHEUS_OPERATOR_VERSION:-v0.75.2}"
CRDS_URL="${CRDS_URL:-https://github.com/prometheus-operator/prometheus-operator/releases/download/${PROMETHEUS_OPERATOR_VERSION}/stripped-down-crds.yaml}"
KPS_VERSION="${KPS_VERSION:-61.9.0}"   # kube-prometheus-stack chart (prometheus-operator v0.75.x)
KPS_RELEASE="${KPS_RELEASE:-prometheus}"
KPS_NAMESPACE="${KPS_NAMESPACE:-monitoring}"
OPERATOR_NAMESPACE="promdemo-system"
OPERATOR_DEPLOYMENT="promdemo-operator"
PYTHON="${PYTHON:-python3}"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
need() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed (see docs/kind.md)"
  done
}
kc() { kubectl --context "$CONTEXT" "$@"; }
