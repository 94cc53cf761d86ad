# Every recipe runs in bash with -e and pipefail, so a failing command in a
# pipeline fails the target instead of being hidden by the last command.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

GO ?= go

.PHONY: test build dev fmt vet lint ffi

# test prepares the machine (installs missing system packages when root),
# then vets and runs every test with the race detector.
test:
	bash scripts/test-setup.sh
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 45m ./...

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
