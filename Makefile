# Two commands set everything up on a fresh Debian machine (as root):
#   make demo   the main job on the local stack: cold build, then a pruned rebuild
#   make test   the lint gate, then every test (starts its own registry and buildkitd)
# The daily loop needs neither root nor Debian:
#   make test-short   the pure and fake-based tests (stack-backed ones skip), under a minute
#   make lint         golangci-lint, actionlint, go mod tidy -diff
ACT_VERSION := v0.2.89
GOLANGCI_LINT_VERSION := v2.15.0
ACTIONLINT_VERSION := v1.7.12
GO_TEST_FLAGS ?= -race -count=1 -timeout 40m

.PHONY: deps test-deps test test-short lint demo bench dist clean

deps:
	bash hack/install-stack.sh >/dev/null

# The end-to-end tests (internal/e2e) also run nektos/act.
test-deps:
	bash hack/install-stack.sh --act >/dev/null

test: test-deps lint
	go vet ./...
	go test $(GO_TEST_FLAGS) ./...

test-short:
	go test -short ./...

# The linters are built once into the tool cache (hack/install-stack.sh --lint);
# after that this needs no network. actionlint checks every workflow, and each
# `uses: ./` step against action.yml's inputs; shellcheck and pyflakes stay off
# so that the result does not depend on what else the machine has installed.
# --allow-parallel-runners: two checkouts' make test may lint at once (golangci-lint
# otherwise refuses while another run holds its cache lock).
lint:
	@tools=$$(bash hack/install-stack.sh --lint) && \
	echo "golangci-lint run" && PATH="$$tools:$$PATH" golangci-lint run --allow-parallel-runners ./... && \
	echo "actionlint" && PATH="$$tools:$$PATH" actionlint -shellcheck= -pyflakes= .github/workflows/*.yml && \
	echo "go mod tidy -diff" && go mod tidy -diff

demo: deps
	go run ./hack/demo

# Benchmarks on the local stack; writes BENCHMARKS.md (about 30 minutes on 2 cores).
bench: deps
	go run ./hack/bench

# The release binaries and their SHA-256 list, which dist/launcher.js checks
# before running one. go.sum alone decides the modules (-mod=readonly, whatever
# GOFLAGS the machine has).
DIST_ARCHES := amd64 arm64

# BUILDKIT_IMAGE pins the BuildKit container the action may start (image@sha256:...);
# the release workflow resolves go.mod's BuildKit version to its digest.
BUILDKIT_IMAGE ?=
DIST_LDFLAGS := -s -w $(if $(BUILDKIT_IMAGE),-X github.com/ecr-build-cache/ecr-build-cache/internal/buildkitconn.Image=$(BUILDKIT_IMAGE))

dist:
	for arch in $(DIST_ARCHES); do \
		GOFLAGS=-mod=readonly CGO_ENABLED=0 GOOS=linux GOARCH=$$arch \
			go build -trimpath -buildvcs=false -ldflags='$(DIST_LDFLAGS)' -o dist/ecr-build-cache-linux-$$arch . || exit 1; \
	done
	cd dist && sha256sum $(DIST_ARCHES:%=ecr-build-cache-linux-%) > checksums.txt

clean:
	rm -f dist/ecr-build-cache-* dist/checksums.txt
