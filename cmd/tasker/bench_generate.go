package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/taskerhq/tasker/internal/bench"
)

// genFlags are the dataset flags shared by generate, sql and explain.
type genFlags struct {
	shapes       string
	avgSteps     int
	stepVariance int
	namespaces   int
	stateMix     string
	seed         int64
	retryDue     float64
	lease        time.Duration
}

func (g *genFlags) bind(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&g.shapes, "shapes", strings.Join(bench.AllShapes, ","), "workflow shapes of the generated templates")
	fl.IntVar(&g.avgSteps, "avg-steps", 6, "mean number of steps of a generated template")
	fl.IntVar(&g.stepVariance, "step-variance", 2, "how far a template's step count may differ from --avg-steps (uniform)")
	fl.IntVar(&g.namespaces, "namespaces", 4, "namespaces the templates are spread over")
	fl.StringVar(&g.stateMix, "state-mix", bench.FormatStateMix(bench.DefaultStateMix), "relative weights of the task states")
	fl.Int64Var(&g.seed, "seed", 1, "random seed: the same seed and sizes build the same dataset")
	fl.Float64Var(&g.retryDue, "retry-due", 0.02, "fraction of waiting_for_retry tasks whose backoff has elapsed")
	fl.DurationVar(&g.lease, "lease", 10*time.Minute, "remaining lease of in-progress steps (negative: expired, as if their worker died)")
}

// config checks the flags and returns the generator configuration.
func (g *genFlags) config() (bench.GenerateConfig, error) {
	var cfg bench.GenerateConfig
	for s := range strings.SplitSeq(g.shapes, ",") {
		s = strings.TrimSpace(s)
		if !slices.Contains(bench.AllShapes, s) {
			return cfg, usageError("--shapes: unknown shape %q (want %s)", s, strings.Join(bench.AllShapes, ", "))
		}
		cfg.Shapes = append(cfg.Shapes, s)
	}
	mix, err := bench.ParseStateMix(g.stateMix)
	if err != nil {
		return cfg, usageError("--state-mix: %v", err)
	}
	switch {
	case g.avgSteps < 1 || g.avgSteps > 99:
		return cfg, usageError("--avg-steps must be 1..99, got %d", g.avgSteps)
	case g.stepVariance < 0 || g.avgSteps-g.stepVariance < 1:
		return cfg, usageError("--step-variance must be 0..%d, got %d", g.avgSteps-1, g.stepVariance)
	case g.namespaces < 1 || g.namespaces > 100:
		return cfg, usageError("--namespaces must be 1..100, got %d", g.namespaces)
	case g.retryDue < 0 || g.retryDue > 1:
		return cfg, usageError("--retry-due must be in [0, 1], got %g", g.retryDue)
	case g.lease == 0:
		return cfg, usageError("--lease must not be 0")
	case g.seed == 0:
		return cfg, usageError("--seed must not be 0")
	}
	cfg.StateMix, cfg.AvgSteps, cfg.StepVariance, cfg.StepVarianceSet = mix, g.avgSteps, g.stepVariance, true
	cfg.Namespaces, cfg.Seed, cfg.RetryDue, cfg.RetryDueSet, cfg.Lease = g.namespaces, g.seed, g.retryDue, true, g.lease
	return cfg, nil
}

func newBenchGenerateCmd(getenv func(string) string) *cobra.Command {
	var db dbFlags
	var gen genFlags
	var tasks int
	var jsonPath, logLevel string
	cmd := &cobra.Command{
		Use:   "generate [--tasks N] [--shapes …] [--state-mix …] [--seed S] [--json FILE]",
		Short: "Load a synthetic workflow dataset (tasks in a mix of states) and print its statistics",
		Long: `tasker bench generate registers generated templates (linear, diamond, tree and
mixed DAG shapes with --avg-steps ± --step-variance steps, spread over --namespaces
namespaces) and bulk-loads --tasks tasks of them with COPY, each in a state drawn
from --state-mix and with everything that state implies, as the engine would have
left it: step states, edges, task and step transition history, results, retry
schedules, leases, and the queue messages of steps in flight (a visible worker
message per enqueued step, a hidden one per running step, a result message per
step waiting for orchestration). It then runs VACUUM ANALYZE and prints tasks per
state and shape, steps per state, and rows and sizes per table.

The same --seed and sizes build the same dataset (timestamps are relative to
the time of generation). A generated dataset already in --database-url is grown
to --tasks tasks.

Without --database-url the data goes into an ephemeral PostgreSQL that is
deleted when the command ends: useful to time the generator and see the
statistics; the other bench commands generate their own data.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) (err error) {
			ctx := cmd.Context()
			out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
			logger, err := newLogger(logLevel)
			if err != nil {
				return err
			}
			if tasks < 1 {
				return usageError("--tasks must be ≥ 1, got %d", tasks)
			}
			cfg, err := gen.config()
			if err != nil {
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
			cfg.DatabaseURL, cfg.Tasks, cfg.Grow, cfg.Logger = url, tasks, true, logger
			cfg.Progress = newProgressBar(errOut).Report
			res, err := bench.Generate(ctx, cfg)
			if err != nil {
				return err
			}
			bench.PrintEnv(out, res.Postgres, res.Machine, res.Commit)
			fmt.Fprintln(out)
			printGenerate(out, res)
			if jsonPath != "" {
				return writeJSONFile(jsonPath, res, errOut)
			}
			return nil
		},
	}
	db.bind(cmd, getenv, false)
	gen.bind(cmd)
	fl := cmd.Flags()
	fl.IntVar(&tasks, "tasks", 10000, "tasks to generate")
	fl.StringVar(&jsonPath, "json", "", "also write the result as JSON to this file")
	fl.StringVar(&logLevel, "log-level", "warn", "debug, info, warn or error")
	return cmd
}

func printGenerate(w io.Writer, r *bench.GenerateResult) {
	fmt.Fprintf(w, "generated %d tasks (from index %d; seed %d, %d templates, state mix %s) in %.1f s (%.0f tasks/s), VACUUM ANALYZE %.1f s\n\n",
		r.Added, r.Start, r.Seed, r.Templates, r.StateMix, r.LoadS, r.TasksPerSec, r.AnalyzeS)
	printDatasetStats(w, r.Stats)
}

func printDatasetStats(w io.Writer, st bench.DatasetStats) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "tasks by state\t\t\n")
	for _, k := range sortedKeys(st.TasksByState) {
		fmt.Fprintf(tw, "%s\t%d\t\n", k, st.TasksByState[k])
	}
	fmt.Fprintf(tw, "total\t%d\t\n\ntasks by shape\t\t\n", st.Tasks)
	for _, k := range sortedKeys(st.TasksByShape) {
		fmt.Fprintf(tw, "%s\t%d\t\n", k, st.TasksByShape[k])
	}
	fmt.Fprintf(tw, "\nsteps by state\t\t\n")
	for _, k := range sortedKeys(st.StepsByState) {
		fmt.Fprintf(tw, "%s\t%d\t\n", k, st.StepsByState[k])
	}
	fmt.Fprintf(tw, "total\t%d\t\n", st.Steps)
	_ = tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "table\trows\ttable\tindexes\t\n")
	for _, t := range st.Tables {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t\n", t.Table, t.Rows, mib(t.TableBytes), mib(t.IndexBytes))
	}
	_ = tw.Flush()
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
