package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/taskerhq/tasker/internal/bench"
)

func newBenchCmd(getenv func(string) string) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Run Tasker's benchmarks (goals in docs/benchmarks.md)",
		Long: `tasker bench runs Tasker's benchmarks against a real PostgreSQL: by default an
ephemeral, durable one (fsync and synchronous_commit on) started from this
machine's PostgreSQL binaries, or --database-url. Each prints p50/p95/p99
next to the floor measured in the same run (raw commit latency, raw NOTIFY
round trip), the machine, the PostgreSQL settings and the commit, and can
write JSON.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: groupRunE,
	}
	cmd.AddCommand(newBenchE2ECmd(getenv), newBenchThroughputCmd(getenv), newBenchLatencyCmd(getenv), newBenchSoakCmd(getenv))
	cmd.AddCommand(newBenchHandlerOverheadCmd(getenv))
	cmd.AddCommand(newBenchGenerateCmd(getenv), newBenchSQLCmd(getenv), newBenchExplainCmd(getenv), newBenchPathsCmd(getenv), newBenchReportCmd(getenv))
	return cmd
}

type benchE2EFlags struct {
	db           dbFlags
	template     string
	runs         int
	warmup       int
	number       int
	jsonPath     string
	logLevel     string
	completion   string
	pollInterval time.Duration
	floorSamples int
	taskTimeout  time.Duration
	cpuProfile   string
}

func newBenchE2ECmd(getenv func(string) string) *cobra.Command {
	var f benchE2EFlags
	cmd := &cobra.Command{
		Use:   "e2e --template NAME [--runs N] [--json FILE]",
		Short: "Closed-loop create → complete latency of one template's tasks",
		Long: `tasker bench e2e starts the engine in-process as tasker dev does (orchestration
and a Go worker with the example handlers), then creates tasks one after
another (one in flight) with the orchestrator's CreateTask and times each
from just before the create to its completion: client-observed, and as
PostgreSQL recorded it (tasks.completed_at - tasks.created_at). Warmup tasks
are not counted. It then breaks the time down per hop from the transition
history.

NAME is NS/NAME[@VERSION], one of the short names linear, diamond, tree,
mixed_dag, single, or all (linear, diamond, tree and mixed_dag in turn).

Exit status 1 when any measured task did not complete.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error { return runBenchE2E(cmd, f) },
	}
	f.db.bind(cmd, getenv, false)
	fl := cmd.Flags()
	fl.StringVar(&f.template, "template", "", "template: NS/NAME[@VERSION], linear, diamond, tree, mixed_dag, single or all (required)")
	fl.IntVar(&f.runs, "runs", 200, "measured tasks per template")
	fl.IntVar(&f.warmup, "warmup", 20, "tasks run first and not counted")
	fl.IntVar(&f.number, "even-number", 6, "context.even_number of the tasks (even, 2..100)")
	fl.StringVar(&f.jsonPath, "json", "", "also write the results as JSON to this file (an array for --template all)")
	fl.StringVar(&f.logLevel, "log-level", "warn", "debug, info, warn or error")
	fl.StringVar(&f.completion, "completion", bench.CompletionHook,
		"how completion is observed: hook (in-process, right after the finalizing commit) or poll (read the task row every --poll-interval)")
	fl.DurationVar(&f.pollInterval, "poll-interval", 200*time.Microsecond, "task row poll period with --completion poll")
	fl.IntVar(&f.floorSamples, "floor-samples", 200, "commits and notifications the floor measurement takes")
	fl.DurationVar(&f.taskTimeout, "task-timeout", 60*time.Second, "how long one task may take before it counts as an error")
	fl.StringVar(&f.cpuProfile, "cpuprofile", "", "write a CPU profile of this process (engine and benchmark) to this file")
	return cmd
}

func runBenchE2E(cmd *cobra.Command, f benchE2EFlags) (err error) {
	ctx := cmd.Context()
	out := cmd.OutOrStdout()
	errOut := cmd.ErrOrStderr()
	logger, err := newLogger(f.logLevel)
	if err != nil {
		return err
	}
	switch {
	case f.template == "":
		return usageError("--template is required; run '%s --help' for usage", cmd.CommandPath())
	case f.runs < 1:
		return usageError("--runs must be ≥ 1, got %d", f.runs)
	case f.warmup < 0:
		return usageError("--warmup must be ≥ 0, got %d", f.warmup)
	case f.number < 2 || f.number > 100 || f.number%2 != 0:
		return usageError("--even-number must be an even integer from 2 to 100, got %d", f.number)
	case f.completion != bench.CompletionHook && f.completion != bench.CompletionPoll:
		return usageError("--completion must be %q or %q, got %q", bench.CompletionHook, bench.CompletionPoll, f.completion)
	case f.pollInterval < 0:
		return usageError("--poll-interval must be ≥ 0, got %s", f.pollInterval)
	case f.floorSamples < 1:
		return usageError("--floor-samples must be ≥ 1, got %d", f.floorSamples)
	case f.taskTimeout <= 0:
		return usageError("--task-timeout must be > 0, got %s", f.taskTimeout)
	}
	templates := []string{f.template}
	if f.template == "all" {
		templates = bench.AllTemplates
	}
	for _, t := range templates {
		if _, _, _, err := bench.ResolveTemplate(t); err != nil {
			return usageError("--template: %v, or all", err)
		}
	}

	url, stop, err := benchDatabase(ctx, f.db, errOut, logger)
	if err != nil {
		return err
	}
	defer func() {
		if serr := stop(); serr != nil && err == nil {
			err = serr
		}
	}()

	stopProfile, err := startCPUProfile(f.cpuProfile)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, stopProfile()) }()
	results, err := bench.E2E(ctx, bench.Config{
		DatabaseURL: url, MaxConns: f.db.MaxConns,
		Runs: f.runs, Warmup: f.warmup, EvenNumber: f.number, FloorSamples: f.floorSamples,
		Completion: f.completion, PollInterval: f.pollInterval, TaskTimeout: f.taskTimeout,
		Logger: logger,
		Progress: func(format string, args ...any) {
			fmt.Fprintf(errOut, format+"\n", args...)
		},
	}, templates...)
	if err != nil {
		if isCanceled(err) {
			return &exitError{code: exitFailed, err: fmt.Errorf("interrupted: %w", err)}
		}
		return err
	}
	fmt.Fprintln(errOut)
	if err := bench.PrintE2E(out, results); err != nil {
		return err
	}
	if f.jsonPath != "" {
		if err := bench.WriteJSON(f.jsonPath, results, f.template == "all"); err != nil {
			return err
		}
		fmt.Fprintf(errOut, "\nwrote %s\n", f.jsonPath)
	}
	errors := 0
	for _, r := range results {
		errors += r.Errors
	}
	if errors > 0 {
		return failedError("%d measured tasks did not complete", errors)
	}
	return nil
}
