package main

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/taskerhq/tasker/internal/bench"
)

func newBenchSoakCmd(getenv func(string) string) *cobra.Command {
	var dbf dbFlags
	var cfg bench.SoakConfig
	var jsonPath string
	cmd := &cobra.Command{
		Use:   "soak [--duration 10m] [--rate 20] [--interval 10s] [--json FILE]",
		Short: "Long steady load: RSS, goroutines, connections and table sizes of server and worker over time",
		Long: `tasker bench soak runs this binary as a separate tasker server and tasker
worker --examples (production profile, export off), creates --rate tasks per
second through the REST API for --duration, and every --interval prints each
process's RSS, goroutines and database connections (from their /metrics and
pg_stat_activity), tasks created and completed, queued messages and the size
of Tasker's tables.

At the end it prints the RSS slope of each process over the second half of
the run (bytes per minute): flat is the goal, as is at most 150 MB RSS each.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) (err error) {
			ctx := cmd.Context()
			out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
			if cfg.Duration <= 0 || cfg.Interval <= 0 || cfg.Interval > cfg.Duration {
				return usageError("--interval (%s) must be positive and at most --duration (%s)", cfg.Interval, cfg.Duration)
			}
			if cfg.Rate <= 0 {
				return usageError("--rate must be positive, got %v", cfg.Rate)
			}
			if cfg.Binary, err = os.Executable(); err != nil {
				return fmt.Errorf("finding this executable: %w", err)
			}
			url, stop, err := benchDatabase(ctx, dbf, errOut, slog.New(slog.DiscardHandler))
			if err != nil {
				return err
			}
			defer func() {
				if serr := stop(); serr != nil && err == nil {
					err = serr
				}
			}()
			cfg.DatabaseURL = url
			// Migrate first so that the server and worker do not race to.
			pool, err := openDB(ctx, cfg.DatabaseURL, 2)
			if err != nil {
				return err
			}
			pool.Close()
			first := true
			cfg.OnSample = func(s bench.SoakSample) {
				bench.WriteSoakTable(out, s, first)
				first = false
			}
			rep, err := bench.RunSoak(ctx, cfg)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "\nRSS max: server %.1f MB, worker %.1f MB; slope over the second half: server %+.2f MB/min, worker %+.2f MB/min; create errors: %d\n",
				rep.MaxServerRSS/(1<<20), rep.MaxWorkerRSS/(1<<20), rep.ServerRSSSlope/(1<<20), rep.WorkerRSSSlope/(1<<20), rep.Errors)
			if jsonPath != "" {
				return writeJSONFile(jsonPath, rep, errOut)
			}
			return nil
		},
	}
	dbf.bind(cmd, getenv, false)
	fl := cmd.Flags()
	fl.DurationVar(&cfg.Duration, "duration", 10*time.Minute, "how long tasks are created")
	fl.DurationVar(&cfg.Interval, "interval", 10*time.Second, "time between samples")
	fl.Float64Var(&cfg.Rate, "rate", 20, "tasks created per second")
	fl.StringVar(&jsonPath, "json", "", "also write the samples and the trend as JSON to this file")
	return cmd
}
