#!/usr/bin/env bash
# What to look at when something failed on kind: objects, events, logs.
# Writes to $ARTIFACTS (default: ./kind-logs) and prints a summary.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
. hack/lib.sh

need kubectl kind
ARTIFACTS="${ARTIFACTS:-kind-logs}"
mkdir -p "$ARTIFACTS"
kc get nodes -o wide >"$ARTIFACTS/nodes.txt" 2>&1
kc get promdemos,deployments,pods,services,secrets,servicemonitors,prometheusrules -A -o wide \
  >"$ARTIFACTS/objects.txt" 2>&1
kc get promdemos -A -o yaml >"$ARTIFACTS/promdemos.yaml" 2>&1
kc get events -A --sort-by=.lastTimestamp >"$ARTIFACTS/events.txt" 2>&1
kc -n "$OPERATOR_NAMESPACE" logs "deployment/$OPERATOR_DEPLOYMENT" --all-containers --tail=-1 \
  >"$ARTIFACTS/operator.log" 2>&1
kc -n "$OPERATOR_NAMESPACE" logs "deployment/$OPERATOR_DEPLOYMENT" --all-containers --previous \
  >"$ARTIFACTS/operator-previous.log" 2>&1 || true
kc get pods -A -l app.kubernetes.io/name=promdemo \
  -o jsonpath='{range .items[*]}{.metadata.namespace}{" "}{.metadata.name}{"\n"}{end}' 2>/dev/null |
  while read -r ns pod; do
    [ -n "$pod" ] && kc -n "$ns" logs "$pod" --all-containers --tail=500 >"$ARTIFACTS/app-$ns-$pod.log" 2>&1
  done
kind export logs --name "$CLUSTER" "$ARTIFACTS/kind" >/dev/null 2>&1 || true
echo "---- objects"; cat "$ARTIFACTS/objects.txt"
echo "---- events (last 40)"; tail -n 40 "$ARTIFACTS/events.txt"
echo "---- operator log (last 100 lines)"; tail -n 100 "$ARTIFACTS/operator.log"
echo "(everything is in $ARTIFACTS/)"
