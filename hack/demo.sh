#!/usr/bin/env bash
# The demo on kind: a PromDemo, the burst of 300 concurrent orders of the
# Flask practice demo promdemo started from (docs/lessons.md), then the heal in
# `kubectl get pd` and in the Events. The load runs in the cluster, from the image
# already loaded (`promdemo load` in a pod): the host needs kubectl only. Exits
# non-zero when status.healCount does not grow.
set -euo pipefail
cd "$(dirname "$0")/.."
. hack/lib.sh

NS="$DEMO_NAMESPACE"
ORDERS="${ORDERS:-300}"
LOAD_POD="promdemo-load"
need kubectl

say "namespace $NS, PromDemo shop (manifests/samples/minimal.yaml, image $IMAGE)"
kc create namespace "$NS" --dry-run=client -o yaml | kc apply -f -
kc apply -n "$NS" -f manifests/samples/minimal.yaml
# The app runs the image that was built and loaded, whatever the sample names.
kc -n "$NS" patch promdemo shop --type merge \
  -p "{\"spec\":{\"image\":\"$IMAGE\",\"imagePullPolicy\":\"IfNotPresent\"}}"
kc -n "$NS" wait --for=condition=Available --timeout=180s promdemo/shop
kc -n "$NS" rollout status deployment/shop --timeout=180s

heals_before="$(kc -n "$NS" get promdemo shop -o jsonpath='{.status.healCount}')"
heals_before="${heals_before:-0}"

say "the burst: $ORDERS concurrent orders, from pod $LOAD_POD in the cluster"
kc -n "$NS" delete pod "$LOAD_POD" --ignore-not-found --wait=true >/dev/null
kc -n "$NS" run "$LOAD_POD" --image="$IMAGE" --image-pull-policy=IfNotPresent \
  --restart=Never --labels=app.kubernetes.io/name=promdemo-load \
  --command -- promdemo load "http://shop:8080" --orders "$ORDERS" --concurrency "$ORDERS"
phase=""
for _ in $(seq 1 90); do
  phase="$(kc -n "$NS" get pod "$LOAD_POD" -o jsonpath='{.status.phase}')"
  [ "$phase" = Succeeded ] || [ "$phase" = Failed ] && break
  sleep 2
done
kc -n "$NS" logs "pod/$LOAD_POD" || true
kc -n "$NS" delete pod "$LOAD_POD" --ignore-not-found --wait=false >/dev/null
[ "$phase" = Succeeded ] || die "the load pod ended as '${phase:-unknown}' (see its log above)"

say "waiting for the operator to reset a pod (status.healCount > $heals_before)"
heals="$heals_before"
for _ in $(seq 1 60); do
  heals="$(kc -n "$NS" get promdemo shop -o jsonpath='{.status.healCount}')"
  [ "${heals:-0}" -gt "$heals_before" ] && break
  sleep 2
done
kc -n "$NS" get promdemo shop
kc -n "$NS" get events --field-selector involvedObject.kind=PromDemo --sort-by=.lastTimestamp
if [ "${heals:-0}" -le "$heals_before" ]; then
  die "status.healCount stayed at ${heals:-0} within 120 s: no heal (make kind-logs shows why)"
fi
say "healed: status.healCount went from $heals_before to $heals"
