package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/taskerhq/tasker/internal/bench"
)

func newBenchExplainCmd(getenv func(string) string) *cobra.Command {
	var db dbFlags
	var gen genFlags
	var cfg bench.ExplainConfig
	var jsonPath, logLevel string
	cmd := &cobra.Command{
		Use:   "explain [--tasks N] [--json FILE]",
		Short: "EXPLAIN ANALYZE of the statements inside every hot-path SQL function, with findings",
		Long: `tasker bench explain generates a dataset of --tasks tasks (as tasker bench generate
builds it; an existing dataset in --database-url is grown to that size) and makes
each call tasker bench sql times once more with auto_explain (ANALYZE, BUFFERS,
FORMAT JSON, nested statements) reporting to the client, so it captures the plan
of every statement the call ran, including those inside plpgsql functions. Each
call is first made --warmup times unexplained, so the captured one runs the
cached (generic) plans a long-lived connection runs.

It prints, per function, each statement with its execution time, buffers, rows
estimated and actual and plan nodes, then the findings: sequential scans of
tables with at least --seq-scan-min-rows rows, nodes whose row estimate is off by
--misestimate-factor or more, and sorts or hashes that spilled to disk. The JSON
holds the full plans.

It needs a superuser (LOAD 'auto_explain'); the ephemeral PostgreSQL is one.
Exit status 1 when a hot-path statement scans a large table sequentially.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) (err error) {
			ctx := cmd.Context()
			out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
			logger, err := newLogger(logLevel)
			if err != nil {
				return err
			}
			switch {
			case cfg.Tasks < 1:
				return usageError("--tasks must be ≥ 1, got %d", cfg.Tasks)
			case cfg.Warmup < 0:
				return usageError("--warmup must be ≥ 0, got %d", cfg.Warmup)
			case cfg.SeqScanMinRows < 1:
				return usageError("--seq-scan-min-rows must be ≥ 1, got %d", cfg.SeqScanMinRows)
			case cfg.MisestimateFactor <= 1:
				return usageError("--misestimate-factor must be > 1, got %g", cfg.MisestimateFactor)
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
			cfg.DatabaseURL, cfg.Logger, cfg.Dataset.Logger = url, logger, logger
			cfg.Progress = newProgressBar(errOut).Report
			res, err := bench.Explain(ctx, cfg)
			if err != nil {
				return err
			}
			if err := showResult(out, errOut, jsonPath, res, printExplain); err != nil {
				return err
			}
			if n := len(res.SeqScans()); n > 0 {
				return failedError("%d hot-path statements scan a large table sequentially", n)
			}
			return nil
		},
	}
	db.bind(cmd, getenv, false)
	gen.bind(cmd)
	fl := cmd.Flags()
	fl.IntVar(&cfg.Tasks, "tasks", 50000, "dataset size in tasks")
	fl.IntVar(&cfg.Warmup, "warmup", 6, "unexplained calls of each function made first")
	fl.Int64Var(&cfg.SeqScanMinRows, "seq-scan-min-rows", 10000, "a sequential scan of a table with at least this many rows is a finding")
	fl.Float64Var(&cfg.MisestimateFactor, "misestimate-factor", 10, "flag plan nodes whose row estimate is off by this factor or more")
	fl.StringVar(&jsonPath, "json", "", "also write the result (with the full plans) as JSON to this file")
	fl.StringVar(&logLevel, "log-level", "warn", "debug, info, warn or error")
	return cmd
}

func printExplain(w io.Writer, r *bench.ExplainResult) {
	bench.PrintEnv(w, r.Postgres, r.Machine, r.Commit)
	fmt.Fprintf(w, "explain   %d tasks; auto_explain ANALYZE BUFFERS, nested statements; tasks %d rows, workflow_steps %d, step history %d\n\n",
		r.Tasks, r.TableRows["tasks"], r.TableRows["workflow_steps"], r.TableRows["workflow_step_transitions"])
	for _, c := range r.Cases {
		fmt.Fprintf(w, "%s\n", c.Name)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, st := range c.Statements {
			where := "call  "
			if st.Nested {
				where = "inside"
			}
			fmt.Fprintf(tw, "  %s\t%7.3f ms\thit %d read %d\trows est %.0f act %.0f\t%s\n", where, st.ExecutionMs, st.SharedHit,
				st.SharedRead, st.RowsEstimated, st.RowsActual, firstLine(st.Query))
			fmt.Fprintf(tw, "  \t\t\t\t  %s\n", strings.Join(dedupe(st.NodeTypes), ", "))
		}
		_ = tw.Flush()
	}
	fmt.Fprintf(w, "\nfindings (%d)\n", len(r.Findings))
	for _, f := range r.Findings {
		level := "warning"
		if f.Kind == bench.FindingSeqScan {
			level = "ERROR"
		}
		fmt.Fprintf(w, "  %s: %s: %s: %s\n      in: %s\n", level, f.Case, f.Kind, f.Detail, f.Query)
	}
}

func firstLine(q string) string {
	q = strings.Join(strings.Fields(q), " ")
	if len(q) > 90 {
		q = q[:87] + "..."
	}
	return q
}

// dedupe drops repeats, keeping order.
func dedupe(xs []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range xs {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}
