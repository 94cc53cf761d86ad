package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taskerhq/tasker/client"
	"github.com/taskerhq/tasker/handler"
	"github.com/taskerhq/tasker/internal/base"
	"github.com/taskerhq/tasker/internal/db"
	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/orchestration"
	"github.com/taskerhq/tasker/internal/queue"
	"github.com/taskerhq/tasker/internal/rubyproc"
	"github.com/taskerhq/tasker/internal/state"
	"github.com/taskerhq/tasker/internal/templatestore"
	"github.com/taskerhq/tasker/internal/worker"
	"github.com/taskerhq/tasker/template"
)

// HandlerOverheadConfig configures HandlerOverhead. Zero values mean the
// documented default.
type HandlerOverheadConfig struct {
	// DatabaseURL names the server (required).
	DatabaseURL string
	// MaxConns is the in-process engine's pool size. Default 20.
	MaxConns int32
	// Runs is how many measured tasks each handler gets. Default 500.
	Runs int
	// Warmup tasks per handler run first and are not counted. Default 50.
	Warmup int
	// RepoRoot is the Tasker checkout holding workers/ruby (required).
	RepoRoot string
	// Library is libtasker.so (required).
	Library string
	// InFlight is how many tasks run at once (each of that many loops
	// alternates Go and Ruby tasks). Default 1: a closed loop, every step
	// starting on an idle machine; more keeps the workers busy.
	InFlight int
	// RubyConcurrency is the Ruby worker's thread count. Default: InFlight + 1.
	RubyConcurrency int
	// TaskTimeout bounds one task. Default 30s.
	TaskTimeout time.Duration
	Logger      *slog.Logger
	// RubyOutput receives the Ruby worker's output (default: discarded).
	RubyOutput io.Writer
	Progress   func(format string, args ...any)
}

func (c HandlerOverheadConfig) withDefaults() HandlerOverheadConfig {
	if c.MaxConns == 0 {
		c.MaxConns = 20
	}
	if c.Runs == 0 {
		c.Runs = 500
	}
	if c.Warmup == 0 {
		c.Warmup = 50
	}
	if c.InFlight == 0 {
		c.InFlight = 1
	}
	if c.RubyConcurrency == 0 {
		c.RubyConcurrency = c.InFlight + 1
	}
	if c.TaskTimeout == 0 {
		c.TaskTimeout = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Progress == nil {
		c.Progress = func(string, ...any) {}
	}
	return c
}

func (c HandlerOverheadConfig) validate() error {
	switch {
	case c.DatabaseURL == "":
		return errors.New("bench: a database URL is required")
	case c.RepoRoot == "" || c.Library == "":
		return errors.New("bench: the repository root and libtasker.so are required")
	case c.Runs < 1:
		return fmt.Errorf("bench: runs must be ≥ 1, got %d", c.Runs)
	case c.Warmup < 0:
		return fmt.Errorf("bench: warmup must be ≥ 0, got %d", c.Warmup)
	case c.InFlight < 1:
		return fmt.Errorf("bench: in-flight must be ≥ 1, got %d", c.InFlight)
	case c.RubyConcurrency < 1:
		return fmt.Errorf("bench: ruby concurrency must be ≥ 1, got %d", c.RubyConcurrency)
	}
	return nil
}

// HandlerStats is one handler runtime's figures. Milliseconds.
type HandlerStats struct {
	Runtime string `json:"runtime"`
	Runs    int    `json:"runs"`
	Errors  int    `json:"errors"`
	// Worker is the worker's own time per step, as it records it in the
	// step's result metadata (execution_time_ms): from picking up the claimed
	// step to having the handler's result, i.e. context hydration, spans,
	// logs, the hand-off to the handler and back, and the (no-op) handler.
	Worker Percentiles `json:"worker_ms"`
	// Task is create → complete as PostgreSQL recorded it (the whole
	// pipeline for a one-step task, for scale).
	Task Percentiles `json:"task_ms"`
}

// HandlerOverheadResult is the benchmark's outcome.
type HandlerOverheadResult struct {
	Benchmark string       `json:"benchmark"`
	Go        HandlerStats `json:"go"`
	Ruby      HandlerStats `json:"ruby"`
	// DeltaP50Us and DeltaP99Us are Ruby minus Go, worker time per step, µs.
	DeltaP50Us float64  `json:"ruby_delta_p50_us"`
	DeltaP99Us float64  `json:"ruby_delta_p99_us"`
	Warmup     int      `json:"warmup"`
	InFlight   int      `json:"in_flight"`
	Postgres   Postgres `json:"postgres"`
	Machine    Machine  `json:"machine"`
	Commit     string   `json:"commit"`
}

// Percentiles of one distribution, milliseconds.
type Percentiles struct {
	P50  float64 `json:"p50"`
	P95  float64 `json:"p95"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

func percentilesOf(h *hist) Percentiles {
	return Percentiles{P50: h.pct(50), P95: h.pct(95), P99: h.pct(99), Max: h.max(), Mean: h.mean()}
}

const (
	noopHandler   = "bench.noop"
	goNoopNS      = "bench_go_handler"
	rubyNoopNS    = "bench_ruby_handler"
	noopTaskName  = "noop"
	noopVersion   = "1.0.0"
	benchRubyFile = "workers/ruby/examples/bench_handlers.rb"
)

func noopTemplate(ns string) *template.Template {
	return &template.Template{Namespace: ns, Name: noopTaskName, Version: noopVersion,
		Description: "one no-op step (handler overhead benchmark)",
		Steps: []template.Step{{Name: "noop", Handler: noopHandler, Timeout: 30 * time.Second,
			Retry: template.Retry{MaxAttempts: 1, BackoffBase: time.Second, BackoffCap: time.Second}}}}
}

// HandlerOverhead runs the same one-step no-op task through a Go handler (a
// worker in this process) and a Ruby handler (a tasker-ruby-worker process
// on libtasker.so), InFlight tasks at once, alternating Go and Ruby so that
// both see the same machine load, and reports each one's worker time per step
// and the Ruby delta.
func HandlerOverhead(ctx context.Context, cfg HandlerOverheadConfig) (*HandlerOverheadResult, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	pool, err := db.NewPool(ctx, cfg.DatabaseURL, cfg.MaxConns)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	if err := db.Migrate(ctx, pool); err != nil {
		return nil, err
	}
	tpls := []*template.Template{noopTemplate(goNoopNS), noopTemplate(rubyNoopNS)}
	if err := templatestore.RegisterAll(ctx, pool, queue.NewClient(nil), tpls); err != nil {
		return nil, err
	}
	res := &HandlerOverheadResult{Benchmark: "handler_overhead", Warmup: cfg.Warmup, InFlight: cfg.InFlight, Machine: ThisMachine(), Commit: Commit()}
	if res.Postgres, err = ReadPostgres(ctx, pool); err != nil {
		return nil, err
	}
	reg := handler.NewRegistry()
	if err := reg.RegisterFunc(noopHandler, func(context.Context, *handler.StepContext) (any, error) { return nil, nil }); err != nil {
		return nil, err
	}
	e, err := engine.Start(ctx, engine.Config{Pool: pool, Telemetry: base.Telemetry{Logger: cfg.Logger},
		Orchestration: &orchestration.Config{},
		Worker:        &worker.Config{Namespaces: []string{goNoopNS}, Dispatcher: worker.RegistryDispatcher{Registry: reg}}})
	if err != nil {
		return nil, err
	}
	defer e.Stop()
	cfg.Progress("starting the Ruby worker (%s)…", cfg.Library)
	rw, err := rubyproc.Start(ctx, rubyproc.Config{Root: cfg.RepoRoot, Library: cfg.Library, DatabaseURL: cfg.DatabaseURL,
		Namespaces: []string{rubyNoopNS}, Requires: []string{benchRubyFile}, Concurrency: cfg.RubyConcurrency,
		Env: []string{"TASKER_TELEMETRY_ENABLED=false", "TASKER_LOG_LEVEL=warn"}, Output: cfg.RubyOutput})
	if err != nil {
		return nil, err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = rw.Stop(sctx)
	}()

	cfg.Progress("warmup: %d tasks per handler", cfg.Warmup)
	for range cfg.Warmup {
		for _, ns := range []string{goNoopNS, rubyNoopNS} {
			if _, err := runNoop(ctx, e, pool, ns, cfg.TaskTimeout); err != nil {
				return nil, fmt.Errorf("warmup (%s): %w", ns, err)
			}
		}
	}
	cfg.Progress("measuring: %d tasks per handler, Go and Ruby alternating, %d in flight", cfg.Runs, cfg.InFlight)
	var (
		mu   sync.Mutex
		ids  = map[string][]uuid.UUID{}
		errs = map[string]int{}
		wg   sync.WaitGroup
	)
	for loop := range cfg.InFlight {
		// Loop i runs its share of the runs; together they run cfg.Runs.
		n := cfg.Runs / cfg.InFlight
		if loop < cfg.Runs%cfg.InFlight {
			n++
		}
		wg.Go(func() {
			for range n {
				for _, ns := range []string{goNoopNS, rubyNoopNS} {
					id, err := runNoop(ctx, e, pool, ns, cfg.TaskTimeout)
					mu.Lock()
					if err != nil {
						errs[ns]++
					} else {
						ids[ns] = append(ids[ns], id)
					}
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if res.Go, err = handlerStats(ctx, pool, "go", ids[goNoopNS], errs[goNoopNS]); err != nil {
		return nil, err
	}
	if res.Ruby, err = handlerStats(ctx, pool, "ruby", ids[rubyNoopNS], errs[rubyNoopNS]); err != nil {
		return nil, err
	}
	res.DeltaP50Us = round3((res.Ruby.Worker.P50 - res.Go.Worker.P50) * 1000)
	res.DeltaP99Us = round3((res.Ruby.Worker.P99 - res.Go.Worker.P99) * 1000)
	return res, nil
}

// runNoop creates one no-op task and waits until it is terminal; an error
// for any end but complete.
func runNoop(ctx context.Context, e *engine.Engine, pool *pgxpool.Pool, ns string, timeout time.Duration) (uuid.UUID, error) {
	req, err := client.NewTaskRequest(ns, noopTaskName, noopVersion, map[string]any{})
	if err != nil {
		return uuid.Nil, err
	}
	created, err := e.Orchestrator.CreateTask(ctx, req)
	if err != nil {
		return uuid.Nil, err
	}
	deadline := time.Now().Add(timeout)
	for {
		var st string
		if err := pool.QueryRow(ctx, taskStateSQL, created.TaskUUID).Scan(&st); err != nil {
			return uuid.Nil, fmt.Errorf("reading task state: %w", err)
		}
		if s := state.Task(st); s.Terminal() {
			if s != state.TaskComplete {
				return uuid.Nil, fmt.Errorf("task %s ended %s", created.TaskUUID, st)
			}
			return created.TaskUUID, nil
		}
		if time.Now().After(deadline) {
			return uuid.Nil, fmt.Errorf("task %s not terminal after %s", created.TaskUUID, timeout)
		}
		// The poll only decides when to start the next task; the figures
		// come from what the worker and PostgreSQL recorded.
		time.Sleep(500 * time.Microsecond)
	}
}

func handlerStats(ctx context.Context, pool *pgxpool.Pool, runtime string, ids []uuid.UUID, errCount int) (HandlerStats, error) {
	s := HandlerStats{Runtime: runtime, Runs: len(ids) + errCount, Errors: errCount}
	rows, err := pool.Query(ctx, `
		SELECT (ws.results -> 'metadata' ->> 'execution_time_ms')::float8,
		       extract(epoch FROM t.completed_at - t.created_at)::float8
		FROM tasker.workflow_steps ws JOIN tasker.tasks t USING (task_uuid)
		WHERE ws.task_uuid = ANY($1)`, ids)
	if err != nil {
		return s, fmt.Errorf("reading step timings: %w", err)
	}
	defer rows.Close()
	wh, th := newHist(), newHist()
	for rows.Next() {
		var execMs, taskS float64
		if err := rows.Scan(&execMs, &taskS); err != nil {
			return s, fmt.Errorf("reading step timings: %w", err)
		}
		wh.record(time.Duration(execMs * float64(time.Millisecond)))
		th.record(time.Duration(taskS * float64(time.Second)))
	}
	if err := rows.Err(); err != nil {
		return s, fmt.Errorf("reading step timings: %w", err)
	}
	s.Worker, s.Task = percentilesOf(wh), percentilesOf(th)
	return s, nil
}
