#!/usr/bin/env bash
# The demo on kind: a PromDemo, the original demo's burst through a port-forward,
# then the heal in `kubectl get pd` and in the Events.
set -euo pipefail
cd "$(dirname "$0")/.."
. hack/lib.sh

NS="${NS:-demo}"
LOCAL_PORT="${LOCAL_PORT:-18080}"
PROMDEMO="${PROMDEMO:-$PYTHON -m promdemo_operator.cli}"
need kubectl curl

say "namespace $NS, PromDemo shop (manifests/samples/minimal.yaml)"
kc create namespace "$NS" --dry-run=client -o yaml | kc apply -f -
kc apply -n "$NS" -f manifests/samples/minimal.yaml
kc -n "$NS" wait --for=condition=Available --timeout=180s promdemo/shop
kc -n "$NS" rollout status deployment/shop --timeout=180s

say "port-forward svc/shop -> 127.0.0.1:$LOCAL_PORT"
kc -n "$NS" port-forward --address 127.0.0.1 svc/shop "$LOCAL_PORT:http" >/dev/null &
pf=$!
trap 'kill "$pf" 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do
  curl -fsS "http://127.0.0.1:$LOCAL_PORT/healthz" >/dev/null 2>&1 && break
  sleep 0.2
done

heals_before="$(kc -n "$NS" get promdemo shop -o jsonpath='{.status.healCount}')"
say "the original demo's burst: 300 concurrent orders (a port-forward reaches one pod)"
$PROMDEMO load "http://127.0.0.1:$LOCAL_PORT" --orders 300 --concurrency 300
say "inventory right after the burst"
curl -fsS "http://127.0.0.1:$LOCAL_PORT/inventory" || true
echo

say "waiting for the operator to reset the pod (status.healCount > ${heals_before:-0})"
for _ in $(seq 1 60); do
  heals="$(kc -n "$NS" get promdemo shop -o jsonpath='{.status.healCount}')"
  [ "${heals:-0}" -gt "${heals_before:-0}" ] && break
  sleep 2
done
kc -n "$NS" get promdemo shop
kc -n "$NS" get events --field-selector involvedObject.kind=PromDemo --sort-by=.lastTimestamp
