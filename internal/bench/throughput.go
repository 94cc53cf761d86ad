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
	"github.com/taskerhq/tasker/internal/jaegertest"
	"github.com/taskerhq/tasker/internal/metrics"
	"github.com/taskerhq/tasker/internal/orchestration"
	"github.com/taskerhq/tasker/internal/telemetry"
	"github.com/taskerhq/tasker/internal/tracing"
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

// Throughput loads: how tasks arrive.
const (
	// LoadClosed: Submitters goroutines create Tasks tasks one at a time as
	// fast as they can while the engine runs; steps/s from the first create
	// until every task is terminal.
	LoadClosed = "closed"
	// LoadBurnDown: Tasks tasks are inserted first (batched creates, engine
	// stopped), then the engine starts; steps/s to drain them.
	LoadBurnDown = "burn-down"
	// LoadContinuous: producers keep Backlog tasks open (batched creates)
	// while the engine runs; steps/s of the tasks completed in a Duration
	// window after Warmup.
	LoadContinuous = "continuous"
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
	// ResultWorkers is orchestration's result-processing concurrency
	// (0: orchestration's default).
	ResultWorkers int
	// Timeout bounds one round. Default 5m.
	Timeout time.Duration
	// Load is LoadClosed (default), LoadBurnDown or LoadContinuous.
	Load string
	// Topology is how many orchestrators and workers run. Default 1 + 1.
	Topology Topology
	// Batch is the size of the batched creates of burn-down and continuous
	// loads. Default 500.
	Batch int
	// Duration is the continuous load's measured window, after Warmup.
	// Defaults 10s and 2s.
	Duration time.Duration
	Warmup   time.Duration
	// Backlog is how many tasks the continuous load keeps open. Default
	// 2 × WorkerConcurrency × workers: one ready step per slot and as many
	// waiting, however many steps a task has.
	Backlog int
	// FloorSamples is how many commits and notifications the floor takes. Default 100.
	FloorSamples int
	Logger       *slog.Logger
	Progress     func(format string, args ...any)
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
	if c.Timeout == 0 {
		c.Timeout = 5 * time.Minute
	}
	if c.Load == "" {
		c.Load = LoadClosed
	}
	c.Topology = c.Topology.withDefaults()
	if c.Batch == 0 {
		c.Batch = 500
	}
	if c.Duration == 0 {
		c.Duration = 10 * time.Second
	}
	if c.Warmup == 0 {
		c.Warmup = 2 * time.Second
	}
	if c.Backlog == 0 {
		c.Backlog = 2 * c.WorkerConcurrency * c.Topology.Workers
	}
	if c.FloorSamples == 0 {
		c.FloorSamples = 100
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
	switch {
	case c.Load != LoadClosed && c.Load != LoadBurnDown && c.Load != LoadContinuous:
		return fmt.Errorf("bench: load %q is not one of %s, %s, %s", c.Load, LoadClosed, LoadBurnDown, LoadContinuous)
	case c.Batch < 1 || c.Batch > client.MaxTaskBatch:
		return fmt.Errorf("bench: batch must be from 1 to %d, got %d", client.MaxTaskBatch, c.Batch)
	case c.Duration < 0 || c.Warmup < 0 || c.Backlog < 1 || c.FloorSamples < 1:
		return fmt.Errorf("bench: duration and warmup must be ≥ 0, backlog and floor samples ≥ 1 (got %s, %s, %d, %d)",
			c.Duration, c.Warmup, c.Backlog, c.FloorSamples)
	}
	return c.Topology.validate()
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
	// TasksMeasured counts the completed tasks behind the latencies: the
	// database-recorded create → complete time (tasks.completed_at −
	// created_at) of every measured task of every round. Under burn-down it
	// includes the wait before the engine started.
	TasksMeasured int64 `json:"tasks_measured"`
	// CreatedPerSec is the median rate at which burn-down's batched creates
	// inserted the tasks (no engine running), tasks per second.
	CreatedPerSec float64 `json:"median_created_per_second,omitempty"`
	createRounds  []float64
	P50           float64 `json:"task_p50_ms"`
	P95           float64 `json:"task_p95_ms"`
	P99           float64 `json:"task_p99_ms"`
	// WALBytesPerStep and XIDsPerStep are the medians, over burn-down
	// rounds, of the WAL written and transaction IDs used per step while
	// the engine drained the backlog (server-wide counters: nothing else
	// writes then).
	WALBytesPerStep float64 `json:"median_wal_bytes_per_step,omitempty"`
	XIDsPerStep     float64 `json:"median_xids_per_step,omitempty"`
	walRounds       []float64
	xidRounds       []float64
}

// ThroughputResult compares the modes.
type ThroughputResult struct {
	Benchmark  string   `json:"benchmark"`
	Template   string   `json:"template"`
	Tasks      int      `json:"tasks_per_round"`
	Steps      int      `json:"steps_per_task"`
	Submitters int      `json:"submitters"`
	Load       string   `json:"load"`
	Topology   Topology `json:"topology"`
	// Batch is the batched-create size (burn-down, continuous); Backlog,
	// WindowS and WarmupS describe the continuous load.
	Batch     int          `json:"batch,omitempty"`
	Backlog   int          `json:"backlog,omitempty"`
	WindowS   float64      `json:"window_s,omitempty"`
	WarmupS   float64      `json:"warmup_s,omitempty"`
	Modes     []ModeResult `json:"modes"`
	Floor     Floor        `json:"floor"`
	Postgres  Postgres     `json:"postgres"`
	Machine   Machine      `json:"machine"`
	Commit    string       `json:"commit"`
	StartedAt time.Time    `json:"started_at"`
}

// Throughput pushes the same load through the engine under each
// observability mode and reports steps per second and each mode's ratio to
// "off", all measured in one run.
func Throughput(ctx context.Context, cfg ThroughputConfig) (*ThroughputResult, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	ls, err := setupLoad(ctx, cfg.Template, cfg.DatabaseURL, cfg.MaxConns, cfg.FloorSamples, cfg.Progress)
	if err != nil {
		return nil, err
	}
	pool, reg, ns, name, version := ls.pool, ls.reg, ls.ns, ls.name, ls.version
	defer pool.Close()
	steps := len(ls.tpl.Template.Steps)
	res := &ThroughputResult{Benchmark: "throughput", Template: cfg.Template, Tasks: cfg.Tasks, Steps: steps,
		Submitters: cfg.Submitters, Load: cfg.Load, Topology: cfg.Topology, Postgres: ls.pg, Machine: ThisMachine(),
		Commit: Commit(), StartedAt: time.Now().UTC(), Floor: ls.floor}
	switch cfg.Load {
	case LoadBurnDown:
		res.Batch = cfg.Batch
	case LoadContinuous:
		res.Batch, res.Backlog, res.WindowS, res.WarmupS = cfg.Batch, cfg.Backlog, cfg.Duration.Seconds(), cfg.Warmup.Seconds()
	}
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
	hists := map[string]*hist{}
	for _, m := range cfg.Modes {
		byMode[m] = &ModeResult{Mode: m}
		hists[m] = newHist()
	}
	tpl := roundTemplate{ns: ns, name: name, version: version, steps: steps}
	// One unmeasured warm-up round (closed load) fills caches and the pool.
	cfg.Progress("warm-up round (%d tasks)", cfg.Tasks/4+1)
	warm := cfg
	warm.Load, warm.Tasks = LoadClosed, cfg.Tasks/4+1
	if _, err := throughputRound(ctx, warm, pool, reg, ModeOff, nil, tpl, newHist()); err != nil {
		return nil, err
	}
	for r := range cfg.Rounds {
		for _, m := range cfg.Modes {
			what := fmt.Sprintf("%d %s tasks", cfg.Tasks, cfg.Template)
			if cfg.Load == LoadContinuous {
				what = fmt.Sprintf("%s window after %s warm-up, %d %s tasks open", cfg.Duration, cfg.Warmup, cfg.Backlog, cfg.Template)
			}
			cfg.Progress("round %d/%d, mode %s, %s load: %s", r+1, cfg.Rounds, m, cfg.Load, what)
			rr, err := throughputRound(ctx, cfg, pool, reg, m, jaeger, tpl, hists[m])
			if err != nil {
				return nil, err
			}
			mr := byMode[m]
			mr.Rounds = append(mr.Rounds, rr.stepsPerSec)
			mr.Errors += rr.errs
			mr.DroppedSpans += rr.dropped
			if rr.createdPerSec > 0 {
				mr.createRounds = append(mr.createRounds, rr.createdPerSec)
			}
			if rr.walPerStep > 0 {
				mr.walRounds, mr.xidRounds = append(mr.walRounds, rr.walPerStep), append(mr.xidRounds, rr.xidsPerStep)
			}
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
		h := hists[m]
		mr.TasksMeasured, mr.P50, mr.P95, mr.P99 = h.count(), h.pct(50), h.pct(95), h.pct(99)
		mr.CreatedPerSec = round3(median(mr.createRounds))
		mr.WALBytesPerStep, mr.XIDsPerStep = round3(median(mr.walRounds)), round3(median(mr.xidRounds))
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

// roundTemplate is the template a round's tasks are created from.
type roundTemplate struct {
	ns, name, version string
	steps             int
}

// roundResult is one measured round.
type roundResult struct {
	stepsPerSec float64
	// createdPerSec is the burn-down creation rate, tasks per second.
	createdPerSec float64
	// walPerStep and xidsPerStep are burn-down's drain costs (0 otherwise).
	walPerStep, xidsPerStep float64
	errs                    int
	dropped                 int64
}

// throughputRound starts a fresh topology with mode's observability, pushes
// cfg.Load through it, and records the measured tasks' latencies in h.
func throughputRound(ctx context.Context, cfg ThroughputConfig, pool *pgxpool.Pool, reg *handler.Registry, mode string,
	jaeger *jaegertest.Jaeger, tpl roundTemplate, h *hist) (rr roundResult, err error) {
	var m *metrics.Metrics
	tr := tracing.Noop()
	var provs []*telemetry.Providers
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		for _, p := range provs {
			err = errors.Join(err, p.Shutdown(sctx))
			rr.dropped += p.Dropped()
		}
	}()
	logger := cfg.Logger
	switch mode {
	case ModeMetrics:
		prom, perr := metrics.NewPrometheus()
		if perr != nil {
			return rr, perr
		}
		if m, err = metrics.New(prom.MeterProvider()); err != nil {
			return rr, err
		}
	case ModeFull:
		tc := config.Default().Telemetry
		tc.Enabled = true
		tc.OTLP.Endpoint = "http://" + jaeger.OTLPGRPCEndpoint()
		tc.Sampling = config.Sampling{Strategy: config.StrategyParentBasedAlwaysOn, Ratio: 1}
		tc.Metrics.ExportInterval = config.Duration(time.Second)
		prom, perr := metrics.NewPrometheus()
		if perr != nil {
			return rr, perr
		}
		p, perr := telemetry.New(ctx, tc, "tasker-bench", telemetry.WithMetricReader(prom.Reader), telemetry.WithLogger(logger))
		if perr != nil {
			return rr, perr
		}
		provs = append(provs, p)
		tr = tracing.New(p.TracerProvider, p.Propagator)
		if m, err = metrics.New(p.MeterProvider); err != nil {
			return rr, err
		}
		// Lifecycle records at info, exported as OTLP logs (stderr output discarded).
		tc.Logs.Level = config.LevelInfo
		logger = telemetry.NewLogger(tc.Logs, discard{}, p)
	}
	tel := base.Telemetry{Tracer: tr, Metrics: m, Logger: logger}
	spec := engineSpec{topo: cfg.Topology, url: cfg.DatabaseURL, maxConns: cfg.MaxConns, namespace: tpl.ns, reg: reg,
		workerConcurrency: cfg.WorkerConcurrency, resultWorkers: cfg.ResultWorkers, tel: tel}
	pools, err := openPools(ctx, spec)
	if err != nil {
		return rr, err
	}
	var set *engineSet
	defer func() {
		if set != nil {
			err = errors.Join(err, set.stop())
		} else {
			for _, p := range pools {
				p.Close()
			}
		}
	}()
	rctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	switch cfg.Load {
	case LoadBurnDown:
		creator, err := orchestration.New(pool, orchestration.Config{Telemetry: tel})
		if err != nil {
			return rr, err
		}
		reqs, err := taskRequests(tpl.ns, tpl.name, tpl.version, cfg.Tasks, 0)
		if err != nil {
			return rr, err
		}
		created := time.Now()
		ids, err := createInBatches(rctx, creator, reqs, cfg.Batch)
		if err != nil {
			return rr, err
		}
		rr.createdPerSec = float64(len(ids)) / time.Since(created).Seconds()
		before, err := readCounters(rctx, pool)
		if err != nil {
			return rr, err
		}
		start := time.Now()
		if set, err = startEngines(rctx, spec, pool, pools); err != nil {
			return rr, err
		}
		if rr.errs, err = waitTerminal(rctx, pool, ids, cfg.Timeout); err != nil {
			return rr, err
		}
		rr.stepsPerSec = float64(cfg.Tasks*tpl.steps) / time.Since(start).Seconds()
		after, err := readCounters(rctx, pool)
		if err != nil {
			return rr, err
		}
		n := float64(cfg.Tasks * tpl.steps)
		rr.walPerStep, rr.xidsPerStep = float64(after.walBytes-before.walBytes)/n, float64(after.nextXID-before.nextXID)/n
		return rr, recordDBLatency(ctx, pool, h, ids, time.Time{}, time.Time{})
	case LoadContinuous:
		if set, err = startEngines(rctx, spec, pool, pools); err != nil {
			return rr, err
		}
		return continuousRound(rctx, cfg, pool, set.server, tpl, h)
	}
	if set, err = startEngines(rctx, spec, pool, pools); err != nil {
		return rr, err
	}
	ids := make([]uuid.UUID, cfg.Tasks)
	var next atomic.Int64
	var failed atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for range cfg.Submitters {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(cfg.Tasks) || rctx.Err() != nil {
					return
				}
				req, err := client.NewTaskRequest(tpl.ns, tpl.name, tpl.version, map[string]int{"even_number": 2 + 2*int(i%10)})
				if err == nil {
					var c *orchestration.Created
					if c, err = set.server.CreateTask(rctx, req); err == nil {
						ids[i] = c.TaskUUID
						continue
					}
				}
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	bad, err := waitTerminal(rctx, pool, ids, cfg.Timeout)
	if err != nil {
		return rr, err
	}
	rr.stepsPerSec = float64(cfg.Tasks*tpl.steps) / time.Since(start).Seconds()
	rr.errs = bad + int(failed.Load())
	return rr, recordDBLatency(ctx, pool, h, ids, time.Time{}, time.Time{})
}

// continuousRound keeps cfg.Backlog tasks open with batched creates and
// measures the steps of the tasks completed in a cfg.Duration window after
// cfg.Warmup, on the database's clock. Then it stops creating and lets the
// engine drain, so the next round starts empty.
func continuousRound(ctx context.Context, cfg ThroughputConfig, pool *pgxpool.Pool, server *orchestration.Service,
	tpl roundTemplate, h *hist) (rr roundResult, err error) {
	var ids []uuid.UUID
	produce := func() error {
		var open int
		// Open tasks are what tasks_unfinished_idx holds: counting them costs
		// little however many tasks the round created. (Earlier rounds drained.)
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM tasker.tasks WHERE NOT complete`).Scan(&open); err != nil {
			return fmt.Errorf("counting open tasks: %w", err)
		}
		if open >= cfg.Backlog {
			return nil
		}
		reqs, err := taskRequests(tpl.ns, tpl.name, tpl.version, min(cfg.Backlog-open, client.MaxTaskBatch), len(ids))
		if err != nil {
			return err
		}
		created, err := createInBatches(ctx, server, reqs, cfg.Batch)
		ids = append(ids, created...)
		return err
	}
	now := func() (time.Time, error) {
		var t time.Time
		err := pool.QueryRow(ctx, "SELECT clock_timestamp()").Scan(&t)
		return t, err
	}
	// The producer checks the backlog every 20 ms: often enough that a
	// batch is never drained before the next arrives.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var from, to time.Time
	warmEnd := time.Now().Add(cfg.Warmup)
	end := warmEnd.Add(cfg.Duration)
	for {
		if err := produce(); err != nil {
			return rr, err
		}
		if from.IsZero() && time.Now().After(warmEnd) {
			if from, err = now(); err != nil {
				return rr, err
			}
		}
		if time.Now().After(end) {
			if to, err = now(); err != nil {
				return rr, err
			}
			break
		}
		select {
		case <-ctx.Done():
			return rr, ctx.Err()
		case <-tick.C:
		}
	}
	window := newHist()
	if err := recordDBLatency(ctx, pool, window, nil, from, to); err != nil {
		return rr, err
	}
	_ = h.h.Merge(window.h)
	rr.stepsPerSec = float64(window.count()*int64(tpl.steps)) / to.Sub(from).Seconds()
	rr.errs, err = waitTerminal(ctx, pool, ids, cfg.Timeout)
	return rr, err
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
