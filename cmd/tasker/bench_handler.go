package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/taskerhq/tasker/internal/bench"
	"github.com/taskerhq/tasker/internal/rubyproc"
)

func newBenchHandlerOverheadCmd(getenv func(string) string) *cobra.Command {
	var db dbFlags
	var cfg bench.HandlerOverheadConfig
	var jsonPath, logLevel string
	var rubyLog bool
	cmd := &cobra.Command{
		Use:   "handler-overhead [--runs N] [--json FILE]",
		Short: "Framework cost per step of a Go handler and of a Ruby handler (through libtasker.so)",
		Long: `tasker bench handler-overhead runs the same one-step task, whose handler does
nothing, through a Go handler (a worker in this process) and a Ruby handler (a
tasker-ruby-worker process on libtasker.so, which it builds from ffi/ unless --ffi-lib
names one), --in-flight tasks at once (default 1), Go and Ruby alternating. It needs a checkout of the
repository, Ruby ≥ 3.1 and the ffi gem.

It reports, per runtime, the worker's time per step as the worker records it in the
step's result (execution_time_ms: from picking up the claimed step to having the
handler's result — context, spans, logs, the hand-off to the handler and back) and
create → complete of the task as PostgreSQL recorded it, then the Ruby delta.
Goal: the Ruby handler adds at most 100 µs per step at p50.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) (err error) {
			ctx := cmd.Context()
			errOut := cmd.ErrOrStderr()
			if cfg.Runs < 1 {
				return usageError("--runs must be ≥ 1, got %d", cfg.Runs)
			}
			if cfg.Warmup < 0 {
				return usageError("--warmup must be ≥ 0, got %d", cfg.Warmup)
			}
			if cfg.InFlight < 1 {
				return usageError("--in-flight must be ≥ 1, got %d", cfg.InFlight)
			}
			if cfg.RubyConcurrency < 0 {
				return usageError("--ruby-concurrency must be ≥ 1, got %d", cfg.RubyConcurrency)
			}
			logger, err := newLogger(logLevel)
			if err != nil {
				return err
			}
			root, err := rubyproc.RepoRoot()
			if err != nil {
				return &exitError{code: exitFailed, err: err}
			}
			if _, err := rubyproc.CheckRuby(ctx); err != nil {
				return &exitError{code: exitFailed, err: err}
			}
			if cfg.Library == "" {
				dir, err := os.MkdirTemp("", "tasker-ffi-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(dir)
				cfg.Library = filepath.Join(dir, "libtasker.so")
				fmt.Fprintln(errOut, "building libtasker.so from ffi/ (a minute the first time, cached after)…")
				if err := rubyproc.BuildLibrary(ctx, root, cfg.Library); err != nil {
					return err
				}
			}
			url, stop, err := benchDatabase(ctx, db, errOut, logger)
			if err != nil {
				return err
			}
			defer func() {
				if serr := stop(); serr != nil && err == nil {
					err = serr
				}
			}()
			cfg.DatabaseURL, cfg.MaxConns, cfg.Logger, cfg.RepoRoot = url, db.MaxConns, logger, root
			if rubyLog {
				cfg.RubyOutput = errOut
			}
			cfg.Progress = func(format string, args ...any) { fmt.Fprintf(errOut, format+"\n", args...) }
			res, err := bench.HandlerOverhead(ctx, cfg)
			if err != nil {
				return err
			}
			printHandlerOverhead(cmd.OutOrStdout(), res)
			if jsonPath != "" {
				b, err := json.MarshalIndent(res, "", "  ")
				if err != nil {
					return err
				}
				if err := os.WriteFile(jsonPath, append(b, '\n'), 0o644); err != nil {
					return fmt.Errorf("writing %s: %w", jsonPath, err)
				}
				fmt.Fprintf(errOut, "wrote %s\n", jsonPath)
			}
			if res.Go.Errors+res.Ruby.Errors > 0 {
				return failedError("%d Go and %d Ruby tasks did not complete", res.Go.Errors, res.Ruby.Errors)
			}
			return nil
		},
	}
	db.bind(cmd, getenv, false)
	fl := cmd.Flags()
	fl.IntVar(&cfg.Runs, "runs", 500, "measured tasks per handler")
	fl.IntVar(&cfg.Warmup, "warmup", 50, "tasks per handler run first and not counted")
	fl.IntVar(&cfg.InFlight, "in-flight", 1, "tasks at once (1: a closed loop where every step starts on an idle machine)")
	fl.IntVar(&cfg.RubyConcurrency, "ruby-concurrency", 0, "threads of the Ruby worker (default --in-flight + 1)")
	fl.StringVar(&cfg.Library, "ffi-lib", "", "libtasker.so to use (default: build it from ffi/)")
	fl.StringVar(&jsonPath, "json", "", "also write the results as JSON to this file")
	fl.StringVar(&logLevel, "log-level", "warn", "debug, info, warn or error")
	fl.BoolVar(&rubyLog, "ruby-log", false, "show the Ruby worker's output")
	return cmd
}

func printHandlerOverhead(w io.Writer, r *bench.HandlerOverheadResult) {
	pg, m := r.Postgres, r.Machine
	fmt.Fprintf(w, "machine   %d CPUs, %s/%s, %s, load average %.2f at start\n", m.CPUs, m.GOOS, m.GOARCH, m.GoVersion, m.LoadAvg1)
	fmt.Fprintf(w, "postgres  %s  fsync=%s synchronous_commit=%s\n", pg.Version, pg.Fsync, pg.SynchronousCommit)
	fmt.Fprintf(w, "commit    %s\n", r.Commit)
	fmt.Fprintf(w, "handler overhead: one no-op step per task, %d in flight, Go and Ruby alternating, %d warmup each\n\n", r.InFlight, r.Warmup)
	fmt.Fprintf(w, "%-8s %5s %6s   %-34s   %s\n", "handler", "runs", "errors", "worker time per step (ms)", "create → complete (ms)")
	fmt.Fprintf(w, "%-8s %5s %6s   %8s %8s %8s %8s   %8s %8s %8s\n", "", "", "", "p50", "p95", "p99", "max", "p50", "p95", "p99")
	for _, s := range []bench.HandlerStats{r.Go, r.Ruby} {
		fmt.Fprintf(w, "%-8s %5d %6d   %8.3f %8.3f %8.3f %8.3f   %8.3f %8.3f %8.3f\n", s.Runtime, s.Runs, s.Errors,
			s.Worker.P50, s.Worker.P95, s.Worker.P99, s.Worker.Max, s.Task.P50, s.Task.P95, s.Task.P99)
	}
	verdict := "met"
	if r.DeltaP50Us > 100 {
		verdict = "NOT met"
	}
	fmt.Fprintf(w, "\nruby delta per step: p50 %+.0f µs, p99 %+.0f µs  (goal: p50 ≤ +100 µs — %s)\n", r.DeltaP50Us, r.DeltaP99Us, verdict)
}
