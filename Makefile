# jeton — Kubernetes operator for French public-sector API tokens.
# `make help` lists the targets. `make dev` runs everything locally; `make test` is what CI runs.

# Namespaces where Habilitations and TechnicalTokens are honoured, for `make run`.
CREDENTIALS_NAMESPACES ?= jeton-system

ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
BIN := $(ROOT)/bin
CONTROLLER_GEN := $(BIN)/controller-gen
KUSTOMIZE := $(BIN)/kustomize
STATICCHECK := $(BIN)/staticcheck
KUBECTL ?= $(BIN)/kubectl
HELM := $(BIN)/helm
IMAGE_BUILDER := $(BIN)/jeton-image

CONTROLLER_GEN_VERSION := v0.23.0
KUSTOMIZE_VERSION := v5.8.1
STATICCHECK_VERSION := v0.8.2
# Helm 3: the CLI most platform teams run, and the SDK Argo CD and Flux embed. The chart
# (apiVersion v2) installs with Helm 4 too.
HELM_VERSION := v3.22.0

# The release version: the VERSION file is its one source. The binaries (--version), the
# image's tag and labels, install.yaml and the packaged chart take it from here; the chart's
# version and appVersion in dist/chart/Chart.yaml follow it (`make manifests` writes them,
# `make check-generated` fails when they disagree). `make release VERSION=v0.2.0-rc.1` overrides it.
VERSION ?= $(shell cat $(ROOT)/VERSION)
# The commit, stamped into the binaries and the image's revision label.
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
# The build time of everything: the commit's, so that rebuilding a commit gives the same
# binaries, image, archives and chart, byte for byte.
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
# SPDX expression of LICENSE, for the image's org.opencontainers.image.licenses label.
LICENSES ?= Apache-2.0
# Image used by image, release, build-installer and deploy: by default the one the chart runs.
IMAGE_REPO ?= ghcr.io/jeton-dev/jeton
IMG ?= $(IMAGE_REPO):$(VERSION)
# Link flags stamping internal/version in every binary (manager, plugin, image).
VERSION_PKG := github.com/jeton-dev/jeton/internal/version
VERSION_LDFLAGS := -X $(VERSION_PKG).version=$(VERSION) -X $(VERSION_PKG).commit=$(REVISION) -X $(VERSION_PKG).sourceDateEpoch=$(SOURCE_DATE_EPOCH)

# Two packages at a time fits a 2-core machine: each test package may start its own
# control plane (etcd + kube-apiserver; test/cluster and hack/dev also start
# kube-controller-manager, kube-scheduler and KWOK).
# The timeout is per package: test/packaging's TestRelease cross-compiles the manager and the
# plugin six times, about 20 min with a cold Go build cache on a busy 2-core machine (1 min warm).
GO_TEST_FLAGS ?= -count=1 -p 2 -timeout 45m

SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "\nUsage:\n  make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: dev
dev: tools control-plane ## Run everything locally: a small cluster (simulated nodes), CRDs, samples, API emulator and the operator (Ctrl-C stops all).
	@# Built, not `go run`: `go run` exits 1 on Ctrl-C even when everything stopped cleanly.
	go build -o $(BIN)/jeton-dev ./hack/dev
	$(BIN)/jeton-dev

.PHONY: generate
generate: tools ## Generate deepcopy code (zz_generated.deepcopy.go) from the API types.
	$(CONTROLLER_GEN) object paths=./api/...

.PHONY: manifests
manifests: tools ## Generate CRDs (config/crd/bases) and the manager ClusterRole (config/rbac/role.yaml) from markers; copy them into the Helm chart, its version from VERSION.
	$(CONTROLLER_GEN) crd rbac:roleName=manager-role paths=./... output:crd:artifacts:config=config/crd/bases
	hack/sync-chart.sh

.PHONY: check-generated
check-generated: tools ## Fail if the committed deepcopy, CRDs or RBAC differ from what the sources generate, or the chart's version from VERSION.
	CONTROLLER_GEN=$(CONTROLLER_GEN) hack/check-generated.sh
	hack/sync-chart.sh --check

.PHONY: fmt
fmt: ## Run gofmt on the module.
	go fmt ./...

.PHONY: vet
vet: ## Run go vet.
	go vet ./...

.PHONY: lint
lint: $(STATICCHECK) ## staticcheck (pinned), and go.mod/go.sum as `go mod tidy` leaves them.
	$(STATICCHECK) ./...
	@go mod tidy -diff || { echo "go.mod or go.sum is not tidy: run go mod tidy"; exit 1; }

.PHONY: test
test: tools packaging-tools control-plane check-generated vet lint ## Check generated files, vet, lint, run every Go test on a real control plane, then the alert tests.
	KUBEBUILDER_ASSETS=$(BIN) go test $(GO_TEST_FLAGS) ./...
	bash hack/test-alerts.sh
	bash hack/fuzz.sh

# Flags of `make bench`, e.g. BENCH_FLAGS="-quick" or BENCH_FLAGS="-n 2000 -runs 5".
BENCH_FLAGS ?=

.PHONY: bench
bench: control-plane ## Benchmark the operator on a local control plane (about 21 min, the gateway included; BENCH_FLAGS=-quick for a smoke run, BENCH_FLAGS="-scenarios gateway" for the gateway alone). See docs/benchmarks.md.
	go run ./hack/bench $(BENCH_FLAGS)

##@ Build

.PHONY: build
build: ## Build the manager binary into bin/jeton.
	CGO_ENABLED=0 go build -trimpath -ldflags "$(VERSION_LDFLAGS)" -o $(BIN)/jeton ./cmd

.PHONY: plugin
plugin: ## Build the kubectl plugin into bin/kubectl-jeton (with bin/kubectl_complete-jeton for `kubectl jeton <TAB>`).
	CGO_ENABLED=0 go build -trimpath -ldflags "$(VERSION_LDFLAGS)" -o $(BIN)/kubectl-jeton ./cmd/kubectl-jeton
	install -m 0755 $(ROOT)/cmd/kubectl-jeton/kubectl_complete-jeton $(BIN)/kubectl_complete-jeton

.PHONY: run
run: build ## Run the manager from your machine against the cluster of the current KUBECONFIG.
	$(BIN)/jeton --credentials-namespaces=$(CREDENTIALS_NAMESPACES)

.PHONY: build-installer
build-installer: $(KUSTOMIZE) ## Write the release bundle dist/install.yaml (config/default with image IMG): kubectl apply --server-side -f dist/install.yaml.
	VERSION=$(VERSION) KUSTOMIZE=$(KUSTOMIZE) hack/build-installer.sh "$(IMG)" dist/install.yaml

# Where make image writes the image: an OCI image layout (a directory; crane push --index or
# skopeo copy --all oci: pushes it).
IMAGE_DIR ?= dist/image

.PHONY: image
image: $(IMAGE_BUILDER) ## Build the OCI image (/manager and /jeton-gateway; linux/amd64 and linux/arm64, one index) into IMAGE_DIR without a daemon or a base image.
	SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) $(IMAGE_BUILDER) -out $(IMAGE_DIR) -ref "$(IMG)" -version "$(VERSION)" -revision "$(REVISION)" -licenses "$(LICENSES)" \
		-ldflags "$(VERSION_LDFLAGS)" -source https://github.com/jeton-dev/jeton -platforms linux/amd64,linux/arm64

# Where make release writes every artifact of a release (replaced; git-ignored).
RELEASE_DIR ?= dist/release

.PHONY: release
release: packaging-tools $(KUSTOMIZE) ## Write every artifact of release VERSION into RELEASE_DIR: OCI image layout, packaged chart, install.yaml, kubectl plugin archives and krew manifest, SHA256SUMS. Reproducible for a commit.
	@[[ "$(VERSION)" =~ ^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$$ ]] || { echo "VERSION=$(VERSION) is not vMAJOR.MINOR.PATCH[-PRERELEASE]" >&2; exit 1; }
	rm -rf $(RELEASE_DIR)
	mkdir -p $(RELEASE_DIR)
	$(MAKE) --no-print-directory image IMAGE_DIR=$(RELEASE_DIR)/image IMG=$(IMG) VERSION=$(VERSION) REVISION=$(REVISION) SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH)
	$(HELM) package dist/chart --version $(VERSION:v%=%) --app-version $(VERSION) --destination $(RELEASE_DIR)
	VERSION=$(VERSION) KUSTOMIZE=$(KUSTOMIZE) hack/build-installer.sh "$(IMG)" $(RELEASE_DIR)/install.yaml
	SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) go run ./hack/release -dir $(RELEASE_DIR) -version $(VERSION) -ldflags "$(VERSION_LDFLAGS)"

.PHONY: clean
clean: ## Remove built binaries and the local-run state (keeps the Go build cache, so rebuilding is fast).
	rm -rf $(BIN) .dev

##@ Deployment

.PHONY: install
install: tools ## Install the CRDs into the cluster of the current KUBECONFIG.
	$(KUSTOMIZE) build config/crd | $(KUBECTL) apply --server-side -f -

.PHONY: uninstall
uninstall: tools ## Remove the CRDs (and every jeton resource!) from the cluster.
	$(KUSTOMIZE) build config/crd | $(KUBECTL) delete --ignore-not-found -f -

.PHONY: deploy
deploy: tools ## Deploy the operator (config/default) with image IMG.
	cd config/manager && $(KUSTOMIZE) edit set image controller=$(IMG)
	$(KUSTOMIZE) build config/default | $(KUBECTL) apply --server-side -f -

.PHONY: undeploy
undeploy: tools ## Remove the operator (config/default) from the cluster.
	$(KUSTOMIZE) build config/default | $(KUBECTL) delete --ignore-not-found -f -

##@ Tools

.PHONY: tools
tools: $(CONTROLLER_GEN) $(KUSTOMIZE) ## Install controller-gen and kustomize at pinned versions into bin/.

# Reinstalled when missing or at another version (the version is checked on every run).
.PHONY: $(CONTROLLER_GEN) $(KUSTOMIZE) $(STATICCHECK) $(HELM) $(IMAGE_BUILDER)
$(CONTROLLER_GEN):
	@if ! [[ "$$($@ --version 2>/dev/null)" == *"$(CONTROLLER_GEN_VERSION)"* ]]; then \
		echo ">> installing controller-gen $(CONTROLLER_GEN_VERSION)"; \
		GOBIN=$(BIN) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_GEN_VERSION); \
	fi
$(STATICCHECK):
	@if ! [[ "$$($@ -version 2>/dev/null)" == *"($(STATICCHECK_VERSION:v%=%))"* ]]; then \
		echo ">> installing staticcheck $(STATICCHECK_VERSION)"; \
		GOBIN=$(BIN) go install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION); \
	fi
$(KUSTOMIZE):
	@if ! [[ "$$($@ version 2>/dev/null)" == *"$(KUSTOMIZE_VERSION)"* ]]; then \
		echo ">> installing kustomize $(KUSTOMIZE_VERSION)"; \
		GOBIN=$(BIN) go install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION); \
	fi

.PHONY: packaging-tools
packaging-tools: $(HELM) $(IMAGE_BUILDER) ## Install helm at a pinned version and build the image builder into bin/.

$(HELM):
	@# helm built by go install reports only its minor version: read the module's instead.
	@if ! [[ "$$(go version -m $@ 2>/dev/null | awk '$$1 == "mod" {print $$3}')" == "$(HELM_VERSION)" ]]; then \
		echo ">> installing helm $(HELM_VERSION)"; \
		GOBIN=$(BIN) go install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION); \
	fi
# A small program on go-containerregistry (pinned in hack/image/go.mod, its own module so
# that the manager's go.mod stays free of it). go build is incremental: seconds when cached.
# Rebuilt when its sources change (what the image holds is decided there).
$(IMAGE_BUILDER): $(wildcard hack/image/*.go) hack/image/go.mod hack/image/go.sum
	go build -C hack/image -o $@ .

.PHONY: control-plane
control-plane: ## Build etcd, kube-apiserver, kubectl, kube-controller-manager, kube-scheduler and KWOK into bin/ (minutes when cold, instant when cached).
	hack/build-control-plane.sh
