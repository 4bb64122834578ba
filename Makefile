# Tombstone. `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
BIN := bin/console
FUZZTIME ?= 20s
export TOMBSTONE_TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable

.PHONY: help build demo test test-race test-faults soak fuzz vuln lint generate check-generated bench screenshots clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

build: ## build bin/console
	$(GO) build -o $(BIN) ./cmd/console

demo: build ## create the demo databases and users, and serve on http://127.0.0.1:8080
	./$(BIN) demo

test: ## run every test (needs PostgreSQL; browser tests need chromium)
	$(GO) test -count=1 -timeout 30m ./...

test-race: ## run every test with the race detector
	$(GO) test -race -count=1 -timeout 45m ./...

test-faults: ## fault suite: PostgreSQL restarts, killed workers, timeouts, deadlocks, console database down (needs initdb/pg_ctl)
	$(GO) test -tags faults -count=1 -timeout 20m ./internal/faults/

fuzz: ## run each fuzz target for FUZZTIME (default 20s)
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./internal/config/
	$(GO) test -run '^$$' -fuzz '^FuzzRootTerm$$' -fuzztime $(FUZZTIME) ./internal/preview/
	$(GO) test -run '^$$' -fuzz '^FuzzCSVExport$$' -fuzztime $(FUZZTIME) ./internal/audit/
	$(GO) test -run '^$$' -fuzz '^FuzzCanonicalJSON$$' -fuzztime $(FUZZTIME) ./internal/audit/
	$(GO) test -run '^$$' -fuzz '^FuzzSafeNext$$' -fuzztime $(FUZZTIME) ./internal/web/

vuln: ## check dependencies for known vulnerabilities (needs network access to vuln.go.dev; not run in CI)
	$(GO) run golang.org/x/vuln/cmd/govulncheck@v1.9.0 ./...

soak: ## soak test for SOAK_DURATION (default 5m) on private clusters on 127.0.0.1
	$(GO) test -tags soak -count=1 -timeout 60m -v -run TestSoak ./internal/soak/

lint: ## gofmt, go vet and staticcheck
	@out=$$(gofmt -l $$(find . -name '*.go' -not -path './.git/*')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags faults ./internal/faults/ ./internal/exec/
	$(GO) vet -tags soak ./internal/soak/
	$(GO) tool staticcheck ./...

generate: ## regenerate templ components
	$(GO) tool templ generate

check-generated: generate ## fail when generated files are not committed
	@git diff --exit-code -- '*_templ.go' || { echo "generated files are stale: run make generate and commit"; exit 1; }

bench: ## run the benchmark suite and print one table, saved to docs/benchmarks.md (BENCH_SIZES, BENCH_LARGE=1 for 10M, BENCH_RUNS, BENCH_KEEP=1; needs wrk)
	@command -v wrk >/dev/null || { echo "make bench needs wrk (Debian: apt-get install -y wrk)"; exit 1; }
	BENCH_OUT=$${BENCH_OUT:-docs/benchmarks.md} $(GO) test -run '^$$' -bench . -benchtime 1x -timeout 180m ./internal/bench/

screenshots: ## regenerate docs/screenshots (the README's feature tour) with the end-to-end browser suite
	rm -f docs/screenshots/*.png
	TOMBSTONE_SCREENSHOTS=$(CURDIR)/docs/screenshots $(GO) test -count=1 -run 'TestE2ETenantJourney$$' ./cmd/console/

clean: ## remove build output
	rm -rf bin
