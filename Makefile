# Patronage's everyday commands. `make test` is the whole test suite and what CI runs.

.PHONY: test chaos run build vet

test:
	./scripts/test

# The fault-injection suite alone, in its long form: a 30-minute soak.
# Larger runs: make chaos CHAOS_EVENTS=100000 CHAOS_VOTES=1000000;
# SOAK_ENFORCE_LATENCY=1 also fails on a p99 over its path's target.
chaos:
	CHAOS_ONLY=1 SOAK_DURATION=$${SOAK_DURATION:-30m} ./scripts/test

run:
	go run ./cmd/patronage

build:
	go build -o bin/patronage ./cmd/patronage

vet:
	go vet ./...
