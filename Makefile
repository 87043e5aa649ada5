# Rotary: build, test, lint and demo. `make help` lists the targets.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
GO ?= go

FUNCTIONS := $(notdir $(wildcard functions/*))
ZIPS := $(FUNCTIONS:%=dist/%.zip)
# Unit tests: every package of the functions' module but the end-to-end
# tests, which have their own target. The CDK app is its own module in infra/
# (so the Lambda code's module graph carries no CDK bindings); test-infra
# tests it, and lint checks both modules.
UNIT_PKGS = $$($(GO) list ./... | grep -v -e /integration)
INFRA_TEST_PKGS ?= ./...
# The PostgreSQL tests run on every major version in pgcluster.Majors. The
# race detector checks Go code, which is the same whichever server answers,
# so the unit tests run with -race on Debian's PostgreSQL 15 only, and the
# PostgreSQL packages then run again, without -race, on the other versions
# (installed by scripts/install-postgres-versions.sh).
PG_OTHER_MAJORS := 13,14,16,17,18
PG_VERSION_PKGS := ./internal/pgcluster/... ./pkg/credentials/postgres

# Fuzz targets as package:Target; `make fuzz` runs each for FUZZTIME (go test
# -fuzz takes one target in one package per run). FUZZFLAGS adds flags, such
# as -parallel 1 on a shared machine. `go test` (so `make test`) already runs
# every target's seeds (f.Add and testdata/fuzz/<Target>/) as unit tests.
FUZZTIME ?= 30s
FUZZFLAGS ?=
FUZZ_TARGETS := \
	./pkg/dbsecret:FuzzParse \
	./pkg/rotation:FuzzEvent \
	./pkg/rotation:FuzzScrub \
	./pkg/password:FuzzPolicy \
	./pkg/smlocal:FuzzRequest \
	./pkg/smlocal:FuzzSchedule

.PHONY: help build test unit integration test-infra lint bench fuzz demo clean
.DEFAULT_GOAL := help

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

build: $(ZIPS) ## Build every function as a linux/arm64 Lambda zip in dist/

# A stripped, static bootstrap for provided.al2023 on arm64, zipped with a
# fixed timestamp so that the same code gives the same zip (and CDK asset hash).
dist/%.zip: FORCE
	@mkdir -p dist/build/$*
	GOOS=linux GOARCH=arm64 CGO_ENABLED=0 $(GO) build -tags lambda.norpc -trimpath -buildvcs=false \
		-ldflags='-s -w -buildid=' -o dist/build/$*/bootstrap ./functions/$*
	@touch -t 198001010000 dist/build/$*/bootstrap
	@rm -f $@ && (cd dist/build/$* && zip -q -X ../../$*.zip bootstrap)
	@echo "built $@ ($$(du -k $@ | cut -f1) KiB)"

FORCE:

test: lint unit integration test-infra ## Lint, unit tests with -race, end-to-end tests, CDK tests

unit: ## Unit tests (with -race), including the database tests; PostgreSQL ones on every version
	ROTARY_PG_MAJORS=15 $(GO) test -race -count=1 $(UNIT_PKGS)
	ROTARY_PG_MAJORS=$(PG_OTHER_MAJORS) $(GO) test -count=1 $(PG_VERSION_PKGS)

integration: ## End-to-end: real function binaries under the Lambda runtime emulator
	$(GO) test -count=1 -timeout 15m ./integration/...

test-infra: ## Synthesize the CDK app for real and check it (assertions, cdk-nag)
	cd infra && JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20 $(GO) test -count=1 -timeout 20m $(INFRA_TEST_PKGS)

# Both modules (. and infra/): gofmt, go.mod and go.sum tidy, go vet, and
# staticcheck and errcheck, pinned as tools in the root go.mod (go tool -n
# prints the built tool's path, which then runs in infra/ too).
lint: ## gofmt, go.mod tidy, go vet, staticcheck, errcheck, in both modules
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path '*/node_modules/*')); \
		if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	@for m in . infra; do \
		(cd $$m && $(GO) mod tidy -diff) || { echo "$$m/go.mod or go.sum is not tidy: run 'go mod tidy' in $$m and commit the result"; exit 1; }; \
	done
	$(GO) vet ./...
	cd infra && $(GO) vet ./...
	@sc=$$($(GO) tool -n staticcheck) && ec=$$($(GO) tool -n errcheck) && \
		for m in . infra; do \
			echo "staticcheck and errcheck in $$m"; \
			(cd $$m && $$sc ./... && $$ec -exclude $(CURDIR)/.errcheck-excludes ./...) || exit 1; \
		done

# Every benchmark, BENCHCOUNT runs of each, one package at a time (-p 1: no
# benchmark shares the two cores with another), into docs/benchmarks.md
# (internal/benchreport: min/median/max, ratios to the same run's baseline
# and to the previous report). BENCH selects benchmarks (a -bench pattern).
BENCHCOUNT ?= 5
BENCHTIME ?= 1s
BENCH ?= .
BENCH_PKGS := ./pkg/... ./internal/coldstart/... ./integration/...
# The fleets (integration's BenchmarkFleet: 1,000 and 10,000 secrets at
# once) take minutes each, so they run once, after the others.
bench: ## Every benchmark, BENCHCOUNT runs each (the fleets once); writes docs/benchmarks.md
	{ ROTARY_PG_MAJORS=15 $(GO) test -p 1 -run '^$$' -bench '$(BENCH)' -skip '^BenchmarkFleet$$' -benchmem -benchtime $(BENCHTIME) -count $(BENCHCOUNT) -timeout 30m $(BENCH_PKGS) && \
	  ROTARY_PG_MAJORS=15 $(GO) test -run '^$$' -bench '^BenchmarkFleet$$' -benchmem -count 1 -timeout 30m ./integration/; } \
		| $(GO) run ./internal/benchreport -out docs/benchmarks.md

# Every Fuzz function in the tree must be listed in FUZZ_TARGETS, so that no
# target is left out. A crasher is written to the package's testdata/fuzz/
# <Target>/: fix the code and keep the file, it is then a regression test.
fuzz: ## Run each fuzz target for FUZZTIME (default 30s), one after another
	@listed="$$(printf '%s\n' $(FUZZ_TARGETS) | sed 's/.*://' | sort)"; \
	found="$$(grep -rhoE '^func Fuzz[A-Za-z0-9_]+' --include='*_test.go' --exclude-dir=node_modules --exclude-dir=cdk.out . | sed 's/^func //' | sort)"; \
	if [ "$$listed" != "$$found" ]; then echo "FUZZ_TARGETS does not list every Fuzz function:"; diff <(echo "$$listed") <(echo "$$found") || true; exit 1; fi
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "== $$name ($$pkg) for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $(FUZZFLAGS) $$pkg || exit 1; \
	done

demo: ## Rotate a secret three times on the local stack and show every step
	$(GO) run ./cmd/rotary demo

clean: ## Remove build output
	rm -rf dist

-include infra/infra.mk
