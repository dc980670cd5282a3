# Strata — build, test and demo. `make help` lists the targets.

GO       ?= go
BIN      := bin
PLUGINS  := $(BIN)/plugins
GOBIN    := $(shell $(GO) env GOPATH)/bin
PROTOC_GEN_GO_VERSION      := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.5.1
STATICCHECK_VERSION        := v0.8.2

PLUGIN_NAMES := libp2p devp2p none whisper doubleratchet mvds bsp mixnet mls
PROTOS := $(wildcard core/api/*/v1/*.proto)
# Plugins' own wire formats: plugins/<name>/wirepb/*.proto.
PLUGIN_PROTOS := $(wildcard plugins/*/wirepb/*.proto)

.PHONY: all build plugins strata demo demo-ci test test-full test-mls-200 flood bench bench-stack bench-groups bench-mls bench-mixnet fuzz proto tools lint vet staticcheck example interop clean help

all: build

help:
	@echo "make demo       three users on loopback with the default stack: 1:1, group and public chat (builds what it needs)"
	@echo "make demo-ci    the demo on the default stack (libp2p+mixnet+mls+bsp) and on devp2p+whisper+doubleratchet+mvds (make test runs it)"
	@echo "make test       the test suite CI runs (short mode)"
	@echo "make test-full  every test without -short, with the race detector"
	@echo "make test-mls-200  a group of 200 members through the host, in eight processes (about 15 min on 2 CPUs: docs/plugins/mls.md)"
	@echo "make flood      200,000 whisper envelopes through each shipped relay, nothing dropped"
	@echo "make bench      the plugin-boundary and layer benchmarks, then bench-stack and bench-groups"
	@echo "make bench-stack  the full stack on the speed scenarios (strata compare)"
	@echo "make bench-groups group-20 on the none and the whisper stack (strata compare)"
	@echo "make bench-mls  the MLS library: Commit, Join, messages up to 10,000 members"
	@echo "make bench-mixnet the second stack against the first on small-1to1 and group-20 (strata compare)"
	@echo "make fuzz       each fuzz target for FUZZTIME (default 30s)"
	@echo "make proto      regenerate core/api/*/v1 from the .proto files"
	@echo "make lint       gofmt, go vet and staticcheck"
	@echo "make example    build and test the example third-party plugins (padded, rot13)"
	@echo "make interop    test the go-ethereum v1.9.20 whisper reference (interop/whisperv6)"

build: strata plugins

strata:
	$(GO) build -o $(BIN)/strata ./host/cmd/strata

plugins:
	@mkdir -p $(PLUGINS)
	@for p in $(PLUGIN_NAMES); do \
		echo "build $(PLUGINS)/strata-plugin-$$p"; \
		$(GO) build -o $(PLUGINS)/strata-plugin-$$p ./plugins/$$p/cmd/strata-plugin-$$p || exit 1; \
	done

demo: build
	$(BIN)/strata plugins lock --dir $(PLUGINS)
	$(BIN)/strata demo --plugins $(PLUGINS)

# The three-user demo as CI runs it: on the default stack (libp2p + mixnet
# + mls + bsp, with its mixnet) and on devp2p + whisper + doubleratchet +
# mvds (a relay included), each under a minute once built.
demo-ci: build
	$(BIN)/strata plugins lock --dir $(PLUGINS)
	$(BIN)/strata demo --plugins $(PLUGINS) --timeout 2m
	$(BIN)/strata demo --stack configs/devp2p-whisper-dr-mvds.yaml --timeout 90s

test:
	$(GO) test -short -count=1 ./...
	$(MAKE) example
	$(MAKE) interop
	$(MAKE) demo-ci

# The go-ethereum v1.9.20 reference (whisperv6) lives in its own module.
interop:
	$(MAKE) -C interop/whisperv6 test

test-full:
	$(GO) test -race -count=1 ./...
	cd examples/plugins/padded && $(GO) test -race -count=1 ./...
	cd examples/plugins/rot13 && $(GO) test -race -count=1 ./...
	$(MAKE) flood

# A group of 200 members through the host (docs/plugins/mls.md): 200
# libp2p+none+mls+mvds stacks in eight processes of the test binary, every
# node a contact of every other, one member making the group, two posts
# from every member reaching every member. Each process logs its progress
# every 30 s. On a 2-CPU, 23 GiB machine it takes about a quarter of an
# hour (docs/plugins/mls.md, "Large groups through the host");
# STRATA_MLS_GROUP_SIZE=100 takes about two minutes.
test-mls-200:
	STRATA_MLS_GROUP_SIZE=200 $(GO) test -count=1 -timeout 90m -run '^TestFullStackMLSGroupSizes$$' -v ./host/node/

# The whisper relays (devp2p and libp2p, run as processes from configs/)
# flooded with 200,000 envelopes each, and two relays flooding each other:
# every envelope arrives, nothing is dropped. `make test` runs a tenth.
flood:
	$(GO) test -count=1 -timeout 30m -run '^TestFlood' -v ./plugins/whisper/

bench:
	$(GO) test -run '^$$' -bench . -benchtime 2s ./core/sdk/ ./plugins/libp2p/
	$(GO) test -run '^$$' -bench . -benchtime 2000x -count 3 ./plugins/doubleratchet/ratchet/
	$(GO) test -run '^$$' -bench . -benchtime 200x -count 3 ./plugins/doubleratchet/x3dh/
	$(GO) test -run '^$$' -bench LayerSealOpen -benchtime 3000x -count 3 ./plugins/doubleratchet/
	$(GO) test -run '^$$' -bench 'BenchmarkSync|BenchmarkWireBytes' ./plugins/mvds/
	$(GO) test -run '^$$' -bench 'FullStackWireBytes/burst' -benchtime 300x ./host/node/
	$(GO) test -run '^$$' -bench 'FullStackWireBytes/paced' -benchtime 100x ./host/node/
	$(GO) test -run '^$$' -bench 'BenchmarkForward$$' -benchtime 200000x ./plugins/whisper/
	$(GO) test -run '^$$' -bench 'BenchmarkForwardInProcess$$|BenchmarkLayerRelay$$' -benchtime 100000x ./plugins/whisper/
	$(GO) test -run '^$$' -bench 'BenchmarkSeal$$' -benchtime 300x -cpu 1,2 ./plugins/whisper/
	$(GO) test -run '^$$' -bench . ./plugins/whisper/wire/
	$(GO) test -run '^$$' -bench . -count 3 ./plugins/doubleratchet/senderkey/
	$(GO) test -run '^$$' -bench 'Unwrap|X25519|NewPacket' -count 3 ./plugins/mixnet/sphinx/
	$(GO) test -run '^$$' -bench . -count 3 ./plugins/mixnet/aez/
	$(GO) test -run '^$$' -bench . ./plugins/mixnet/replay/
	$(MAKE) bench-stack
	$(MAKE) bench-groups

# Groups on whisper (docs/performance.md): group-20 on the none stack and
# on the whisper stack, each as users run it. About seven minutes.
bench-groups: build
	$(BIN)/strata plugins lock --dir $(PLUGINS)
	$(BIN)/strata compare configs/libp2p-none-dr-mvds.yaml configs/devp2p-whisper-dr-mvds.yaml \
		--scenario configs/scenarios/group-20.yaml --out $(BENCH_OUT)/group-20 --quiet

# The MLS library (docs/performance.md, "MLS"): Commit, Join and messages
# at 10, 100, 1,000 and 10,000 members, full and sparse trees, beside the
# primitives' cost in the same run. About ten minutes.
bench-mls:
	STRATA_MLS_BENCH_LARGE=1 $(GO) test -run '^$$' -bench 'Primitives|Commit|Join|Message' -benchtime 10x -timeout 30m ./plugins/mls/group/

# The second stack against the first (issue 19): small-1to1 and group-20,
# every layer a process, the mixnet built by strata compare.
bench-mixnet: build
	$(BIN)/strata plugins lock --dir $(PLUGINS)
	@for sc in small-1to1 group-20; do \
		$(BIN)/strata compare configs/devp2p-whisper-dr-mvds.yaml configs/libp2p-mixnet-mls-bsp.yaml \
			--scenario configs/scenarios/$$sc.yaml --out $(BENCH_OUT)/mixnet-$$sc --quiet || exit 1; \
	done

# The full stack as users run it (every layer a process, started from the
# shipped configs) on the speed scenarios, through strata compare. Reports
# go to $(BENCH_OUT)/<scenario>/. About six minutes.
BENCH_OUT ?= bench-reports
bench-stack: build
	$(BIN)/strata plugins lock --dir $(PLUGINS)
	@for sc in latency latency-5k throughput; do \
		$(BIN)/strata compare configs/libp2p-none-dr-mvds.yaml configs/libp2p-none-dr-bsp.yaml \
			--scenario configs/scenarios/$$sc.yaml --out $(BENCH_OUT)/$$sc --quiet || exit 1; \
	done

FUZZTIME ?= 30s
# Every Fuzz target in the module, found by name, each run for FUZZTIME.
fuzz:
	@grep -rl --include='*_test.go' '^func Fuzz' core host plugins | xargs -n1 dirname | sort -u | while read -r dir; do \
		for t in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go | cut -d' ' -f2); do \
			echo "fuzz $$t in ./$$dir"; \
			$(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) ./$$dir || exit 1; \
		done; \
	done

example:
	cd examples/plugins/padded && $(GO) vet ./... && $(GO) test -count=1 ./...
	cd examples/plugins/rot13 && $(GO) vet ./... && $(GO) test -count=1 ./...

tools:
	$(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	$(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)

proto: tools
	@command -v protoc >/dev/null || { echo "protoc not found: apt-get install protobuf-compiler"; exit 1; }
	PATH="$(GOBIN):$$PATH" protoc -I core/api \
		--go_out=. --go_opt=module=github.com/strata-msg/strata \
		--go-grpc_out=. --go-grpc_opt=module=github.com/strata-msg/strata,require_unimplemented_servers=false \
		$(PROTOS)
	@for f in $(PLUGIN_PROTOS); do \
		PATH="$(GOBIN):$$PATH" protoc -I $$(dirname $$f) \
			--go_out=. --go_opt=module=github.com/strata-msg/strata $$f || exit 1; \
	done

vet:
	$(GO) vet ./...

staticcheck:
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

lint: vet staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi

clean:
	rm -rf $(BIN)
