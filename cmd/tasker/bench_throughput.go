package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/taskerhq/tasker/client"
	"github.com/taskerhq/tasker/internal/bench"
)

// topologyFlags are the load benchmarks' engine flags.
type topologyFlags struct {
	orchestrators, workers, workerConcurrency, resultWorkers int
}

func (f *topologyFlags) bind(fl *pflag.FlagSet) {
	fl.IntVar(&f.orchestrators, "orchestrators", 1, "orchestrators (engines in this process sharing the database; 1 + 1 share one engine)")
	fl.IntVar(&f.workers, "workers", 1, "workers (engines in this process sharing the database)")
	fl.IntVar(&f.workerConcurrency, "worker-concurrency", 32, "handler slots of each worker")
	fl.IntVar(&f.resultWorkers, "result-workers", 2, "result batches each orchestrator processes at once")
}

func (f topologyFlags) check() error {
	for _, c := range []struct {
		flag string
		v    int
		max  int
	}{{"--orchestrators", f.orchestrators, 16}, {"--workers", f.workers, 16}, {"--worker-concurrency", f.workerConcurrency, 10000},
		{"--result-workers", f.resultWorkers, 1000}} {
		if c.v < 1 || c.v > c.max {
			return usageError("%s must be from 1 to %d, got %d", c.flag, c.max, c.v)
		}
	}
	return nil
}

func (f topologyFlags) topology() bench.Topology {
	return bench.Topology{Orchestrators: f.orchestrators, Workers: f.workers}
}

func newBenchThroughputCmd(getenv func(string) string) *cobra.Command {
	var db dbFlags
	var topo topologyFlags
	var cfg bench.ThroughputConfig
	var modes, jsonPath, logLevel, cpuProfile string
	cmd := &cobra.Command{
		Use:   "throughput [--template NAME] [--tasks N] [--load closed|burn-down|continuous] [--modes off,metrics,full] [--json FILE]",
		Short: "Steps per second under a load, with telemetry off, metrics only, and full telemetry",
		Long: `tasker bench throughput pushes the same load through a fresh in-process engine per
round, once per telemetry mode (--modes), interleaving the modes for --rounds rounds in one run:

  off      no spans, no metrics, no export
  metrics  every metric recorded (Prometheus reader)
  full     metrics, 100 % sampled traces, OTLP traces/metrics/logs to a local Jaeger
           (tools/bin/jaeger, started by the benchmark; build it with scripts/build-jaeger.sh)

The load (--load) is one of:

  closed      --submitters goroutines create --tasks tasks one at a time while the engine
              runs; steps/s from the first create until all are done (the default)
  burn-down   --tasks tasks are inserted first with batched creates (--batch per batch)
              while no engine runs, then the engine starts; steps/s to drain them
  continuous  the engine runs while a producer keeps --backlog tasks open with batched
              creates; steps/s of the tasks completed in a --duration window after --warmup

--orchestrators and --workers run that many orchestrators and workers as separate engines
in this process, each with its own pool and listener, sharing the database: 2 + 2 against
1 + 1 shows how the engine scales out.

It prints the floor (commit, NOTIFY), each mode's median steps/s, its ratio to off, and the
database-recorded create → complete p50/p95/p99 of the measured tasks.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) (err error) {
			ctx := cmd.Context()
			errOut := cmd.ErrOrStderr()
			logger, err := newLogger(logLevel)
			if err != nil {
				return err
			}
			cfg.Modes = strings.Split(modes, ",")
			for _, m := range cfg.Modes {
				if m != bench.ModeOff && m != bench.ModeMetrics && m != bench.ModeFull {
					return usageError("--modes: %q is not one of off, metrics, full", m)
				}
			}
			if err := topo.check(); err != nil {
				return err
			}
			switch {
			case cfg.Load != bench.LoadClosed && cfg.Load != bench.LoadBurnDown && cfg.Load != bench.LoadContinuous:
				return usageError("--load must be closed, burn-down or continuous, got %q", cfg.Load)
			case cfg.Tasks < 1:
				return usageError("--tasks must be ≥ 1, got %d", cfg.Tasks)
			case cfg.Submitters < 1:
				return usageError("--submitters must be ≥ 1, got %d", cfg.Submitters)
			case cfg.Rounds < 1:
				return usageError("--rounds must be ≥ 1, got %d", cfg.Rounds)
			case cfg.Batch < 1 || cfg.Batch > client.MaxTaskBatch:
				return usageError("--batch must be from 1 to %d, got %d", client.MaxTaskBatch, cfg.Batch)
			case cfg.Duration <= 0:
				return usageError("--duration must be > 0, got %s", cfg.Duration)
			case cfg.Warmup < 0:
				return usageError("--warmup must be ≥ 0, got %s", cfg.Warmup)
			case cfg.Backlog < 0:
				return usageError("--backlog must be ≥ 0, got %d", cfg.Backlog)
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
			stopProfile, err := startCPUProfile(cpuProfile)
			if err != nil {
				return err
			}
			defer func() { err = errors.Join(err, stopProfile()) }()
			res, err := bench.Throughput(ctx, cfg)
			if err != nil {
				return err
			}
			if err := showResult(cmd.OutOrStdout(), errOut, jsonPath, res, printThroughput); err != nil {
				return err
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
	fl.IntVar(&cfg.Tasks, "tasks", 1000, "tasks per round (closed and burn-down loads)")
	fl.IntVar(&cfg.Submitters, "submitters", 8, "goroutines creating tasks at once (closed load)")
	fl.IntVar(&cfg.Rounds, "rounds", 3, "rounds per mode (modes interleaved)")
	fl.StringVar(&modes, "modes", "off,metrics,full", "telemetry modes to compare")
	fl.StringVar(&cfg.Load, "load", bench.LoadClosed, "how tasks arrive: closed, burn-down or continuous")
	fl.IntVar(&cfg.Batch, "batch", 500, "tasks per batched create (burn-down and continuous loads)")
	fl.DurationVar(&cfg.Duration, "duration", 10*time.Second, "measured window of the continuous load")
	fl.DurationVar(&cfg.Warmup, "warmup", 2*time.Second, "unmeasured start of the continuous load")
	fl.IntVar(&cfg.Backlog, "backlog", 0, "open tasks the continuous load keeps (0: 2 × worker slots)")
	fl.IntVar(&cfg.FloorSamples, "floor-samples", 100, "commits and notifications the floor measurement takes")
	topo.bind(fl)
	fl.StringVar(&jsonPath, "json", "", "also write the results as JSON to this file")
	fl.StringVar(&logLevel, "log-level", "warn", "debug, info, warn or error")
	fl.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of this process (engine and benchmark) to this file")
	return cmd
}

func printThroughput(w io.Writer, r *bench.ThroughputResult) {
	load := r.Load
	switch r.Load {
	case bench.LoadClosed:
		load = fmt.Sprintf("closed: %d tasks × %d steps per round, %d submitters", r.Tasks, r.Steps, r.Submitters)
	case bench.LoadBurnDown:
		load = fmt.Sprintf("burn-down: %d tasks × %d steps inserted (batches of %d), then drained", r.Tasks, r.Steps, r.Batch)
	case bench.LoadContinuous:
		load = fmt.Sprintf("continuous: %d tasks open (%d steps each), %gs window after %gs warm-up", r.Backlog, r.Steps, r.WindowS, r.WarmupS)
	}
	fmt.Fprintf(w, "throughput: %s, %s; %s\n", r.Template, load, r.Topology)
	fmt.Fprintf(w, "machine   %d CPUs, %s/%s, load %.2f; PostgreSQL %s fsync=%s synchronous_commit=%s; commit %s\n",
		r.Machine.CPUs, r.Machine.GOOS, r.Machine.GOARCH, r.Machine.LoadAvg1, r.Postgres.Version, r.Postgres.Fsync,
		r.Postgres.SynchronousCommit, r.Commit)
	f := r.Floor
	fmt.Fprintf(w, "floor     commit p50/p95/p99 %.2f/%.2f/%.2f ms, notify %.2f/%.2f/%.2f ms (%d samples)\n\n",
		f.CommitP50, f.CommitP95, f.CommitP99, f.NotifyP50, f.NotifyP95, f.NotifyP99, f.Samples)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MODE\tSTEPS/S (median)\tTASKS/S\tROUNDS\tRATIO vs off\ttask p50/p95/p99 ms\tERRORS\tDROPPED")
	for _, m := range r.Modes {
		rounds := make([]string, len(m.Rounds))
		for i, v := range m.Rounds {
			rounds[i] = fmt.Sprintf("%.0f", v)
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%s\t%.3f\t%.1f/%.1f/%.1f\t%d\t%d\n", m.Mode, m.Median, m.TasksPerSec, strings.Join(rounds, " "),
			m.Ratio, m.P50, m.P95, m.P99, m.Errors, m.DroppedSpans)
	}
	_ = tw.Flush()
	if r.Load == bench.LoadBurnDown {
		for _, m := range r.Modes {
			fmt.Fprintf(w, "batched create (mode %s, no engine running): %.0f tasks/s median; while draining, per step: %.0f B WAL, %.2f transaction IDs\n",
				m.Mode, m.CreatedPerSec, m.WALBytesPerStep, m.XIDsPerStep)
		}
	}
}
