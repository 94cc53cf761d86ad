package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/taskerhq/tasker/internal/bench"
)

// parseScales parses --scales.
func parseScales(s string) ([]int, error) {
	var out []int
	for part := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(part))
		if err != nil || n < 1 {
			return nil, usageError("--scales: %q is not a positive task count", part)
		}
		if len(out) > 0 && n <= out[len(out)-1] {
			return nil, usageError("--scales must increase, got %s", s)
		}
		out = append(out, n)
	}
	return out, nil
}

func scalesString(s []int) string {
	parts := make([]string, len(s))
	for i, n := range s {
		parts[i] = strconv.Itoa(n)
	}
	return strings.Join(parts, ",")
}

func newBenchSQLCmd(getenv func(string) string) *cobra.Command {
	var db dbFlags
	var gen genFlags
	var cfg bench.SQLConfig
	var scales, jsonPath, logLevel string
	cmd := &cobra.Command{
		Use:   "sql [--scales 100,1000,10000,50000] [--samples N] [--json FILE]",
		Short: "Latency of every hot-path SQL function as the dataset grows, and transition contention",
		Long: `tasker bench sql grows a generated dataset (as tasker bench generate builds it) to
each of --scales tasks in turn and, at each scale, calls every hot-path SQL function
--samples times on one connection through the wrappers the engine uses, each call
with a fresh random task, step or message: get_next_ready_tasks, get_step_readiness_status
per shape, get_task_execution_context, can_finalize_task, claim_task_for_finalization,
the task and step state transitions, get_step_transitive_dependencies, enqueue_steps,
claim_step, claim_steps, extend_step_leases and submit_step_result. A call that writes
runs in a transaction that is rolled back (the commit is not timed), so every sample
sees the same data.

It prints p50/p95/p99 per function and scale, the growth ratio (p50 at the largest
scale ÷ p50 at the smallest; a per-task function should stay near 1), and the goals
(get_next_ready_tasks p50 ≤ 1 ms at the largest scale, get_step_readiness_status p50
≤ 150 µs, growth ≤ 1.5 for every per-task function). Then, at the largest scale,
--contention-workers goroutines run compare-and-swap task transitions (durable
autocommit) for --contention-duration, all on one task and each on its own:
throughput and conflict rate.

Exit status 1 when a goal is not met. With --database-url, give it an empty
database: it builds the dataset itself.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) (err error) {
			ctx := cmd.Context()
			out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
			logger, err := newLogger(logLevel)
			if err != nil {
				return err
			}
			if cfg.Scales, err = parseScales(scales); err != nil {
				return err
			}
			switch {
			case cfg.Samples < 1:
				return usageError("--samples must be ≥ 1, got %d", cfg.Samples)
			case cfg.Warmup < 0:
				return usageError("--warmup must be ≥ 0, got %d", cfg.Warmup)
			case cfg.ContentionWorkers < 0:
				return usageError("--contention-workers must be ≥ 0, got %d", cfg.ContentionWorkers)
			case cfg.ContentionDuration < 0:
				return usageError("--contention-duration must be ≥ 0, got %s", cfg.ContentionDuration)
			}
			if cfg.ContentionWorkers == 0 {
				cfg.ContentionWorkers = -1
			}
			if cfg.Dataset, err = gen.config(); err != nil {
				return err
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
			cfg.Dataset.Logger = logger
			cfg.Progress = newProgressBar(errOut).Report
			res, err := bench.SQL(ctx, cfg)
			if err != nil {
				return err
			}
			if err := showResult(out, errOut, jsonPath, res, printSQL); err != nil {
				return err
			}
			if missed := missedGoals(res.Goals()); missed > 0 {
				return failedError("%d goals not met", missed)
			}
			return nil
		},
	}
	db.bind(cmd, getenv, false)
	gen.bind(cmd)
	fl := cmd.Flags()
	fl.StringVar(&scales, "scales", scalesString(bench.DefaultScales), "dataset sizes in tasks, increasing")
	fl.IntVar(&cfg.Samples, "samples", 500, "timed calls per function and scale")
	fl.IntVar(&cfg.Warmup, "warmup", 20, "untimed calls per function and scale made first")
	fl.IntVar(&cfg.ContentionWorkers, "contention-workers", 8, "goroutines in the contention benchmark (0 skips it)")
	fl.DurationVar(&cfg.ContentionDuration, "contention-duration", 5*time.Second, "how long each contention mode runs")
	fl.StringVar(&jsonPath, "json", "", "also write the result as JSON to this file")
	fl.StringVar(&logLevel, "log-level", "warn", "debug, info, warn or error")
	return cmd
}

func missedGoals(goals []bench.NamedGoal) int {
	n := 0
	for _, g := range goals {
		if !g.Met {
			n++
		}
	}
	return n
}

func printSQL(w io.Writer, r *bench.SQLResult) {
	bench.PrintEnv(w, r.Postgres, r.Machine, r.Commit)
	fmt.Fprintf(w, "sql       %d samples per function and scale on one connection; writes rolled back; SELECT 1 round trip p50 %.3f ms (included)\n\n",
		r.Samples, r.RoundTripP50)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "function\tkind\t")
	for _, s := range r.Scales {
		fmt.Fprintf(tw, "%d p50\tp95\tp99\t", s)
	}
	fmt.Fprintf(tw, "growth\t")
	if len(r.Scales) > 2 {
		fmt.Fprintf(tw, "from %d\t", r.Scales[1])
	}
	fmt.Fprintf(tw, "\n")
	for _, f := range r.Functions {
		kind := "global"
		if f.PerTask {
			kind = "per-task"
		}
		fmt.Fprintf(tw, "%s\t%s\t", f.Name, kind)
		byScale := map[int]bench.SQLPoint{}
		for _, p := range f.Points {
			byScale[p.Scale] = p
		}
		for _, s := range r.Scales {
			if p, ok := byScale[s]; ok {
				fmt.Fprintf(tw, "%.3f\t%.3f\t%.3f\t", p.P50, p.P95, p.P99)
			} else {
				fmt.Fprintf(tw, "-\t-\t-\t")
			}
		}
		fmt.Fprintf(tw, "%.2f×\t", f.Growth)
		if len(r.Scales) > 2 {
			fmt.Fprintf(tw, "%.2f×\t", f.GrowthFromSecond)
		}
		fmt.Fprintf(tw, "\n")
	}
	_ = tw.Flush()
	fmt.Fprintln(w, "\n(ms)")
	fmt.Fprintln(w, "\ngoals")
	for _, g := range r.Goals() {
		verdict := "met"
		if !g.Met {
			verdict = "NOT met"
		}
		fmt.Fprintf(w, "  %-42s %-32s measured %-8.3f %s\n", g.Name, g.Goal.Goal, g.Value, verdict)
	}
	if len(r.Contention) > 0 {
		fmt.Fprintf(w, "\ncontention at %d tasks: transition_task_state_atomic (read state, compare-and-swap, durable autocommit)\n", r.Scales[len(r.Scales)-1])
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintf(tw, "mode\tworkers\tattempts/s\ttransitions/s\tconflict rate\tp50\tp95\tp99 ms\t\n")
		for _, c := range r.Contention {
			fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.0f\t%.1f%%\t%.3f\t%.3f\t%.3f\t\n", c.Mode, c.Workers, c.AttemptsPerSec, c.TransitionsPerSec,
				c.ConflictRate*100, c.P50, c.P95, c.P99)
		}
		_ = tw.Flush()
	}
	fmt.Fprintln(w, "\ndataset")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "tasks\tsteps\tgenerated in\tworkflow_steps\tstep history\ttask history\t\n")
	for _, d := range r.Datasets {
		sizes := map[string]bench.TableSize{}
		for _, t := range d.Tables {
			sizes[t.Table] = t
		}
		fmt.Fprintf(tw, "%d\t%d\t%.1f s\t%d rows\t%d rows\t%d rows\t\n", d.Scale, d.Steps, d.GenerateS,
			sizes["workflow_steps"].Rows, sizes["workflow_step_transitions"].Rows, sizes["task_transitions"].Rows)
	}
	_ = tw.Flush()
}
