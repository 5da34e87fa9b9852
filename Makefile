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
FUZZTIME       ?= 30s

.PHONY: all
all: generate manifests fmt vet build

.PHONY: generate
generate: ## Generate deepcopy code for the API types.
	$(CONTROLLER_GEN) object paths=./api/...

.PHONY: manifests
manifests: ## Generate the CRDs and copy them into the chart.
	$(CONTROLLER_GEN) crd paths=./api/... output:crd:dir=config/crd
	mkdir -p charts/taskgate/crds
	cp config/crd/automation.astronetes.io_tasks.yaml charts/taskgate/crds/

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

.PHONY: test
test: envtest ## Unit tests, then integration tests against a real kube-apiserver + etcd.
	go test ./api/... ./schemas/... ./webhook/... ./controller/... ./cmd/...
	go test -count=1 -timeout 20m ./test/...

.PHONY: fuzz
fuzz: ## Run each fuzz target for $(FUZZTIME).
	go test ./webhook -run '^$$' -fuzz '^FuzzAdmissionReview$$' -fuzztime $(FUZZTIME)
	go test ./webhook -run '^$$' -fuzz '^FuzzValidateDefault$$' -fuzztime $(FUZZTIME)

.PHONY: bench
bench: ## In-process validate+default benchmarks.
	go test ./webhook -run '^$$' -bench . -benchmem

.PHONY: verify-generated
verify-generated: generate manifests ## Fail when generated files differ from what is committed.
	@git diff --exit-code -- api config charts/taskgate/crds || { echo "generated files are stale: run 'make generate manifests' and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- api config charts/taskgate/crds)" || { git status --porcelain -- api config charts/taskgate/crds; echo "untracked generated files: commit them"; exit 1; }
