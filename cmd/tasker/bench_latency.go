package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/taskerhq/tasker/internal/bench"
)

func newBenchLatencyCmd(getenv func(string) string) *cobra.Command {
	var db dbFlags
	var topo topologyFlags
	var cfg bench.LatencyConfig
	var rates, jsonPath, logLevel string
	cmd := &cobra.Command{
		Use:   "latency-under-load --rate R[,R2,...] [--duration D] [--template single|linear] [--json FILE]",
		Short: "Open-loop create → complete latency at fixed arrival rates, and where it saturates",
		Long: `tasker bench latency-under-load offers tasks of --template at each --rate (tasks per
second) in turn, open loop: a ticker schedules the arrivals whatever the engine does, and
--creators goroutines create them, arrivals that are due together in one batched create.
Each rate runs --warmup unmeasured, then --duration measured, and its tasks are drained
before the next rate starts.

For each rate it prints the rate created and completed (the achieved rate) and the
create → complete p50/p95/p99, timed from each task's scheduled arrival to its completion
as the orchestrator reports it right after the finalizing commit. A rate is saturated when
fewer than 95 % of its target complete per second, tasks are left unfinished, or its p99
runs away (over 10× the lowest rate's); the first saturated rate is reported.

With --json it also writes an SVG chart of rate vs p50/p99 next to the JSON file.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) (err error) {
			ctx := cmd.Context()
			errOut := cmd.ErrOrStderr()
			logger, err := newLogger(logLevel)
			if err != nil {
				return err
			}
			if cfg.Rates, err = parseRates(rates); err != nil {
				return err
			}
			if err := topo.check(); err != nil {
				return err
			}
			switch {
			case cfg.Duration <= 0:
				return usageError("--duration must be > 0, got %s", cfg.Duration)
			case cfg.Warmup < 0:
				return usageError("--warmup must be ≥ 0, got %s", cfg.Warmup)
			case cfg.Drain <= 0:
				return usageError("--drain must be > 0, got %s", cfg.Drain)
			case cfg.Creators < 1:
				return usageError("--creators must be ≥ 1, got %d", cfg.Creators)
			case cfg.FloorSamples < 1:
				return usageError("--floor-samples must be ≥ 1, got %d", cfg.FloorSamples)
			}
			if _, _, _, err := bench.ResolveTemplate(cfg.Template); err != nil {
				return usageError("--template: %v", err)
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
			cfg.DatabaseURL, cfg.MaxConns, cfg.Logger = url, db.MaxConns, logger
			cfg.Topology, cfg.WorkerConcurrency, cfg.ResultWorkers = topo.topology(), topo.workerConcurrency, topo.resultWorkers
			cfg.Progress = func(format string, args ...any) { fmt.Fprintf(errOut, format+"\n", args...) }
			res, err := bench.LatencyUnderLoad(ctx, cfg)
			if err != nil {
				return err
			}
			if err := showResult(cmd.OutOrStdout(), errOut, jsonPath, res, func(w io.Writer, r *bench.LatencyResult) {
				_ = bench.PrintLatency(w, r)
			}); err != nil {
				return err
			}
			if jsonPath != "" {
				svg := strings.TrimSuffix(jsonPath, filepath.Ext(jsonPath)) + ".svg"
				if err := os.WriteFile(svg, res.ChartSVG(), 0o644); err != nil {
					return fmt.Errorf("writing %s: %w", svg, err)
				}
				fmt.Fprintf(errOut, "wrote %s\n", svg)
			}
			for _, r := range res.Rates {
				if r.Errors > 0 {
					return failedError("%d tasks failed at %g tasks/s", r.Errors, r.TargetRate)
				}
			}
			return nil
		},
	}
	db.bind(cmd, getenv, false)
	fl := cmd.Flags()
	fl.StringVar(&rates, "rate", "", "arrival rates in tasks per second, comma-separated, e.g. 100,500,2000 (required)")
	fl.DurationVar(&cfg.Duration, "duration", 10*time.Second, "measured window of each rate")
	fl.DurationVar(&cfg.Warmup, "warmup", 2*time.Second, "unmeasured start of each rate")
	fl.DurationVar(&cfg.Drain, "drain", time.Minute, "how long a rate's tasks may take to finish after its window")
	fl.StringVar(&cfg.Template, "template", "single", "template: NS/NAME[@VERSION] or single, linear, diamond, tree, mixed_dag")
	fl.IntVar(&cfg.Creators, "creators", 4, "goroutines creating the arriving tasks")
	fl.IntVar(&cfg.FloorSamples, "floor-samples", 100, "commits and notifications the floor measurement takes")
	topo.bind(fl)
	fl.StringVar(&jsonPath, "json", "", "also write the results as JSON to this file, and the chart as an SVG beside it")
	fl.StringVar(&logLevel, "log-level", "warn", "debug, info, warn or error")
	return cmd
}

// parseRates reads --rate: positive numbers, comma-separated.
func parseRates(s string) ([]float64, error) {
	if strings.TrimSpace(s) == "" {
		return nil, usageError("--rate is required, e.g. --rate 100,500,2000")
	}
	var out []float64
	for _, part := range strings.Split(s, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(part), 64)
		if err != nil || v <= 0 || v > bench.MaxRate {
			return nil, usageError("--rate: %q is not a rate above 0 and at most %d tasks/s", part, bench.MaxRate)
		}
		out = append(out, v)
	}
	return out, nil
}
