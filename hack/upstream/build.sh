#!/usr/bin/env bash
# Build the upstream programs the tests run for real (kube-apiserver,
# kube-controller-manager, etcd, Prometheus 3 + promtool, Alertmanager,
# prometheus-operator, helm) from their Go modules at the versions in
# versions.env, each in a generated wrapper module, into a cache keyed by version:
#
#   ${PROMDEMO_UPSTREAM_CACHE:-~/.cache/promdemo/upstream}/<tool>/<version>/bin/
#
# Usage: hack/upstream/build.sh [kubernetes|etcd|prometheus|alertmanager|
#                                prometheus-operator|helm|all]...   (default: all)
#        hack/upstream/build.sh --print-bin TOOL     the bin directory of TOOL
# A warm cache makes a run take well under a second per tool. Nothing is
# downloaded but Go modules through the Go module proxy.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=/dev/null
. "$here/versions.env"
cache="${PROMDEMO_UPSTREAM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/promdemo/upstream}"
export GOFLAGS="-mod=mod -trimpath"
export CGO_ENABLED=0

version_of() {
  case "$1" in
    kubernetes) echo "$KUBERNETES_VERSION" ;;
    etcd) echo "$ETCD_VERSION" ;;
    prometheus) echo "$PROMETHEUS_MODULE_VERSION" ;;
    alertmanager) echo "$ALERTMANAGER_VERSION" ;;
    prometheus-operator) echo "$PROMETHEUS_OPERATOR_VERSION" ;;
    helm) echo "$HELM_VERSION" ;;
    *) echo "build.sh: unknown tool '$1' (kubernetes, etcd, prometheus, alertmanager, prometheus-operator, helm)" >&2; return 2 ;;
  esac
}

log() { printf '%s build.sh: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# wrapper DIR MODULE VERSION: a module in DIR that requires MODULE@VERSION.
# Replace and exclude lines of the required module that name module versions
# (not local paths, which a consumer never inherits) are copied, as its own
# build uses them.
wrapper() {
  local dir="$1" module="$2" version="$3" gomod
  mkdir -p "$dir"
  rm -f "$dir/go.mod" "$dir/go.sum"
  (cd "$dir" && go mod init promdemo.local/upstream >/dev/null 2>&1)
  gomod="$(cd "$dir" && go mod download -json "$module@$version" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')"
  python3 - "$gomod" >>"$dir/go.mod" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
out = []
for kind in ("replace", "exclude"):
    lines = []
    for block in re.findall(rf"^{kind} \((.*?)^\)", text, re.S | re.M):
        lines += block.splitlines()
    lines += re.findall(rf"^{kind} (?!\()(.*)$", text, re.M)
    for line in (l.strip() for l in lines):
        if not line or line.startswith("//"):
            continue
        if kind == "replace":
            target = line.split("=>", 1)[1].split()
            if target[0].startswith((".", "/")):
                continue  # a local path inside the module: not inherited
        out.append(f"{kind} {line}")
print("\n".join(out))
PY
  (cd "$dir" && go get "$module@$version" >/dev/null)
}

build_kubernetes() {
  local out="$1" dir="$1/../src" v="$KUBERNETES_VERSION" gomod minor major
  wrapper "$dir" k8s.io/kubernetes "$v"
  # k8s.io/kubernetes requires every staging module at v0.0.0 and maps them to
  # ./staging with replace lines a consumer does not inherit: map each to its
  # published v0.X.Y instead, the list read from the required go.mod itself.
  gomod="$(cd "$dir" && go mod download -json "k8s.io/kubernetes@$v" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')"
  local staging=0
  while read -r mod; do
    (cd "$dir" && go mod edit -replace "$mod=$mod@v0.${v#v1.}")
    staging=$((staging + 1))
  done < <(awk '$2 == "v0.0.0" && $1 ~ /^k8s\.io\// {print $1}' "$gomod")
  log "kubernetes $v: $staging staging modules mapped to v0.${v#v1.}"
  (cd "$dir" && go get "k8s.io/kubernetes@$v" >/dev/null)
  major="${v#v}"; major="${major%%.*}"
  minor="${v#v*.}"; minor="${minor%%.*}"
  local ld=""
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    ld+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  # The generated OpenAPI package takes GBs to compile: two packages at a time.
  (cd "$dir" && go build -p 2 -ldflags "-s -w$ld" -o "$out/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager)
}

build_etcd() {
  local out="$1" dir="$1/../src"
  wrapper "$dir" go.etcd.io/etcd/server/v3 "$ETCD_VERSION"
  (cd "$dir" && go build -ldflags "-s -w" -o "$out/etcd" go.etcd.io/etcd/server/v3)
}

build_prometheus() {
  local out="$1" dir="$1/../src" v="$PROMETHEUS_MODULE_VERSION" release
  wrapper "$dir" github.com/prometheus/prometheus "$v"
  # v0.316.0 is Prometheus 3.16.0
  release="${v#v0.}"; release="${release:0:1}.$((10#${release:1:2})).${release#*.}"
  local ld="-s -w -X github.com/prometheus/common/version.Version=$release"
  ld+=" -X github.com/prometheus/common/version.Branch=module -X github.com/prometheus/common/version.Revision=$v"
  (cd "$dir" && go build -tags remove_all_sd,enable_kubernetes_sd -ldflags "$ld" -o "$out/" \
    github.com/prometheus/prometheus/cmd/prometheus github.com/prometheus/prometheus/cmd/promtool)
}

build_alertmanager() {
  local out="$1" dir="$1/../src" v="$ALERTMANAGER_VERSION" moddir m=github.com/prometheus/alertmanager
  wrapper "$dir" "$m" "$v"
  # ui/web.go embeds ui/app/dist, the built web UI, which the module does not
  # carry (npm builds it): build from a copy of the module with a one-page
  # placeholder there. The API, which the tests use, is the same.
  moddir="$(cd "$dir" && go mod download -json "$m@$v" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
  rm -rf "$dir/alertmanager"
  cp -r "$moddir" "$dir/alertmanager"
  chmod -R u+w "$dir/alertmanager"
  for ui in elm mantine; do
    mkdir -p "$dir/alertmanager/ui/app/dist/$ui"
    echo "<p>Alertmanager $v built from its Go module: the web UI's assets are not in it; the API works.</p>" \
      >"$dir/alertmanager/ui/app/dist/$ui/index.html"
  done
  (cd "$dir" && go mod edit -replace "$m=./alertmanager")
  (cd "$dir" && go build -ldflags "-s -w -X github.com/prometheus/common/version.Version=${v#v}" -o "$out/" \
    github.com/prometheus/alertmanager/cmd/alertmanager github.com/prometheus/alertmanager/cmd/amtool)
}

build_prometheus-operator() {
  local out="$1" dir="$1/../src" v="$PROMETHEUS_OPERATOR_VERSION" moddir m="github.com/prometheus-operator/prometheus-operator"
  wrapper "$dir" "$m" "$v"
  (cd "$dir" && go build -ldflags "-s -w -X github.com/prometheus/common/version.Version=${v#v}" \
    -o "$out/prometheus-operator" "$m/cmd/operator")
  (cd "$dir" && go build -ldflags "-s -w -X github.com/prometheus/common/version.Version=${v#v}" \
    -o "$out/prometheus-config-reloader" "$m/cmd/prometheus-config-reloader")
  # Its CRDs, as the release ships them, from the same module.
  moddir="$(cd "$dir" && go mod download -json "$m@$v" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
  mkdir -p "$out/../crds"
  cp "$moddir"/example/prometheus-operator-crd/*.yaml "$out/../crds/"
  chmod u+w "$out"/../crds/*.yaml
}

build_helm() {
  local out="$1" dir="$1/../src" v="$HELM_VERSION"
  wrapper "$dir" helm.sh/helm/v4 "$v"
  (cd "$dir" && go build -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$v" -o "$out/helm" helm.sh/helm/v4/cmd/helm)
}

build() {
  local tool="$1" version root started
  version="$(version_of "$tool")"
  root="$cache/$tool/$version"
  mkdir -p "$root"
  # One build of a tool at a time (CI's background build and a developer's make).
  exec 9>"$root/.lock"
  flock 9
  if [ -e "$root/.built" ]; then
    log "$tool $version: cached in $root/bin"
    return 0
  fi
  command -v go >/dev/null || { echo "build.sh: go is not installed (needed to build $tool)" >&2; return 1; }
  started=$SECONDS
  log "$tool $version: building into $root/bin"
  rm -rf "${root:?}/bin" "${root:?}/crds"
  mkdir -p "$root/bin"
  "build_$tool" "$root/bin"
  rm -rf "$root/src"
  echo "$((SECONDS - started))" >"$root/.built"
  log "$tool $version: built in $((SECONDS - started)) s"
  exec 9>&-
}

if [ "${1:-}" = --print-bin ]; then
  version="$(version_of "${2:?--print-bin TOOL}")"
  echo "$cache/$2/$version/bin"
  exit 0
fi
tools=("$@")
if [ ${#tools[@]} = 0 ] || [ "${tools[0]}" = all ]; then
  tools=(kubernetes etcd prometheus alertmanager prometheus-operator helm)
fi
for tool in "${tools[@]}"; do build "$tool"; done
