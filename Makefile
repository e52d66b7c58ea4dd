# Patronage's everyday commands. `make test` is the whole test suite and what CI runs.

.PHONY: test run build vet

test:
	./scripts/test

run:
	go run ./cmd/patronage

build:
	go build -o bin/patronage ./cmd/patronage

vet:
	go vet ./...
