# taskgate: every set-up step a fresh machine needs is a target here.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c

export GOTOOLCHAIN ?= local
export GOFLAGS ?= -modcacherw

K8S_VERSION   ?= v1.37.2
ETCD_VERSION  ?= v3.6.16
HELM_VERSION  ?= v3.22.0
# Built control-plane binaries live outside the clone so a fresh clone (CI)
# reuses them; the stamp files inside make rebuilding a no-op.
CACHE_DIR     ?= $(HOME)/.cache/taskgate
ENVTEST_DIR   ?= $(CACHE_DIR)/envtest-$(K8S_VERSION)
export KUBEBUILDER_ASSETS := $(ENVTEST_DIR)

CONTROLLER_GEN := go tool controller-gen
BIN_DIR        := bin

.PHONY: all
all: generate manifests fmt vet build

.PHONY: generate
generate: ## Generate deepcopy code for the API types.
	$(CONTROLLER_GEN) object paths=./api/...

.PHONY: manifests
manifests: ## Generate the CRDs and copy them into the chart (files/: templates/ renders them, so helm upgrade updates them).
	$(CONTROLLER_GEN) crd paths=./api/... output:crd:dir=config/crd
	mkdir -p charts/taskgate/files
	cp config/crd/automation.astronetes.io_tasks.yaml config/crd/automation.astronetes.io_taskruns.yaml config/crd/automation.astronetes.io_synchronizations.yaml charts/taskgate/files/

.PHONY: fmt
fmt:
	gofmt -l -w $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')

.PHONY: vet
vet:
	go vet ./...

.PHONY: build
build: ## Build the taskgate binary into bin/.
	CGO_ENABLED=0 go build -trimpath -o $(BIN_DIR)/taskgate ./cmd/taskgate

.PHONY: envtest
envtest: ## Build etcd, kube-apiserver, kubectl and helm from the Go module proxy into $(ENVTEST_DIR).
	K8S_VERSION=$(K8S_VERSION) ETCD_VERSION=$(ETCD_VERSION) HELM_VERSION=$(HELM_VERSION) \
	WITH_KUBECTL=1 WITH_HELM=1 hack/envtest-bins.sh $(ENVTEST_DIR)

.PHONY: envtest-dir
envtest-dir: ## Print $(ENVTEST_DIR): where test/testutil finds the binaries when KUBEBUILDER_ASSETS is unset.
	@echo $(ENVTEST_DIR)

.PHONY: test
test: envtest ## Unit tests, integration tests against a real kube-apiserver + etcd, then (as root) the e2e suite on a real node.
	# Every package outside test/ (a new one is never left out), then the integration suites
	# (test/e2e last, on its own: it needs a real node).
	go test $$(go list ./... | grep -v '/test/')
	go test -count=1 -timeout 20m $$(go list ./test/... | grep -v '/test/e2e$$')
	# The attacks again, against --act-as=controller (the chart's actAs=controller rules).
	TASKGATE_ACT_AS=controller go test -count=1 -timeout 5m ./test/security/
	# The admission suite again, against the single-call configuration (chart value webhook.singleCall),
	# with the access-review cache off (the first pass runs with the shipped 10 s TTL).
	TASKGATE_ADMISSION_MODE=single-call TASKGATE_ADMISSION_CACHE=off go test -count=1 -timeout 5m ./test/admission/
	# Pods that really run: only where a real node can (root); elsewhere say so.
	@if [ "$$(id -u)" = 0 ]; then $(MAKE) --no-print-directory test-e2e; \
	else echo "make test: the e2e suite (test/e2e, a real node) needs root: skipped; run make test-e2e as root"; fi

# Load, faults and fuzzing: test/load, test/drills; figures in BENCHMARKS.md.

# FUZZTIME is per fuzz target; a crasher is saved under webhook/testdata/fuzz
# and becomes a regression case of plain `go test`: commit it.
FUZZTIME   ?= 10m
# BENCH_ARGS go to the load driver, e.g. BENCH_ARGS='-only p1 -p1-creates 200'.
BENCH_ARGS ?=
SOAK_TIMEOUT ?= 90m

.PHONY: fuzz
fuzz: ## Fuzz the admission decoder and validate+default for $(FUZZTIME) each.
	go test ./webhook -run '^$$' -fuzz '^FuzzAdmissionReview$$' -fuzztime $(FUZZTIME)
	go test ./webhook -run '^$$' -fuzz '^FuzzValidateDefault$$' -fuzztime $(FUZZTIME)

.PHONY: bench
bench: envtest-run ## Measure P1-P6 and P9 side by side in one run (envtest on 127.0.0.1; P9 needs kube-controller-manager) and write BENCHMARKS.md.
	go run ./test/load -out BENCHMARKS.md -command 'make bench$(if $(BENCH_ARGS), BENCH_ARGS="$(BENCH_ARGS)")' $(BENCH_ARGS)

.PHONY: soak
soak: envtest ## The reliability drills, long versions (TASKGATE_SOAK=1): kill -9, hostile input, certificate rotation.
	TASKGATE_SOAK=1 go test -count=1 -timeout $(SOAK_TIMEOUT) -v ./test/drills/

# MUTATIONS: names from hack/mutation-check.sh to run only those (default: all).
MUTATIONS ?=

.PHONY: mutation
mutation: envtest ## Apply each deliberate breakage of hack/mutation-check.sh to a clean copy of HEAD and report caught/survived (not part of `make test`).
	hack/mutation-check.sh $(MUTATIONS)

.PHONY: verify-generated
verify-generated: generate manifests ## Fail when generated files differ from what is committed.
	@git diff --exit-code -- api config charts/taskgate/files || { echo "generated files are stale: run 'make generate manifests' and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- api config charts/taskgate/files)" || { git status --porcelain -- api config charts/taskgate/files; echo "untracked generated files: commit them"; exit 1; }

##@ Install and run (chart, plain manifests, image, local demo)

HELM           ?= $(ENVTEST_DIR)/helm
DIST_DIR       ?= dist
DIST_NAMESPACE ?= taskgate-system
IMG            ?= ghcr.io/astronetes/taskgate:dev

.PHONY: helm-lint
helm-lint: ## Lint the chart with its defaults and with cert-manager certificates.
	$(HELM) lint --strict charts/taskgate
	$(HELM) lint --strict charts/taskgate --set certs.mode=cert-manager

# install.yaml is the chart with its defaults plus the Namespace, for
# `kubectl apply -f`. The optional Synchronization CRD is a file of its own:
# `kubectl create -f` refuses to overwrite the Astronetes CRD where it exists.
.PHONY: dist
dist: ## Render the chart into $(DIST_DIR)/install.yaml and $(DIST_DIR)/synchronization-crd.yaml.
	mkdir -p $(DIST_DIR)
	{ printf '%s\n' '# taskgate: kubectl apply -f install.yaml' \
	    '# Generated by `make dist` from charts/taskgate with its default values; do not edit.' \
	    '---' 'apiVersion: v1' 'kind: Namespace' 'metadata:' '  name: $(DIST_NAMESPACE)' '  labels:' \
	    '    pod-security.kubernetes.io/enforce: restricted'; \
	  $(HELM) template taskgate charts/taskgate --namespace $(DIST_NAMESPACE) --skip-tests; \
	} >$(DIST_DIR)/install.yaml.tmp
	mv $(DIST_DIR)/install.yaml.tmp $(DIST_DIR)/install.yaml
	{ printf '%s\n' '# Only for clusters without the Astronetes operator: kubectl create -f synchronization-crd.yaml' \
	    '# Generated by `make dist` from charts/taskgate; do not edit.'; \
	  $(HELM) template taskgate charts/taskgate --namespace $(DIST_NAMESPACE) \
	    --set synchronizationCRD.install=true --show-only templates/synchronization-crd.yaml; \
	} >$(DIST_DIR)/synchronization-crd.yaml.tmp
	mv $(DIST_DIR)/synchronization-crd.yaml.tmp $(DIST_DIR)/synchronization-crd.yaml

# make run's fuller control plane: kube-controller-manager, kube-scheduler and
# kwok, built only here (not by `make test`), into the same cached directory.
KWOK_VERSION   ?= v0.8.0

.PHONY: envtest-run
envtest-run: ## What `make envtest` builds, plus kube-controller-manager, kube-scheduler and kwok $(KWOK_VERSION).
	K8S_VERSION=$(K8S_VERSION) ETCD_VERSION=$(ETCD_VERSION) HELM_VERSION=$(HELM_VERSION) KWOK_VERSION=$(KWOK_VERSION) \
	WITH_KUBECTL=1 WITH_HELM=1 WITH_CONTROLPLANE=1 hack/envtest-bins.sh $(ENVTEST_DIR)

.PHONY: envtest-node
envtest-node: ## What `make envtest` builds, plus kube-controller-manager, kube-scheduler, kubelet and kube-proxy for a real node (internal/node).
	K8S_VERSION=$(K8S_VERSION) ETCD_VERSION=$(ETCD_VERSION) HELM_VERSION=$(HELM_VERSION) \
	WITH_KUBECTL=1 WITH_HELM=1 WITH_NODE=1 hack/envtest-bins.sh $(ENVTEST_DIR)

# A real node (internal/node: make run, test/e2e) needs these Debian packages.
NODE_PACKAGES ?= containerd runc containernetworking-plugins iptables conntrack busybox-static iproute2

.PHONY: node-packages
node-packages: ## Install the Debian packages a real node needs (as root; apt-get runs only when one is missing).
	@missing=$$(for p in $(NODE_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then echo "a real node needs the Debian packages:" $$missing "(as root: make node-packages)"; exit 1; fi; \
	echo "installing" $$missing; \
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null

# E2E_ARGS go to go test, e.g. E2E_ARGS='-run TestRelease -v'.
E2E_ARGS ?=

.PHONY: test-e2e
test-e2e: envtest-node node-packages build ## The end-to-end suite on a real node (root): custom-image with real containers, the chart installed by helm.
	TASKGATE_E2E=require TASKGATE_E2E_BINARY=$(abspath $(BIN_DIR)/taskgate) go test -count=1 -timeout 25m ./test/e2e/ $(E2E_ARGS)

# make run starts a real node where it can (root); RUN_ARGS=--node=kwok skips it.
RUN_NODE_DEPS := $(if $(and $(filter 0,$(shell id -u)),$(if $(findstring --node=kwok,$(RUN_ARGS)),,yes)),envtest-node node-packages)

.PHONY: run
run: envtest-run build $(RUN_NODE_DEPS) ## Local control plane with a real node (root; else kwok simulates one), CRDs, webhooks, the manager, the samples applied; Ctrl-C stops it all.
	go run ./cmd/taskgate-local $(RUN_ARGS)

.PHONY: test-run
test-run: envtest-run ## test/run against make run's fuller control plane (kube-controller-manager, kube-scheduler, kwok).
	go test -count=1 -timeout 15m -tags controlplane ./test/run/

.PHONY: docker-build
docker-build: ## Build the image $(IMG) (needs a container engine; not available in CI here).
	docker build -t $(IMG) .
