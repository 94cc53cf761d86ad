package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taskerhq/tasker/client"
	"github.com/taskerhq/tasker/internal/api"
	"github.com/taskerhq/tasker/internal/base"
	"github.com/taskerhq/tasker/internal/db"
	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/orchestration"
	"github.com/taskerhq/tasker/internal/queue"
	"github.com/taskerhq/tasker/internal/templatestore"
	"github.com/taskerhq/tasker/internal/worker"
)

// CriticalPathConfig configures CriticalPaths. Zero values mean the documented default.
type CriticalPathConfig struct {
	DatabaseURL string
	// Samples per path. Default 200.
	Samples int
	// Warmup samples per path are taken first and not counted. Default 10.
	Warmup int
	// Timeout bounds one sample. Default 30s.
	Timeout  time.Duration
	Logger   *slog.Logger
	Progress func(ProgressReport)
}

func (c CriticalPathConfig) withDefaults() CriticalPathConfig {
	if c.Samples == 0 {
		c.Samples = 200
	}
	if c.Warmup == 0 {
		c.Warmup = 10
	}
	if c.Timeout == 0 {
		c.Timeout = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Progress == nil {
		c.Progress = func(ProgressReport) {}
	}
	return c
}

func (c CriticalPathConfig) validate() error {
	switch {
	case c.DatabaseURL == "":
		return errors.New("critical paths: a database URL is required")
	case c.Samples < 1:
		return fmt.Errorf("critical paths: samples must be ≥ 1, got %d", c.Samples)
	case c.Warmup < 0:
		return fmt.Errorf("critical paths: warmup must be ≥ 0, got %d", c.Warmup)
	}
	return nil
}

// Critical path IDs.
const (
	PathAPICreate      = "api_create"
	PathDiscoverNotify = "discover_publish"
	PathWorkerCycle    = "worker_claim_submit"
	PathNotify         = "notify_listener"
	PathHandler        = "handler_time"
)

// CriticalPathResult holds the latency of each critical path.
type CriticalPathResult struct {
	Benchmark string     `json:"benchmark"`
	Samples   int        `json:"samples"`
	Paths     []PathStat `json:"paths"`
	Postgres  Postgres   `json:"postgres"`
	Machine   Machine    `json:"machine"`
	Commit    string     `json:"commit"`
	StartedAt time.Time  `json:"started_at"`
	DurationS float64    `json:"duration_s"`
}

// PathStat is one path's latency distribution (milliseconds) and targets.
type PathStat struct {
	ID          string  `json:"id"`
	Name        string  `json:"name"`
	Description string  `json:"description"`
	Samples     int64   `json:"samples"`
	P50         float64 `json:"p50_ms"`
	P95         float64 `json:"p95_ms"`
	P99         float64 `json:"p99_ms"`
	Max         float64 `json:"max_ms"`
	Mean        float64 `json:"mean_ms"`
	// Targets are the limits the path is held to.
	Targets []PathTarget `json:"targets,omitempty"`
	// CDF is the distribution: (latency ms, fraction of samples at or below it).
	CDF [][2]float64 `json:"cdf"`
}

// PathTarget is a percentile limit and whether it was met.
type PathTarget struct {
	Label      string  `json:"label"`
	Percentile float64 `json:"percentile"`
	LimitMs    float64 `json:"limit_ms"`
	Met        bool    `json:"met"`
}

func pathStat(id, name, desc string, h *hist, targets ...PathTarget) PathStat {
	p := PathStat{ID: id, Name: name, Description: desc, Samples: h.count(), P50: h.pct(50), P95: h.pct(95), P99: h.pct(99),
		Max: h.max(), Mean: h.mean()}
	for _, t := range targets {
		t.Met = h.count() > 0 && h.pct(t.Percentile) <= t.LimitMs
		p.Targets = append(p.Targets, t)
	}
	if h.count() > 0 {
		for q := 0.0; q <= 100; q += 2.5 {
			p.CDF = append(p.CDF, [2]float64{h.pct(max(q, 0.1)), q / 100})
		}
	}
	return p
}

// CriticalPaths measures the engine's critical paths, one sample at a time:
//
//   - api_create: POST /v1/tasks over HTTP (loopback, the real API handler
//     on the engine's backend) until the client has the task UUID.
//   - discover_publish: a 10-step fan-out's root result is submitted (and
//     its NOTIFY sent) → orchestration processes it, discovers the nine ready
//     steps and publishes them → the ninth NOTIFY reaches a listener.
//   - worker_claim_submit: a worker's claim to its result submission
//     (transition timestamps inside the two transactions) less the
//     handler's own time: the framework's part of running a step.
//   - notify_listener: pg_notify on one connection → the engine's listener
//     (queue.Listener) delivering the notification on another.
//   - handler_time: the handler's own time in the same steps, for comparison.
func CriticalPaths(ctx context.Context, cfg CriticalPathConfig) (*CriticalPathResult, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	started := time.Now()
	pool, reg, pg, err := prepare(ctx, cfg.DatabaseURL, 20)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	if err := registerFanOut(ctx, pool); err != nil {
		return nil, err
	}
	res := &CriticalPathResult{Benchmark: "critical_paths", Samples: cfg.Samples, Postgres: pg, Machine: ThisMachine(),
		Commit: Commit(), StartedAt: started.UTC()}

	// The engine works every namespace but the fan-out's: that path plays
	// the worker itself.
	submitter, err := orchestration.New(pool, orchestration.Config{Telemetry: base.Telemetry{Logger: cfg.Logger}})
	if err != nil {
		return nil, err
	}
	e, err := engine.Start(ctx, engine.Config{Pool: pool, Telemetry: base.Telemetry{Logger: cfg.Logger}, Orchestration: &orchestration.Config{},
		Worker: &worker.Config{Namespaces: []string{"single_workflow"}, Dispatcher: worker.RegistryDispatcher{Registry: reg},
			Submitter: submitter}})
	if err != nil {
		return nil, err
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = e.Stop()
		}
	}()

	n := cfg.Warmup + cfg.Samples
	cfg.Progress(ProgressReport{Phase: "critical path: api → task uuid", Total: n})
	apiH, created, err := measureAPICreate(ctx, cfg, e)
	if err != nil {
		return nil, fmt.Errorf("api → task uuid: %w", err)
	}
	res.Paths = append(res.Paths, pathStat(PathAPICreate, "API → task UUID over HTTP",
		"POST /v1/tasks (single-step template) on loopback HTTP until the client holds the UUID; the task is created and its step enqueued in that request",
		apiH, PathTarget{"target", 99, 50, false}, PathTarget{"goal", 99, 5, false}))

	cfg.Progress(ProgressReport{Phase: "critical path: discovery → publish", Total: n})
	discH, err := measureDiscoverPublish(ctx, cfg, pool)
	if err != nil {
		return nil, fmt.Errorf("discovery → publish: %w", err)
	}
	res.Paths = append(res.Paths, pathStat(PathDiscoverNotify, "ready-step discovery → queue publish (10-step fan-out)",
		"root result submitted and notified → orchestration applies it, finds the 9 ready steps, enqueues them and notifies → the 9th NOTIFY received",
		discH, PathTarget{"target", 99, 100, false}))

	// The api_create tasks ran on the engine's worker meanwhile.
	cfg.Progress(ProgressReport{Phase: "critical path: worker claim → submit", Total: 1})
	if err := waitFinal(ctx, pool, created, cfg.Timeout); err != nil {
		return nil, err
	}
	stopped = true
	if err := e.Stop(); err != nil {
		return nil, fmt.Errorf("stopping the engine: %w", err)
	}
	frameH, handlerH, err := workerCycle(ctx, pool, created[cfg.Warmup:])
	if err != nil {
		return nil, err
	}
	res.Paths = append(res.Paths, pathStat(PathWorkerCycle, "worker claim → handler → result submit, excluding the handler",
		"claim transition → result-submitted transition (clock_timestamp() inside each transaction) less the handler's own execution time",
		frameH, PathTarget{"target", 99, 200, false}))

	cfg.Progress(ProgressReport{Phase: "critical path: pg_notify → listener", Total: n})
	notifyH, err := measureListener(ctx, cfg, pool)
	if err != nil {
		return nil, fmt.Errorf("pg_notify → listener: %w", err)
	}
	res.Paths = append(res.Paths, pathStat(PathNotify, "pg_notify → engine listener",
		"SELECT pg_notify on one connection → queue.Listener delivers it on the subscription channel",
		notifyH, PathTarget{"target", 95, 10, false}, PathTarget{"goal", 95, 1, false}))
	res.Paths = append(res.Paths, pathStat(PathHandler, "handler time (Go, pure)",
		"the handler's own execution time in the worker_claim_submit steps (the framework's share is the row above)", handlerH))
	res.DurationS = round3(time.Since(started).Seconds())
	return res, nil
}

func measureAPICreate(ctx context.Context, cfg CriticalPathConfig, e *engine.Engine) (*hist, []uuid.UUID, error) {
	h, err := api.NewHandler(api.Config{Backend: e.Backend(), Logger: cfg.Logger})
	if err != nil {
		return nil, nil, err
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	c := client.New(srv.URL)
	out := newHist()
	var ids []uuid.UUID
	for i := range cfg.Warmup + cfg.Samples {
		req, err := client.NewTaskRequest("single_workflow", "single_step", "", map[string]any{"even_number": 6})
		if err != nil {
			return nil, nil, err
		}
		rctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
		t0 := time.Now()
		task, err := c.CreateTask(rctx, req)
		d := time.Since(t0)
		cancel()
		if err != nil {
			return nil, nil, err
		}
		ids = append(ids, task.TaskUUID)
		if i >= cfg.Warmup {
			out.record(d)
		}
		cfg.Progress(ProgressReport{Phase: "critical path: api → task uuid", Done: i + 1, Total: cfg.Warmup + cfg.Samples})
	}
	return out, ids, nil
}

// measureDiscoverPublish plays the worker of the fan-out namespace: it
// claims each task's root, submits its result, and times until the nine
// steps the orchestrator then enqueues have all been announced.
func measureDiscoverPublish(ctx context.Context, cfg CriticalPathConfig, pool *pgxpool.Pool) (*hist, error) {
	const ns, name = fanOutNamespace, fanOutName
	wq, _ := queue.WorkerQueue(ns)
	conn, err := pgx.ConnectConfig(ctx, pool.Config().ConnConfig.Copy())
	if err != nil {
		return nil, fmt.Errorf("connecting the listener: %w", err)
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{wq}.Sanitize()); err != nil {
		return nil, fmt.Errorf("listening on %s: %w", wq, err)
	}
	orch, err := orchestration.New(pool, orchestration.Config{Telemetry: base.Telemetry{Logger: cfg.Logger}})
	if err != nil {
		return nil, err
	}
	funcs := db.NewFuncs(nil)
	qc := queue.NewClient(nil)
	out := newHist()
	// next waits for the next notification on the worker queue.
	next := func(deadline time.Time) (int64, error) {
		wctx, cancel := context.WithDeadline(ctx, deadline)
		defer cancel()
		note, err := conn.WaitForNotification(wctx)
		if err != nil {
			return 0, fmt.Errorf("waiting for a step notification: %w", err)
		}
		n, err := queue.ParseNotification(note.Payload)
		return n.ID, err
	}
	for i := range cfg.Warmup + cfg.Samples {
		deadline := time.Now().Add(cfg.Timeout)
		req, err := client.NewTaskRequest(ns, name, "", map[string]any{"even_number": 6})
		if err != nil {
			return nil, err
		}
		if _, err := orch.CreateTask(ctx, req); err != nil {
			return nil, err
		}
		rootMsg, err := next(deadline)
		if err != nil {
			return nil, err
		}
		claims, err := funcs.ClaimStep(ctx, pool, wq, rootMsg, 30*time.Second, benchWorker)
		if err != nil {
			return nil, err
		}
		if len(claims) != 1 || claims[0].Outcome != db.ClaimClaimed {
			return nil, fmt.Errorf("claiming the root step: %+v", claims)
		}
		cl := claims[0]
		result := []byte(`{"step_uuid":"` + cl.StepUUID.String() + `","success":true,"status":"completed","result":"1296","metadata":{"execution_time_ms":0.01,"attempt":` +
			strconv.Itoa(cl.Attempt) + `}}`)
		t0 := time.Now()
		msgID, ok, err := funcs.SubmitStepResult(ctx, pool, db.StepResultSubmission{StepUUID: cl.StepUUID, Attempt: cl.Attempt,
			Success: true, Results: result, WorkerID: benchWorker, Queue: wq, MsgID: cl.MsgID, ResultQueue: queue.StepResults,
			DeferNotify: true})
		if err != nil || !ok {
			return nil, fmt.Errorf("submitting the root result: ok %v: %w", ok, err)
		}
		// As the worker does: notify after the commit.
		if err := qc.Notify(ctx, pool, queue.StepResults, []int64{msgID}, nil); err != nil {
			return nil, err
		}
		for range 9 {
			if _, err := next(deadline); err != nil {
				return nil, err
			}
		}
		if i >= cfg.Warmup {
			out.record(time.Since(t0))
		}
		cfg.Progress(ProgressReport{Phase: "critical path: discovery → publish", Done: i + 1, Total: cfg.Warmup + cfg.Samples})
	}
	return out, nil
}

func registerFanOut(ctx context.Context, pool *pgxpool.Pool) error {
	tpl := fanOutTemplate()
	if err := tpl.Validate(nil); err != nil {
		return fmt.Errorf("fan-out template: %w", err)
	}
	return templatestore.Register(ctx, pool, queue.NewClient(nil), tpl)
}

// waitFinal waits until every task in ids is in a final state.
func waitFinal(ctx context.Context, pool *pgxpool.Pool, ids []uuid.UUID, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var open int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM tasker.tasks WHERE task_uuid = ANY($1)
			AND state NOT IN ('complete', 'error', 'cancelled', 'resolved_manually')`, ids).Scan(&open); err != nil {
			return fmt.Errorf("reading task states: %w", err)
		}
		if open == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d tasks not finished after %s", open, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// workerCycle reads, for the steps of ids, claim → submit less handler time
// and the handler time itself.
func workerCycle(ctx context.Context, q db.Querier, ids []uuid.UUID) (framework, handlerTime *hist, err error) {
	rows, err := q.Query(ctx, `SELECT (extract(epoch FROM s.created_at - c.created_at) * 1000000)::bigint,
			(coalesce((s.metadata ->> 'execution_time_ms')::float8, 0) * 1000)::bigint
		FROM tasker.workflow_step_transitions s
		JOIN LATERAL (SELECT c.created_at FROM tasker.workflow_step_transitions c
			WHERE c.task_uuid = s.task_uuid AND c.workflow_step_uuid = s.workflow_step_uuid
				AND c.to_state = 'in_progress' AND c.attempt = s.attempt
			ORDER BY c.workflow_step_transition_id DESC LIMIT 1) c ON true
		WHERE s.task_uuid = ANY($1) AND s.to_state IN ('enqueued_for_orchestration', 'enqueued_as_error_for_orchestration')`, ids)
	if err != nil {
		return nil, nil, fmt.Errorf("reading step history: %w", err)
	}
	framework, handlerTime = newHist(), newHist()
	for rows.Next() {
		var totalUs, execUs int64
		if err := rows.Scan(&totalUs, &execUs); err != nil {
			rows.Close()
			return nil, nil, fmt.Errorf("reading step history: %w", err)
		}
		framework.record(time.Duration(totalUs-execUs) * time.Microsecond)
		handlerTime.record(time.Duration(execUs) * time.Microsecond)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("reading step history: %w", err)
	}
	if framework.count() == 0 {
		return nil, nil, errors.New("no step results in the history of the measured tasks")
	}
	return framework, handlerTime, nil
}

// measureListener times pg_notify → delivery by the engine's listener.
func measureListener(ctx context.Context, cfg CriticalPathConfig, pool *pgxpool.Pool) (*hist, error) {
	connCfg := pool.Config().ConnConfig
	l := queue.NewListener(func(ctx context.Context) (*pgx.Conn, error) { return pgx.ConnectConfig(ctx, connCfg.Copy()) }, cfg.Logger)
	channel := "bench_notify_" + randomSuffix()
	sub, err := l.Subscribe(channel, 16)
	if err != nil {
		return nil, err
	}
	lctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- l.Run(lctx) }()
	defer func() {
		cancel()
		<-done
	}()
	select {
	case <-l.Ready():
	case err := <-done:
		return nil, fmt.Errorf("listener stopped: %w", err)
	case <-time.After(cfg.Timeout):
		return nil, errors.New("listener not ready")
	}
	send, err := pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer send.Release()
	out := newHist()
	for i := range cfg.Warmup + cfg.Samples {
		id := int64(i + 1)
		t0 := time.Now()
		if _, err := send.Exec(ctx, "SELECT pg_notify($1, $2)", channel, strconv.FormatInt(id, 10)); err != nil {
			return nil, fmt.Errorf("notifying: %w", err)
		}
		timeout := time.After(cfg.Timeout)
	wait:
		for {
			select {
			case n := <-sub.C:
				if n.ID == id {
					break wait
				}
			case <-timeout:
				return nil, fmt.Errorf("notification %d not received", id)
			}
		}
		if i >= cfg.Warmup {
			out.record(time.Since(t0))
		}
	}
	cfg.Progress(ProgressReport{Phase: "critical path: pg_notify → listener", Done: cfg.Warmup + cfg.Samples, Total: cfg.Warmup + cfg.Samples})
	return out, nil
}
