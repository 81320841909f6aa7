# fastgate: `make test` is the one command a fresh clone needs for the tests.
GO ?= go

.PHONY: all build test test-deps vet fuzz bench bench-deps bench-check bench-micro profile clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o fastgate .

# Installs what the tests use when it is missing (Debian packages; root or sudo).
test-deps:
	@./scripts/install-deps.sh

vet:
	$(GO) vet ./...

test: test-deps vet
	$(GO) test -race -count=1 ./...

# Short fuzzing runs of every fuzz target (not part of `make test`).
fuzz:
	$(GO) test -run=^$$ -fuzz=FuzzAppendNormalizedPath -fuzztime=30s ./proxy
	$(GO) test -run=^$$ -fuzz=FuzzRouteOwnsServletPath -fuzztime=20s ./proxy
	$(GO) test -run=^$$ -fuzz=FuzzAppendJSONBytes -fuzztime=15s ./proxy
	$(GO) test -run=^$$ -fuzz=FuzzAppendAddr -fuzztime=15s ./proxy
	$(GO) test -run=^$$ -fuzz=FuzzAppendDecimal -fuzztime=10s ./proxy
	$(GO) test -run=^$$ -fuzz=FuzzParse -fuzztime=30s ./config
	$(GO) test -run=^$$ -fuzz=FuzzPathPrefixEndFold -fuzztime=15s ./config
	$(GO) test -run=^$$ -fuzz=FuzzMerge -fuzztime=30s ./aggregate
	$(GO) test -run=^$$ -fuzz=FuzzAppendParam -fuzztime=15s ./aggregate
	$(GO) test -run=^$$ -fuzz=FuzzVerify -fuzztime=30s -fuzzminimizetime=3s ./auth
	$(GO) test -run=^$$ -fuzz=FuzzSortedQuery -fuzztime=30s ./cache

# Installs wrk, nginx and haproxy (Debian packages) when asked; `make bench`
# reports a missing peer as skipped instead.
bench-deps:
	./bench/scripts/deps.sh

# Gateway vs nginx vs HAProxy vs direct, interleaved rounds, medians, ratios to
# nginx; Markdown on stdout, JSON and SVG under bench/results/ (bench/README.md).
bench:
	$(GO) run ./bench

# A fresh run compared with bench/baseline.json; non-zero on a regression
# beyond the documented noise band. Not part of `make test`.
bench-check:
	$(GO) run ./bench -check

bench-micro:
	./bench/scripts/micro.sh

# CPU and alloc profiles of the gateway under wrk load, into bench/results/profile/.
profile:
	$(GO) run ./bench -profile

clean:
	rm -f fastgate
