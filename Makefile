# The two commands a newcomer needs are `make up` and `make test`; both install what they need.
SHELL := /bin/bash
export PATH := $(PATH):/usr/local/go/bin:/usr/sbin
GO ?= go
BIN := $(CURDIR)/bin
CMDS := guid/cmd/guidd scrap/cmd/scrapd postsvc/cmd/postsvcd writeback/cmd/writebackd \
	tools/zoo_setup tools/redismon tools/devcluster tools/workwebui tools/loadgen tools/zkexporter \
	tools/benche2e tools/httpbaseline
# The whole suite runs on 2 shared cores; packages with real servers run two at a time.
TEST_TIMEOUT ?= 25m

.PHONY: deps modules build test test-short compose-check up down status bench bench-e2e fuzz clean

deps:
	@bash tools/deps.sh

modules:
	$(GO) mod download

build: modules
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ $(addprefix ./,$(CMDS))

test: deps modules
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./...

test-short: modules
	$(GO) test -short -timeout $(TEST_TIMEOUT) ./...

# docker-compose.yml against a real Docker engine, with local stand-ins for the public images
# (docs/compose.md). Run as root: it installs and starts what it needs, and prints `N passed, M failed`.
compose-check: modules
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/composecheck ./tools/composecheck
	$(BIN)/composecheck

up: deps build
	$(BIN)/devcluster up

down:
	@if [ -x $(BIN)/devcluster ]; then $(BIN)/devcluster down; else echo "nothing to stop: bin/devcluster not built"; fi

status:
	$(BIN)/devcluster status

# Benchmarks report ratios against baselines measured in the same run; see the README.
bench: deps build
	$(GO) test -run '^$$' -bench . -benchmem ./discovery/ ./guid/ ./scrap/ ./writeback/ ./postsvc/
	bash tools/bench/guid.sh
	bash tools/bench/scrap.sh

# The whole cluster, write-back against write-through (and the read scenarios), interleaved A B A B;
# uses the cluster in BENCH_DIR or brings one up there. QUICK=1 for shorter rounds. See
# docs/benchmarks.md.
BENCH_DIR ?= /tmp/zkpost-bench-dc
BENCH_E2E_FLAGS ?=
bench-e2e: deps build
	$(BIN)/benche2e --bin $(BIN) --dir $(BENCH_DIR) $(BENCH_E2E_FLAGS)

# Each fuzz target for a short while (go test runs only their seed corpora).
FUZZTIME ?= 20s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
		list=$$($(GO) test -list '^Fuzz' $$pkg) || { echo "$$list"; exit 1; }; \
		for f in $$(echo "$$list" | grep '^Fuzz'); do \
			echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
		done; \
	done

clean:
	rm -rf $(BIN)
