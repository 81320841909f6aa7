# fastgate: `make test` is the one command a fresh clone needs for the tests.
GO ?= go

.PHONY: all build test test-deps vet fuzz bench bench-deps bench-check bench-micro profile clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o fastgate .

# Installs what the tests use when it is missing (Debian packages; root or sudo).
test-deps:
	@./scripts/install-deps.sh test

vet:
	$(GO) vet ./...

test: test-deps vet
	$(GO) test -race -count=1 ./...

# Short fuzzing runs of every fuzz target (not part of `make test`).
fuzz:
	$(GO) test -run=^$$ -fuzz=FuzzAppendNormalizedPath -fuzztime=30s ./proxy
	$(GO) test -run=^$$ -fuzz=FuzzParse -fuzztime=30s ./config
	$(GO) test -run=^$$ -fuzz=FuzzMerge -fuzztime=30s ./aggregate
	$(GO) test -run=^$$ -fuzz=FuzzVerify -fuzztime=30s -fuzzminimizetime=3s ./auth
	$(GO) test -run=^$$ -fuzz=FuzzSortedQuery -fuzztime=30s ./cache

bench-deps:
	@./scripts/install-deps.sh bench

bench: bench-deps
	$(GO) run ./bench

bench-check: bench-deps
	$(GO) run ./bench -check

bench-micro:
	./bench/scripts/micro.sh

profile: bench-deps
	./bench/scripts/profile.sh

clean:
	rm -f fastgate
