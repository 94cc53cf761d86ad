package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/taskerhq/tasker/internal/bench"
	"github.com/taskerhq/tasker/internal/devdb"
)

func newBenchThroughputCmd(getenv func(string) string) *cobra.Command {
	var db dbFlags
	var cfg bench.ThroughputConfig
	var modes, jsonPath, logLevel string
	cmd := &cobra.Command{
		Use:   "throughput [--template NAME] [--tasks N] [--modes off,metrics,full] [--json FILE]",
		Short: "Steps per second under the same load with telemetry off, metrics only, and full telemetry",
		Long: `tasker bench throughput pushes the same load (--tasks tasks of --template, created
by --submitters goroutines at once) through a fresh in-process engine per round, once per
mode, interleaving the modes for --rounds rounds in one run:

  off      no spans, no metrics, no export
  metrics  every metric recorded (Prometheus reader)
  full     metrics, 100 % sampled traces, OTLP traces/metrics/logs to a local Jaeger
           (tools/bin/jaeger, started by the benchmark; build it with scripts/build-jaeger.sh)

It prints each mode's median steps/s and its ratio to off.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) (err error) {
			ctx := cmd.Context()
			errOut := cmd.ErrOrStderr()
			logger, err := newLogger(logLevel)
			if err != nil {
				return err
			}
			cfg.Modes = strings.Split(modes, ",")
			url := db.URL
			if url == "" {
				if _, err := devdb.FindBinDir(); err != nil {
					return &exitError{code: exitFailed, err: err}
				}
				fmt.Fprintln(errOut, "starting ephemeral durable PostgreSQL (fsync, synchronous_commit, full_page_writes on)…")
				cluster, err := devdb.Start(ctx, devdb.Options{Durable: true})
				if err != nil {
					return fmt.Errorf("starting ephemeral PostgreSQL: %w", err)
				}
				defer func() {
					if serr := cluster.Stop(context.Background()); serr != nil && err == nil {
						err = serr
					}
				}()
				url = cluster.URL("postgres")
			}
			cfg.DatabaseURL, cfg.MaxConns, cfg.Logger = url, db.MaxConns, logger
			cfg.Progress = func(format string, args ...any) { fmt.Fprintf(errOut, format+"\n", args...) }
			res, err := bench.Throughput(ctx, cfg)
			if err != nil {
				return err
			}
			printThroughput(cmd.OutOrStdout(), res)
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
			for _, m := range res.Modes {
				if m.Errors > 0 {
					return failedError("%d tasks did not complete in mode %s", m.Errors, m.Mode)
				}
			}
			return nil
		},
	}
	db.bind(cmd, getenv, false)
	fl := cmd.Flags()
	fl.StringVar(&cfg.Template, "template", "linear", "template: NS/NAME[@VERSION] or linear, diamond, tree, mixed_dag, single")
	fl.IntVar(&cfg.Tasks, "tasks", 1000, "tasks per round")
	fl.IntVar(&cfg.Submitters, "submitters", 8, "goroutines creating tasks at once")
	fl.IntVar(&cfg.Rounds, "rounds", 3, "rounds per mode (modes interleaved)")
	fl.IntVar(&cfg.WorkerConcurrency, "worker-concurrency", 32, "worker handler slots")
	fl.StringVar(&modes, "modes", "off,metrics,full", "modes to compare")
	fl.StringVar(&jsonPath, "json", "", "also write the results as JSON to this file")
	fl.StringVar(&logLevel, "log-level", "warn", "debug, info, warn or error")
	return cmd
}

func printThroughput(w io.Writer, r *bench.ThroughputResult) {
	fmt.Fprintf(w, "throughput: %s, %d tasks × %d steps per round, %d submitters\n", r.Template, r.Tasks, r.Steps, r.Submitters)
	fmt.Fprintf(w, "machine: %d CPUs, %s/%s, load %.2f; PostgreSQL %s fsync=%s synchronous_commit=%s; commit %s\n\n",
		r.Machine.CPUs, r.Machine.GOOS, r.Machine.GOARCH, r.Machine.LoadAvg1, r.Postgres.Version, r.Postgres.Fsync,
		r.Postgres.SynchronousCommit, r.Commit)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MODE\tSTEPS/S (median)\tTASKS/S\tROUNDS\tRATIO vs off\tERRORS\tDROPPED")
	for _, m := range r.Modes {
		rounds := make([]string, len(m.Rounds))
		for i, v := range m.Rounds {
			rounds[i] = fmt.Sprintf("%.0f", v)
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%s\t%.3f\t%d\t%d\n", m.Mode, m.Median, m.TasksPerSec, strings.Join(rounds, " "), m.Ratio, m.Errors, m.DroppedSpans)
	}
	_ = tw.Flush()
}
