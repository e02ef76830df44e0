# promdemo's front door. `make help` lists the targets.
#
# Without Kubernetes:   make install && promdemo local --with-load
# On kind (docker, kind, kubectl, helm; no Python needed, docs/kind.md):
#                       make kind-up image kind-load deploy demo ... make undeploy kind-down
#                       (STACK=crds make kind-up: the prometheus-operator CRDs only)

PYTHON   ?= python3
CLUSTER  ?= promdemo
IMAGE    ?= ghcr.io/promdemo/promdemo:0.1.0
STACK    ?= kube-prometheus-stack
export CLUSTER IMAGE STACK PYTHON

.DEFAULT_GOAL := help
# constraints.txt, the CRD and install.yaml are files, but their targets always rebuild them.
.PHONY: help install test test-e2e lint format bench local constraints crd install.yaml image controlplane upstream \
        kind-up kind-load deploy demo undeploy kind-logs kind-down e2e

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_.-]+:.*## / {printf "  %-13s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

install: ## pip install -e '.[dev]' (the app, the operator, the CLI and the test tools)
	$(PYTHON) -m pip install -e '.[dev]'

test: ## the test suite (the README's test command; e2e skips without kind and Docker)
	$(PYTHON) -m pytest

controlplane: ## build kube-apiserver, kube-controller-manager and etcd for the cluster tier (docs/testing.md)
	hack/upstream/build.sh kubernetes etcd

upstream: ## build every upstream program the tests run (hack/upstream/versions.env; cached by version)
	hack/upstream/build.sh all

lint: ## ruff check and ruff format --check
	ruff check .
	ruff format --check .

format: ## ruff format and the safe fixes
	ruff check --fix .
	ruff format .

bench: ## run every benchmark in bench/ and print the figures
	@set -e; found=0; for f in bench/bench_*.py; do \
	  [ -e "$$f" ] || continue; found=1; echo "== $$f"; $(PYTHON) "$$f"; done; \
	  [ "$$found" = 1 ] || echo "no benchmarks in bench/"

local: ## the whole demo on this machine, with load
	promdemo local --with-load

constraints: ## refresh constraints.txt, the versions the image installs (then run the tests)
	$(PYTHON) -m uv pip compile pyproject.toml --extra operator --universal --python-version 3.11 \
	  --upgrade --quiet --custom-compile-command 'make constraints' -o constraints.txt

crd: ## regenerate crds/promdemos.promdemo.dev.yaml from the typed spec (then make install.yaml)
	$(PYTHON) -m promdemo_operator.core.crd crds/promdemos.promdemo.dev.yaml

install.yaml: ## regenerate install.yaml (CRD, RBAC, operator) from manifests/overlays/release
	hack/install-yaml.sh

.PHONY: chart
chart: ## copy the CRD, the dashboard and the ClusterRole's rules into charts/promdemo
	$(PYTHON) scripts/chart_files.py

image: ## docker build -t IMAGE . (default ghcr.io/promdemo/promdemo:0.1.0)
	hack/image.sh

kind-up: ## create the kind cluster and install STACK (kube-prometheus-stack | crds | none)
	hack/kind-up.sh

kind-load: ## load IMAGE into the kind cluster (docker save, kind load image-archive)
	hack/kind-load.sh

deploy: ## install the operator (manifests/overlays/kind, image IMAGE) and wait for it
	hack/deploy.sh

demo: ## a PromDemo, 300 concurrent orders from a pod, fails unless the operator heals
	hack/demo.sh

e2e: ## the e2e suite against the kind cluster CLUSTER (created if missing)
	PROMDEMO_KIND_CLUSTER=$(CLUSTER) $(PYTHON) -m pytest -m e2e tests/e2e -v

test-e2e: e2e

undeploy: ## delete every PromDemo (kopf's finalizers), the demo namespace, the operator, the CRD
	hack/undeploy.sh

kind-logs: ## dump objects, events and logs of the kind cluster into kind-logs/
	hack/dump-logs.sh

kind-down: ## delete the kind cluster
	hack/kind-down.sh
