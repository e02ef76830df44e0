# Shared by the hack/ scripts: names, pinned versions, small helpers.
# Every script checks the tools it calls with `need` before it changes anything;
# docs/kind.md lists them (tests/unit/project/test_hack_scripts.py keeps both true).
# shellcheck shell=bash
# shellcheck disable=SC2034 # the variables are read by the scripts that source this file
CLUSTER="${CLUSTER:-promdemo}"
CONTEXT="kind-${CLUSTER}"
# The image named in manifests/base: what the release workflow publishes, tagged
# with pyproject.toml's version. `make image` builds it under that name, `make
# kind-load` loads it into kind: nothing is pulled.
BASE_IMAGE_NAME="ghcr.io/promdemo/promdemo"
IMAGE="${IMAGE:-${BASE_IMAGE_NAME}:0.1.0}"
# What `make kind-up` installs for monitoring:
#   kube-prometheus-stack  Prometheus, Alertmanager, Grafana and the prometheus-operator (helm)
#   crds                   the prometheus-operator CRDs only: nothing scrapes the app
#   none                   nothing (the operator reports MonitoringReady=False)
STACK="${STACK:-kube-prometheus-stack}"
PROMETHEUS_OPERATOR_VERSION="${PROMETHEUS_OPERATOR_VERSION:-v0.75.2}"
CRDS_URL="${CRDS_URL:-https://github.com/prometheus-operator/prometheus-operator/releases/download/${PROMETHEUS_OPERATOR_VERSION}/stripped-down-crds.yaml}"
KPS_VERSION="${KPS_VERSION:-61.9.0}"   # kube-prometheus-stack chart (prometheus-operator v0.75.x)
KPS_RELEASE="${KPS_RELEASE:-prometheus}"
KPS_NAMESPACE="${KPS_NAMESPACE:-monitoring}"
OPERATOR_NAMESPACE="promdemo-system"
OPERATOR_DEPLOYMENT="promdemo-operator"
DEMO_NAMESPACE="${NS:-demo}"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
need() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed (see docs/kind.md)"
  done
}
kc() { kubectl --context "$CONTEXT" "$@"; }

# kustomize_with_image OVERLAY IMAGE: `kubectl kustomize manifests/overlays/OVERLAY`
# with the operator's image set to IMAGE (name:tag or name@sha256:...), as
# `kustomize edit set image` would, without the kustomize binary and without
# touching the overlay: a throwaway overlay on top of it is built, then removed.
kustomize_with_image() {
  local overlay="$1" image="$2" name field value tmp status=0
  if [[ "$image" == *@* ]]; then
    name="${image%@*}" field="digest" value="${image#*@}"
  elif [[ "${image##*/}" == *:* ]]; then
    name="${image%:*}" field="newTag" value="${image##*:}"
  else
    name="$image" field="newTag" value="latest"
  fi
  tmp="$(mktemp -d "manifests/overlays/.image.XXXXXX")"
  cat >"$tmp/kustomization.yaml" <<YAML
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../${overlay}
images:
  - name: ${BASE_IMAGE_NAME}
    newName: ${name}
    ${field}: "${value}"
YAML
  kubectl kustomize "$tmp" || status=$?
  rm -rf "$tmp"
  return "$status"
}
