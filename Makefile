# lloom — build, test and generate.
#
#   make build      build ./lloom
#   make test       every test, race detector on (what CI runs)
#   make test-faults  process-level fault tests (SIGKILL, SIGSTOP, restarts)
#   make test-connections  200 real executors, each its own host and connection,
#                   against one validator for 90 s: no connection closed, none stale
#   make test-llm   inference through a real LLM engine (test/llm): Ollama v0.6.5
#                   serving the generated test model. Ollama is built first when
#                   not cached in $LLOOM_CACHE (default ~/.cache/lloom; about 4
#                   minutes on 2 cores); LLOOM_OLLAMA_BIN=PATH uses that binary
#   make test-netns reachability on a real topology (test/netns): network
#                   namespaces, NAT routers, relay and hole punching; root,
#                   iproute2 and nftables needed
#   make test-js    the gateway driven by the official openai npm SDK (test/js; npm ci,
#                   Node.js 20), against fake backends and the test engine
#   make test-browser  the validator's dashboard and the gateway's chat page in
#                   headless Chromium (test/browser; Debian's chromium, npm ci of
#                   puppeteer-core, Node.js 20); saves docs/dashboard.png and
#                   docs/chat.png (LLOOM_SCREENSHOT_DIR=DIR puts them elsewhere)
#   make bench      the benchmarks, with memory figures (CI sizes)
#   make bench-full the documented figures of docs/PERFORMANCE.md (about an hour)
#   make generate   regenerate protocol/pb from protocol/lloom.proto
#   make lint       gofmt and go vet

GO            ?= go
VERSION       ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
PROTOC_GEN_GO  = google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
BIN            = $(CURDIR)/bin
TEST_TIMEOUT  ?= 15m

export LIBP2P_TCP_REUSEPORT = false

.PHONY: build test test-browser test-netns test-faults test-connections test-llm test-js test-short bench bench-full bench-smoke generate check-generate lint fmt clean

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o lloom ./cmd/lloom

test:
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./...

# Builds the binary and the test binary, then runs them as root in the
# namespaces the tests create (and delete, also when they fail).
test-netns: build
	$(GO) test -c -tags netns -o $(BIN)/netns.test ./test/netns/
	LLOOM_BIN=$(CURDIR)/lloom LLOOM_NETNS_REPORT=$${LLOOM_NETNS_REPORT:-} $(BIN)/netns.test -test.v -test.count=1 -test.timeout 10m

# Chromium from Debian: apt-get install chromium (LLOOM_CHROMIUM=PATH for another).
test-browser: build
	LLOOM_BIN=$(CURDIR)/lloom LLOOM_SCREENSHOT_DIR=$${LLOOM_SCREENSHOT_DIR:-$(CURDIR)/docs} test/browser/run.sh

test-faults:
	$(GO) test -race -count=1 -tags faults -run Fault -timeout 15m -v ./test/e2e/

# Longer than go-libp2p's one-minute grace before trimming, and both cores
# busy: not in make test (bench/realconn_ci_test.go).
test-connections:
	$(GO) test -race -count=1 -tags realconn -run RealConnections -timeout 10m -v ./bench/

# The engine script prints the binary's path on stdout, progress on stderr.
test-llm:
	LLOOM_OLLAMA_BIN="$$(scripts/ollama-test-engine.sh build)" && export LLOOM_OLLAMA_BIN && \
	$(GO) test -race -count=1 -tags llm -timeout 15m ./test/llm/...

test-js: build
	LLOOM_OLLAMA_BIN="$$(scripts/ollama-test-engine.sh build)" && export LLOOM_OLLAMA_BIN && \
	LLOOM_BIN=$(CURDIR)/lloom test/js/run.sh

test-short:
	$(GO) test -short -count=1 ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem -timeout 30m ./...

# The sizes docs/PERFORMANCE.md reports, one figure group at a time.
BENCH_FULL = $(GO) test -run '^$$' -timeout 60m ./bench/
bench-full:
	$(BENCH_FULL) -bench 'Ingest$$' -benchtime 1x -count 3 -args -full
	$(BENCH_FULL) -bench 'IngestPaced' -benchtime 1x -count 2 -args -full
	$(BENCH_FULL) -bench 'VerifyEd25519|Open|Decode' -benchmem -benchtime 3000x -count 6
	$(BENCH_FULL) -bench 'AnnounceWarm' -benchtime 200x
	$(BENCH_FULL) -bench 'AnnounceColdAndRemoval' -benchtime 100x
	$(BENCH_FULL) -bench 'CrashStale' -benchtime 1x -args -full
	$(BENCH_FULL) -bench 'QueryServer' -benchtime 2000x -args -full
	$(BENCH_FULL) -bench 'QueryEndToEnd' -benchtime 1x -args -full
	$(BENCH_FULL) -bench 'RegistryMemory' -benchtime 1x -args -full
	$(BENCH_FULL) -bench 'Scale' -benchtime 4x -args -full
	$(GO) test -run '^$$' -bench QueryUnderFlood -benchtime 1000x ./node/nodetest/
	$(BENCH_FULL) -bench 'InferenceTTFT' -benchtime 500x
	$(BENCH_FULL) -bench 'InferenceThroughput' -benchtime 300x
	$(BENCH_FULL) -bench 'InferenceConcurrent' -benchtime 5x
	LLOOM_OLLAMA_BIN="$$(scripts/ollama-test-engine.sh build)" && export LLOOM_OLLAMA_BIN && \
	$(BENCH_FULL) -bench 'InferenceOllama' -benchtime 50x -args -full
	$(BENCH_FULL) -bench 'RealConnections' -benchtime 1x -args -full
	$(BENCH_FULL) -bench 'GatewayTTFT' -benchtime 2000x
	$(BENCH_FULL) -bench 'GatewayRate' -benchtime 5x -args -full
	$(BENCH_FULL) -bench 'GatewayStreams' -benchtime 5x -args -full

# CI only checks that the benchmarks build and run.
bench-smoke:
	$(GO) test -run '^$$' -bench . -benchtime 3x -timeout 10m ./...

$(BIN)/protoc-gen-go:
	GOBIN=$(BIN) $(GO) install $(PROTOC_GEN_GO)

generate: $(BIN)/protoc-gen-go
	PATH="$(BIN):$$PATH" protoc --proto_path=protocol \
		--go_out=. --go_opt=module=github.com/lloom/lloom protocol/lloom.proto

check-generate: generate
	git diff --exit-code -- protocol/pb

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$')); \
	if [ -n "$$out" ]; then echo "not gofmt-formatted:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go' | grep -v '\.pb\.go$$')

clean:
	rm -rf lloom $(BIN)
