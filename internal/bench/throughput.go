package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taskerhq/tasker/client"
	"github.com/taskerhq/tasker/handler"
	"github.com/taskerhq/tasker/internal/base"
	"github.com/taskerhq/tasker/internal/config"
	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/examples"
	"github.com/taskerhq/tasker/internal/jaegertest"
	"github.com/taskerhq/tasker/internal/metrics"
	"github.com/taskerhq/tasker/internal/orchestration"
	"github.com/taskerhq/tasker/internal/telemetry"
	"github.com/taskerhq/tasker/internal/tracing"
	"github.com/taskerhq/tasker/internal/worker"
)

// Throughput modes: what observability runs while the same load is pushed.
const (
	// ModeOff: no spans, no metrics, no export.
	ModeOff = "off"
	// ModeMetrics: every metric recorded, served to a Prometheus reader.
	ModeMetrics = "metrics"
	// ModeFull: metrics, 100 % sampled traces and OTLP logs/metrics/traces
	// exported to a local Jaeger (started by the benchmark).
	ModeFull = "full"
)

// ThroughputConfig configures Throughput. Zero values mean the documented default.
type ThroughputConfig struct {
	DatabaseURL string
	// MaxConns is the engine pool's size. Default 40.
	MaxConns int32
	// Template is a ShortNames key or NS/NAME[@VERSION]. Default linear.
	Template string
	// Tasks per measured round. Default 1000.
	Tasks int
	// Submitters create tasks concurrently. Default 8.
	Submitters int
	// Rounds per mode; modes are interleaved (off, full, metrics, off, …) so
	// drift on a shared machine hits every mode alike. Default 3.
	Rounds int
	// Modes to compare. Default off, metrics, full.
	Modes []string
	// WorkerConcurrency is the worker's handler slots. Default 32.
	WorkerConcurrency int
	// ResultWorkers is orchestration's result-processing concurrency. Default 8.
	ResultWorkers int
	// Timeout bounds one round. Default 5m.
	Timeout  time.Duration
	Logger   *slog.Logger
	Progress func(format string, args ...any)
}

func (c ThroughputConfig) withDefaults() ThroughputConfig {
	if c.MaxConns <= 0 {
		c.MaxConns = 40
	}
	if c.Template == "" {
		c.Template = "linear"
	}
	if c.Tasks == 0 {
		c.Tasks = 1000
	}
	if c.Submitters == 0 {
		c.Submitters = 8
	}
	if c.Rounds == 0 {
		c.Rounds = 3
	}
	if len(c.Modes) == 0 {
		c.Modes = []string{ModeOff, ModeMetrics, ModeFull}
	}
	if c.WorkerConcurrency == 0 {
		c.WorkerConcurrency = 32
	}
	if c.ResultWorkers == 0 {
		c.ResultWorkers = 8
	}
	if c.Timeout == 0 {
		c.Timeout = 5 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Progress == nil {
		c.Progress = func(string, ...any) {}
	}
	return c
}

func (c ThroughputConfig) validate() error {
	if c.DatabaseURL == "" {
		return errors.New("bench: a database URL is required")
	}
	if c.Tasks < 1 || c.Submitters < 1 || c.Rounds < 1 {
		return fmt.Errorf("bench: tasks, submitters and rounds must be ≥ 1 (got %d, %d, %d)", c.Tasks, c.Submitters, c.Rounds)
	}
	for _, m := range c.Modes {
		if m != ModeOff && m != ModeMetrics && m != ModeFull {
			return fmt.Errorf("bench: mode %q is not one of %s, %s, %s", m, ModeOff, ModeMetrics, ModeFull)
		}
	}
	return nil
}

// ModeResult is one mode's rounds.
type ModeResult struct {
	Mode string `json:"mode"`
	// StepsPerSecond of each round, and their median.
	Rounds       []float64 `json:"rounds_steps_per_second"`
	Median       float64   `json:"median_steps_per_second"`
	TasksPerSec  float64   `json:"median_tasks_per_second"`
	Errors       int       `json:"errors"`
	Ratio        float64   `json:"ratio_vs_off"`
	DroppedSpans int64     `json:"dropped_telemetry,omitempty"`
}

// ThroughputResult compares the modes.
type ThroughputResult struct {
	Benchmark  string       `json:"benchmark"`
	Template   string       `json:"template"`
	Tasks      int          `json:"tasks_per_round"`
	Steps      int          `json:"steps_per_task"`
	Submitters int          `json:"submitters"`
	Modes      []ModeResult `json:"modes"`
	Postgres   Postgres     `json:"postgres"`
	Machine    Machine      `json:"machine"`
	Commit     string       `json:"commit"`
	StartedAt  time.Time    `json:"started_at"`
}

// Throughput pushes the same load through the engine under each
// observability mode and reports steps per second and each mode's ratio to
// "off", all measured in one run.
func Throughput(ctx context.Context, cfg ThroughputConfig) (*ThroughputResult, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	ns, name, version, err := ResolveTemplate(cfg.Template)
	if err != nil {
		return nil, err
	}
	pool, reg, pg, err := prepare(ctx, cfg.DatabaseURL, cfg.MaxConns)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	tpls, err := examples.Templates()
	if err != nil {
		return nil, err
	}
	steps := 0
	for _, t := range tpls {
		if t.Namespace == ns && t.Name == name {
			steps = len(t.Steps)
		}
	}
	res := &ThroughputResult{Benchmark: "throughput", Template: cfg.Template, Tasks: cfg.Tasks, Steps: steps,
		Submitters: cfg.Submitters, Postgres: pg, Machine: ThisMachine(), Commit: Commit(), StartedAt: time.Now().UTC()}

	var jaeger *jaegertest.Jaeger
	if slices.Contains(cfg.Modes, ModeFull) {
		dir, err := os.MkdirTemp("", "tasker-bench-jaeger-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		var stop func()
		if jaeger, stop, err = jaegertest.Launch(dir); err != nil {
			return nil, fmt.Errorf("starting jaeger for the full-telemetry mode: %w", err)
		}
		defer stop()
	}

	byMode := map[string]*ModeResult{}
	for _, m := range cfg.Modes {
		byMode[m] = &ModeResult{Mode: m}
	}
	// One unmeasured warm-up round fills caches and the pool.
	cfg.Progress("warm-up round (%d tasks)", cfg.Tasks/4+1)
	if _, _, _, err := throughputRound(ctx, cfg, pool, reg, ModeOff, nil, ns, name, version, cfg.Tasks/4+1); err != nil {
		return nil, err
	}
	for r := range cfg.Rounds {
		for _, m := range cfg.Modes {
			cfg.Progress("round %d/%d, mode %s: %d %s tasks", r+1, cfg.Rounds, m, cfg.Tasks, cfg.Template)
			d, errs, dropped, err := throughputRound(ctx, cfg, pool, reg, m, jaeger, ns, name, version, cfg.Tasks)
			if err != nil {
				return nil, err
			}
			mr := byMode[m]
			mr.Rounds = append(mr.Rounds, float64(cfg.Tasks*steps)/d.Seconds())
			mr.Errors += errs
			mr.DroppedSpans += dropped
		}
	}
	base := median(byMode[cfg.Modes[0]].Rounds)
	if om, ok := byMode[ModeOff]; ok {
		base = median(om.Rounds)
	}
	for _, m := range cfg.Modes {
		mr := byMode[m]
		mr.Median = median(mr.Rounds)
		mr.TasksPerSec = mr.Median / float64(max(steps, 1))
		if base > 0 {
			mr.Ratio = mr.Median / base
		}
		res.Modes = append(res.Modes, *mr)
	}
	return res, nil
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// throughputRound starts a fresh engine with mode's observability, creates
// n tasks from cfg.Submitters goroutines, and waits until all are terminal.
func throughputRound(ctx context.Context, cfg ThroughputConfig, pool *pgxpool.Pool, reg *handler.Registry, mode string,
	jaeger *jaegertest.Jaeger, ns, name, version string, n int) (elapsed time.Duration, errs int, dropped int64, err error) {
	var m *metrics.Metrics
	tr := tracing.Noop()
	var provs []*telemetry.Providers
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		for _, p := range provs {
			err = errors.Join(err, p.Shutdown(sctx))
			dropped += p.Dropped()
		}
	}()
	logger := cfg.Logger
	switch mode {
	case ModeMetrics:
		prom, perr := metrics.NewPrometheus()
		if perr != nil {
			return 0, 0, 0, perr
		}
		if m, err = metrics.New(prom.MeterProvider()); err != nil {
			return 0, 0, 0, err
		}
	case ModeFull:
		tc := config.Default().Telemetry
		tc.Enabled = true
		tc.OTLP.Endpoint = "http://" + jaeger.OTLPGRPCEndpoint()
		tc.Sampling = config.Sampling{Strategy: config.StrategyParentBasedAlwaysOn, Ratio: 1}
		tc.Metrics.ExportInterval = config.Duration(time.Second)
		prom, perr := metrics.NewPrometheus()
		if perr != nil {
			return 0, 0, 0, perr
		}
		p, perr := telemetry.New(ctx, tc, "tasker-bench", telemetry.WithMetricReader(prom.Reader), telemetry.WithLogger(logger))
		if perr != nil {
			return 0, 0, 0, perr
		}
		provs = append(provs, p)
		tr = tracing.New(p.TracerProvider, p.Propagator)
		if m, err = metrics.New(p.MeterProvider); err != nil {
			return 0, 0, 0, err
		}
		// Lifecycle records at info, exported as OTLP logs (stderr output discarded).
		tc.Logs.Level = config.LevelInfo
		logger = telemetry.NewLogger(tc.Logs, discard{}, p)
	}
	sub, err := orchestration.New(pool, orchestration.Config{Telemetry: base.Telemetry{Tracer: tr, Metrics: m, Logger: logger}})
	if err != nil {
		return 0, 0, 0, err
	}
	e, err := engine.Start(ctx, engine.Config{Pool: pool,
		Orchestration: &orchestration.Config{ResultWorkers: cfg.ResultWorkers},
		Worker: &worker.Config{Namespaces: []string{ns}, Dispatcher: worker.RegistryDispatcher{Registry: reg},
			Concurrency: cfg.WorkerConcurrency, Submitter: sub}, Telemetry: base.Telemetry{Logger: logger, Metrics: m, Tracer: tr}})
	if err != nil {
		return 0, 0, 0, err
	}
	defer func() { err = errors.Join(err, e.Stop()) }()

	rctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	ids := make([]uuid.UUID, n)
	var next atomic.Int64
	var failed atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for range cfg.Submitters {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(n) || rctx.Err() != nil {
					return
				}
				req, err := client.NewTaskRequest(ns, name, version, map[string]int{"even_number": 2 + 2*int(i%10)})
				if err == nil {
					var c *orchestration.Created
					if c, err = e.Orchestrator.CreateTask(rctx, req); err == nil {
						ids[i] = c.TaskUUID
						continue
					}
				}
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	for {
		var open, bad int
		if err := pool.QueryRow(rctx, `SELECT count(*) FILTER (WHERE state NOT IN ('complete','error','cancelled','resolved_manually')),
				count(*) FILTER (WHERE state <> 'complete') FROM tasker.tasks WHERE task_uuid = ANY($1)`, ids).Scan(&open, &bad); err != nil {
			return 0, 0, 0, fmt.Errorf("waiting for tasks: %w", err)
		}
		if open == 0 {
			return time.Since(start), bad + int(failed.Load()), 0, nil
		}
		select {
		case <-rctx.Done():
			return 0, 0, 0, fmt.Errorf("round did not finish within %s: %d tasks open", cfg.Timeout, open)
		// Coarse on purpose: the check itself costs database time the
		// engine is being measured on.
		case <-time.After(100 * time.Millisecond):
		}
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
