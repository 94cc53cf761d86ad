package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/taskerhq/tasker/internal/bench"
)

func newBenchPathsCmd(getenv func(string) string) *cobra.Command {
	var db dbFlags
	var cfg bench.CriticalPathConfig
	var jsonPath, logLevel string
	cmd := &cobra.Command{
		Use:   "critical-paths [--samples N] [--json FILE]",
		Short: "Latency of the engine's critical paths next to their targets",
		Long: `tasker bench critical-paths starts the engine in-process and measures, one sample
at a time, with p50/p95/p99 and the target beside each:

  api_create           POST /v1/tasks over loopback HTTP → the client holds the task
                       UUID (target p99 < 50 ms; goal p99 ≤ 5 ms)
  discover_publish     a 10-step fan-out's root result submitted → orchestration finds
                       the 9 ready steps and publishes them → the 9th NOTIFY received
                       (target p99 < 100 ms)
  worker_claim_submit  a worker's claim → its result submission, less the handler's own
                       time: the framework's part (target p99 < 200 ms)
  notify_listener      pg_notify → the engine's listener delivers it (target p95 < 10 ms;
                       goal p95 ≤ 1 ms)
  handler_time         the handler's own time in the same steps (Go)

The SQL functions' latencies are tasker bench sql's.

Exit status 1 when a target or goal is not met.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) (err error) {
			ctx := cmd.Context()
			out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
			logger, err := newLogger(logLevel)
			if err != nil {
				return err
			}
			switch {
			case cfg.Samples < 1:
				return usageError("--samples must be ≥ 1, got %d", cfg.Samples)
			case cfg.Warmup < 0:
				return usageError("--warmup must be ≥ 0, got %d", cfg.Warmup)
			case cfg.Timeout <= 0:
				return usageError("--timeout must be > 0, got %s", cfg.Timeout)
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
			cfg.DatabaseURL, cfg.Logger = url, logger
			cfg.Progress = newProgressBar(errOut).Report
			res, err := bench.CriticalPaths(ctx, cfg)
			if err != nil {
				return err
			}
			if err := showResult(out, errOut, jsonPath, res, printPaths); err != nil {
				return err
			}
			missed := 0
			for _, p := range res.Paths {
				for _, t := range p.Targets {
					if !t.Met {
						missed++
					}
				}
			}
			if missed > 0 {
				return failedError("%d targets or goals not met", missed)
			}
			return nil
		},
	}
	db.bind(cmd, getenv, false)
	fl := cmd.Flags()
	fl.IntVar(&cfg.Samples, "samples", 200, "measured samples per path")
	fl.IntVar(&cfg.Warmup, "warmup", 10, "samples per path taken first and not counted")
	fl.DurationVar(&cfg.Timeout, "timeout", 30*time.Second, "how long one sample may take")
	fl.StringVar(&jsonPath, "json", "", "also write the result as JSON to this file")
	fl.StringVar(&logLevel, "log-level", "warn", "debug, info, warn or error")
	return cmd
}

func printPaths(w io.Writer, r *bench.CriticalPathResult) {
	bench.PrintEnv(w, r.Postgres, r.Machine, r.Commit)
	fmt.Fprintf(w, "paths     %d samples each, one at a time\n\n", r.Samples)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "path\t%8s\t%8s\t%8s\t%8s\ttarget\t\n", "p50 ms", "p95", "p99", "max")
	for _, p := range r.Paths {
		var ts []string
		for _, t := range p.Targets {
			verdict := "met"
			if !t.Met {
				verdict = "NOT met"
			}
			op := "<"
			if t.Label == "goal" {
				op = "≤"
			}
			ts = append(ts, fmt.Sprintf("%s p%g %s %g ms: %s", t.Label, t.Percentile, op, t.LimitMs, verdict))
		}
		fmt.Fprintf(tw, "%s\t%8.3f\t%8.3f\t%8.3f\t%8.3f\t%s\t\n", p.Name, p.P50, p.P95, p.P99, p.Max, strings.Join(ts, "; "))
	}
	_ = tw.Flush()
}
