# Every recipe runs in bash with -e and pipefail, so a failing command in a
# pipeline fails the target instead of being hidden by the last command.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

GO ?= go

.PHONY: test build dev fmt vet lint ffi fuzz

# FUZZ_TARGETS are package:FuzzName pairs; `go test` runs their checked-in
# seeds (testdata/fuzz) every time, `make fuzz` mutates them for FUZZTIME each.
FUZZ_TARGETS := ./internal/api:FuzzCreateTaskRequest ./template:FuzzParse \
	./internal/messages:FuzzDecodeQueueMessage ./internal/tracing:FuzzTraceHeaders
FUZZTIME ?= 10s

# test prepares the machine (installs missing system packages when root),
# then vets and runs every test with the race detector; every fuzz target's
# checked-in seeds run as part of it. Mutation fuzzing is `make fuzz`: it is
# not part of test because Go's fuzzer can fail a run with "context deadline
# exceeded" when -fuzztime ends while it minimizes a new input, which would
# make the test command flaky.
test:
	bash scripts/test-setup.sh
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 45m ./...

# fuzz runs each fuzz target for FUZZTIME. A crash is written to the
# package's testdata/fuzz/<Name>/ and fails the run: keep that file (it is
# then a seed every `go test` runs) and fix the code.
fuzz:
	for target in $(FUZZ_TARGETS); do \
		pkg="$${target%%:*}"; name="$${target##*:}"; \
		echo "fuzzing $$name in $$pkg for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) "$$pkg"; \
	done

build:
	$(GO) build -o bin/tasker ./cmd/tasker

dev:
	$(GO) run ./cmd/tasker dev

# ffi builds the C ABI the Ruby worker loads (workers/ruby, docs/ruby.md).
ffi:
	$(GO) build -buildmode=c-shared -o workers/ruby/lib/tasker_core/libtasker.so ./ffi

fmt:
	gofmt -w .

vet:
	$(GO) vet ./...

# lint fails when any file needs gofmt, listing those files.
lint:
	unformatted="$$(gofmt -l .)"; \
	if [[ -n "$$unformatted" ]]; then \
		echo "these files need gofmt (run make fmt):" >&2; \
		echo "$$unformatted" >&2; \
		exit 1; \
	fi
