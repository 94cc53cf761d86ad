# Every recipe runs in bash with -e and pipefail, so a failing command in a
# pipeline fails the target instead of being hidden by the last command.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

GO ?= go

.PHONY: test build dev fmt vet lint ffi fuzz

# FUZZ_TARGETS are package:FuzzName pairs; `go test` runs their checked-in
# seeds (testdata/fuzz) every time, `make fuzz` mutates them.
FUZZ_TARGETS := ./internal/api:FuzzCreateTaskRequest ./template:FuzzParse \
	./internal/messages:FuzzDecodeQueueMessage ./internal/tracing:FuzzTraceHeaders
# `make fuzz` runs each target for FUZZTIME (a duration, or Nx for N inputs),
# spends up to FUZZMINIMIZETIME minimizing each new input (Go's own default),
# and has no -timeout of its own (0): FUZZTIME bounds it, and go test's
# 10-minute default would otherwise cut a longer FUZZTIME short.
FUZZTIME ?= 10s
FUZZMINIMIZETIME ?= 60s
FUZZTIMEOUT ?= 0

# FUZZ_TEST_* are the mutation-fuzzing step of `make test`. Both budgets are
# counts, not durations, because a duration cannot end cleanly: Go (1.26)
# turns -fuzztime into a context deadline, and when it fires the fuzzing
# coordinator checks whether the error it woke to is its workers' context's
# error; the context package sets and signals the parent's error before it
# cancels the child, so on a busy machine the check can run in between and
# report the ordinary end of the run as "context deadline exceeded", with no
# failing input (golang/go#75804; 1 of 55 runs of FuzzParse for 2 s on
# a loaded 2-core machine here). A count sets no deadline: the run ends when
# the coordinator has counted the inputs, so the same work is done on every
# machine, a slow one just takes longer. The minimizing budget is a count for
# the same reason and so that one new input cannot hold a worker for Go's
# default 60 s. 15,000 inputs per target took 20-121 s for the four together
# (median 33 s) on a 2-core machine at load average 10-24. The workers
# default to one per CPU (-parallel), which changes only how fast the count
# is reached. FUZZ_TEST_TIMEOUT is a backstop for a hung fuzzer, far above
# the expected time, not a budget. A crash fails the step and is written to
# the package's testdata/fuzz/<Name>/.
FUZZ_TEST_EXECS ?= 15000
FUZZ_TEST_MINIMIZE_EXECS ?= 1000
FUZZ_TEST_TIMEOUT ?= 10m

# test prepares the machine (installs missing system packages when root),
# then vets, runs every test with the race detector (every fuzz target's
# checked-in seeds among them), and mutation-fuzzes each target for a fixed
# number of inputs (FUZZ_TEST_*) so a crash in newly reachable code shows up.
test:
	bash scripts/test-setup.sh
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 45m ./...
	$(MAKE) fuzz FUZZTIME=$(FUZZ_TEST_EXECS)x FUZZMINIMIZETIME=$(FUZZ_TEST_MINIMIZE_EXECS)x \
		FUZZTIMEOUT=$(FUZZ_TEST_TIMEOUT)

# fuzz runs each fuzz target for FUZZTIME. A crash is written to the
# package's testdata/fuzz/<Name>/ and fails the run: keep that file (it is
# then a seed every `go test` runs) and fix the code. With a duration
# FUZZTIME, a failure that says only "context deadline exceeded" and writes
# no input is the Go race described above, not a finding; FUZZTIME=Nx avoids it.
fuzz:
	for target in $(FUZZ_TARGETS); do \
		pkg="$${target%%:*}"; name="$${target##*:}"; \
		echo "fuzzing $$name in $$pkg for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) \
			-fuzzminimizetime $(FUZZMINIMIZETIME) -timeout $(FUZZTIMEOUT) "$$pkg"; \
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
