# promdemo's front door. `make help` lists the targets.
#
# Without Kubernetes:   make install && promdemo local --with-load
# On kind (Docker):     make kind-up image kind-load deploy demo ... make kind-down
#                       (STACK=kube-prometheus-stack make kind-up for Prometheus + Grafana)

PYTHON   ?= python3
CLUSTER  ?= promdemo
IMAGE    ?= promdemo:0.1.0
STACK    ?= crds
export CLUSTER IMAGE STACK PYTHON

.DEFAULT_GOAL := help
# constraints.txt is a file, but `make constraints` always refreshes it.
.PHONY: constraints help install test test-e2e lint format bench local image kind-up kind-load deploy demo \
        undeploy kind-logs kind-down e2e

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-11s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

install: ## pip install -e '.[dev]' (the app, the operator, the CLI and the test tools)
	$(PYTHON) -m pip install -e '.[dev]'

test: ## the test suite (the README's test command; e2e skips without kind and Docker)
	$(PYTHON) -m pytest

constraints: ## refresh constraints.txt, the versions the image installs (then run the tests)
	$(PYTHON) -m uv pip compile pyproject.toml --extra operator --universal --python-version 3.11 \
	  --upgrade --quiet --custom-compile-command 'make constraints' -o constraints.txt

lint: ## ruff check and ruff format --check
	ruff check .
	ruff format --check .

format: ## ruff format and the safe fixes
	ruff check --fix .
	ruff format .

bench: ## run every benchmark in bench/ and print the figures
	@set -e; found=0; for f in bench/*.py; do \
	  [ -e "$$f" ] || continue; found=1; echo "== $$f"; $(PYTHON) "$$f"; done; \
	  [ "$$found" = 1 ] || echo "no benchmarks in bench/"

local: ## the whole demo on this machine, with load
	$(PYTHON) -m promdemo_operator.cli local --with-load

image: ## docker build -t promdemo:0.1.0 .
	docker build -t $(IMAGE) .

kind-up: ## create the kind cluster and install STACK (crds | kube-prometheus-stack | none)
	hack/kind-up.sh

kind-load: ## load the image into the kind cluster
	kind load docker-image $(IMAGE) --name $(CLUSTER)

deploy: ## install the operator (manifests/overlays/kind) and wait for it
	hack/deploy.sh

demo: ## a PromDemo, 300 concurrent orders through a port-forward, the heal in `kubectl get pd`
	hack/demo.sh

e2e: ## the e2e suite against the kind cluster CLUSTER (created if missing)
	PROMDEMO_KIND_CLUSTER=$(CLUSTER) $(PYTHON) -m pytest -m e2e tests/e2e -v

test-e2e: e2e

undeploy: ## remove the demo namespace and the operator (the CRD goes with it)
	-kubectl --context kind-$(CLUSTER) delete namespace demo --ignore-not-found --wait
	-kubectl --context kind-$(CLUSTER) delete -k manifests/overlays/kind --ignore-not-found

kind-logs: ## dump objects, events and logs of the kind cluster into kind-logs/
	hack/dump-logs.sh

kind-down: ## delete the kind cluster
	hack/kind-down.sh
