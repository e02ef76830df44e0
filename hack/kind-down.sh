#!/usr/bin/env bash
# Delete the kind cluster (everything in it goes with it).
set -euo pipefail
cd "$(dirname "$0")/.."
. hack/lib.sh

need kind
if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  kind delete cluster --name "$CLUSTER"
else
  say "no kind cluster named $CLUSTER"
fi
