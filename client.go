package tasker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel"

	"github.com/taskerhq/tasker/client"
	"github.com/taskerhq/tasker/internal/api"
	"github.com/taskerhq/tasker/internal/base"
	"github.com/taskerhq/tasker/internal/db"
	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/metrics"
	"github.com/taskerhq/tasker/internal/orchestration"
	"github.com/taskerhq/tasker/internal/queue"
	"github.com/taskerhq/tasker/internal/taskreq"
	"github.com/taskerhq/tasker/internal/templatestore"
	"github.com/taskerhq/tasker/internal/tracing"
	"github.com/taskerhq/tasker/internal/worker"
	"github.com/taskerhq/tasker/template"
)

// Migrate applies Tasker's schema migrations (schema "tasker") that the
// database does not have yet. It is safe to call from several processes at
// once.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error { return db.Migrate(ctx, pool) }

// ErrNotFound is returned by GetTask for a task that does not exist.
var ErrNotFound = api.ErrNotFound

// ErrTemplateConflict is returned (wrapped) by Start and RegisterTemplates for
// a template version registered before with different content.
var ErrTemplateConflict = templatestore.ErrConflict

// ErrMissingHandlers is returned (wrapped, naming them) by Start when a
// template the worker serves names a handler Config.Handlers lacks.
var ErrMissingHandlers = templatestore.ErrMissingHandlers

// CreatedTask identifies a task CreateTask created.
type CreatedTask struct {
	TaskUUID      uuid.UUID
	CorrelationID uuid.UUID
	// State is the task's state when its creating transaction ended.
	State string
	// Existing reports an idempotent repeat: the request's IdempotencyKey
	// had created this task before, and nothing was written now.
	Existing bool
}

// Client is Tasker embedded in a program: task creation and reads always,
// a worker and an orchestrator when configured.
type Client struct {
	cfg     Config
	pool    *pgxpool.Pool
	log     *slog.Logger
	tracer  *tracing.Tracer
	metrics *metrics.Metrics
	init    *orchestration.Service
	store   *api.Store

	mu     sync.Mutex
	engine *engine.Engine
}

// NewClient returns a client over pool; Start runs what cfg configures. The
// database must be migrated (Migrate).
func NewClient(pool *pgxpool.Pool, cfg *Config) (*Client, error) {
	if pool == nil {
		return nil, errors.New("tasker: pool is required")
	}
	if cfg == nil {
		cfg = &Config{}
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	c := &Client{cfg: *cfg, pool: pool, log: cfg.Logger}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	tp, mp, prop := cfg.TracerProvider, cfg.MeterProvider, cfg.Propagator
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	if prop == nil {
		prop = otel.GetTextMapPropagator()
	}
	c.tracer = tracing.New(tp, prop)
	m, err := metrics.New(mp)
	if err != nil {
		return nil, fmt.Errorf("tasker: creating metrics: %w", err)
	}
	c.metrics = m
	init, err := orchestration.New(pool, orchestration.Config{Telemetry: base.Telemetry{Logger: c.log, Tracer: c.tracer, Metrics: m}})
	if err != nil {
		return nil, fmt.Errorf("tasker: %w", err)
	}
	c.init = init
	c.store = api.NewStore(pool, init, init.Funcs())
	return c, nil
}

// RegisterTemplates registers templates in the database, so tasks can be
// created from them by any process. Identical content is a no-op.
func (c *Client) RegisterTemplates(ctx context.Context, tpls ...*template.Template) error {
	for _, t := range tpls {
		if err := t.Validate(nil); err != nil {
			return err
		}
	}
	return templatestore.RegisterAll(ctx, c.pool, queue.NewClient(nil), tpls)
}

// Start registers Config.Templates and starts the worker and orchestrator
// configured. A worker refuses to start when a template of its namespaces
// names a handler it does not have. Start returns once they are listening.
func (c *Client) Start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.engine != nil {
		return errors.New("tasker: client already started")
	}
	// Handlers are checked before anything is written, so a worker missing
	// one leaves the database as it was.
	if c.cfg.Worker != nil {
		if err := templatestore.CheckHandlers(ctx, c.pool, c.cfg.namespaces(), c.cfg.Templates, c.cfg.Handlers.Has); err != nil {
			return fmt.Errorf("tasker: starting worker: %w", err)
		}
	}
	if err := c.RegisterTemplates(ctx, c.cfg.Templates...); err != nil {
		return fmt.Errorf("tasker: starting: %w", err)
	}
	ecfg := engine.Config{Pool: c.pool, Telemetry: base.Telemetry{Logger: c.log, Tracer: c.tracer, Metrics: c.metrics}}
	if o := c.cfg.Orchestration; o != nil {
		ecfg.Orchestration = &orchestration.Config{ResultWorkers: o.ResultWorkers, ReadinessInterval: o.ReadinessInterval,
			FallbackInterval: o.FallbackInterval, Retention: o.Retention, PruneInterval: o.PruneInterval, PruneBatch: o.PruneBatch,
			ScheduleInterval: o.ScheduleInterval}
	}
	if w := c.cfg.Worker; w != nil {
		ecfg.Worker = &worker.Config{Namespaces: c.cfg.namespaces(), ID: w.ID, Concurrency: w.Concurrency, Lease: w.Lease,
			PollInterval: w.PollInterval, ShutdownGrace: w.ShutdownGrace, OverdueHandlerWarning: w.OverdueHandlerWarning,
			Dispatcher: worker.RegistryDispatcher{Registry: c.cfg.Handlers}, Submitter: c.init}
	}
	if ecfg.Orchestration == nil && ecfg.Worker == nil {
		return nil
	}
	e, err := engine.Start(ctx, ecfg)
	if err != nil {
		return fmt.Errorf("tasker: starting: %w", err)
	}
	c.engine = e
	// Waiters learn of finished tasks from the engine's listener.
	c.store.WithSignals(e.TaskSignals())
	return nil
}

// Stop stops taking new work and waits for running steps to finish, for at
// most WorkerConfig.ShutdownGrace or until ctx ends; steps still running then
// are left to lease expiry and run again elsewhere.
func (c *Client) Stop(ctx context.Context) error {
	c.mu.Lock()
	e := c.engine
	c.engine = nil
	c.mu.Unlock()
	if e == nil {
		return nil
	}
	return e.StopContext(ctx)
}

// CreateTask creates a task from a registered template and enqueues its
// first steps. A request that cannot succeed (unknown template, invalid
// context) fails with a *client.APIError naming the field and writes nothing.
func (c *Client) CreateTask(ctx context.Context, req client.TaskRequest) (*CreatedTask, error) {
	created, err := c.init.CreateTask(ctx, req)
	if err != nil {
		return nil, publicError(err)
	}
	return &CreatedTask{TaskUUID: created.TaskUUID, CorrelationID: created.CorrelationID, State: string(created.State),
		Existing: created.Existing}, nil
}

// CreateTasks creates the tasks of reqs (at most client.MaxTaskBatch) in one
// transaction, with one multi-row statement per table and one wake-up of the
// workers for the whole batch: all of them, or none when any request can
// never succeed. Then the error is a *client.APIError (code invalid_items)
// whose Items name every refused request by index. The result is in request
// order; an idempotency key that created a task before answers with that
// task (Existing) as CreateTask does.
func (c *Client) CreateTasks(ctx context.Context, reqs []client.TaskRequest) ([]CreatedTask, error) {
	created, err := c.init.CreateTasks(ctx, reqs)
	if err != nil {
		return nil, publicError(err)
	}
	out := make([]CreatedTask, len(created))
	for i, c := range created {
		out[i] = CreatedTask{TaskUUID: c.TaskUUID, CorrelationID: c.CorrelationID, State: string(c.State), Existing: c.Existing}
	}
	return out, nil
}

// CreateTaskTx is CreateTask inside the caller's transaction: the task exists
// if and only if tx commits, so it cannot be lost or created for a business
// change that rolled back. Workers are woken when tx commits. A failure
// leaves tx usable (it is rolled back to a savepoint).
func (c *Client) CreateTaskTx(ctx context.Context, tx pgx.Tx, req client.TaskRequest) (*CreatedTask, error) {
	created, err := c.init.CreateTaskTx(ctx, tx, req)
	if err != nil {
		return nil, publicError(err)
	}
	return &CreatedTask{TaskUUID: created.TaskUUID, CorrelationID: created.CorrelationID, State: string(created.State),
		Existing: created.Existing}, nil
}

// GetTask returns a task with its step counts, result and error, as the REST
// API shows it; ErrNotFound when it does not exist.
func (c *Client) GetTask(ctx context.Context, taskUUID uuid.UUID) (*client.Task, error) {
	return c.store.GetTask(ctx, taskUUID)
}

// WaitTask waits until the task is terminal and returns it. Once Start has
// run, it is woken by the orchestrators' task-terminal notifications;
// otherwise (or should one be lost) it looks again every second. When ctx
// ends first it returns the last state seen with an error wrapping ctx.Err().
func (c *Client) WaitTask(ctx context.Context, taskUUID uuid.UUID) (*client.Task, error) {
	signal, stop := c.store.WatchTask(taskUUID)
	defer stop()
	recheck := time.NewTicker(time.Second)
	defer recheck.Stop()
	var last *client.Task
	for {
		t, err := c.store.GetTask(ctx, taskUUID)
		switch {
		case err == nil:
			last = t
			if t.Terminal() {
				return t, nil
			}
		case ctx.Err() == nil:
			return last, fmt.Errorf("waiting for task %s: %w", taskUUID, err)
		}
		select {
		case <-ctx.Done():
			return last, fmt.Errorf("waiting for task %s: %w", taskUUID, ctx.Err())
		case <-signal:
		case <-recheck.C:
		}
	}
}

// ListSteps returns a task's steps with their state histories.
func (c *Client) ListSteps(ctx context.Context, taskUUID uuid.UUID) ([]client.Step, error) {
	return c.store.ListSteps(ctx, taskUUID)
}

// ListTasks returns one page of the tasks f selects, newest first, as GET
// /v1/tasks does; pass the list's NextCursor as f.Cursor for the next page.
// A bad filter fails with a *client.APIError naming the field.
func (c *Client) ListTasks(ctx context.Context, f client.TaskFilter) (*client.TaskList, error) {
	list, err := c.store.ListTasks(ctx, f)
	if err != nil {
		return nil, publicError(err)
	}
	return list, nil
}

// CancelTask cancels a task that has not finished, as POST
// /v1/tasks/{uuid}/cancel does, and returns it.
func (c *Client) CancelTask(ctx context.Context, taskUUID uuid.UUID, req client.CancelRequest) (*client.Task, error) {
	t, err := c.store.CancelTask(ctx, taskUUID, req)
	return t, publicError(err)
}

// RetryTask runs a task in error again from its failed steps, as POST
// /v1/tasks/{uuid}/retry does, and returns it.
func (c *Client) RetryTask(ctx context.Context, taskUUID uuid.UUID, req client.RetryRequest) (*client.Task, error) {
	t, err := c.store.RetryTask(ctx, taskUUID, req)
	return t, publicError(err)
}

// ResolveStep marks a failed step resolved manually with a result, as POST
// /v1/tasks/{uuid}/steps/{step}/resolve does, and returns the task.
func (c *Client) ResolveStep(ctx context.Context, taskUUID uuid.UUID, step string, req client.ResolveRequest) (*client.Task, error) {
	t, err := c.store.ResolveStep(ctx, taskUUID, step, req)
	return t, publicError(err)
}

// CreateSchedule creates a cron schedule, as POST /v1/schedules does: each
// time req.Cron comes due in req.TimeZone, a running orchestrator (any
// process, exactly once) creates req.Task.
func (c *Client) CreateSchedule(ctx context.Context, req client.ScheduleRequest) (*client.Schedule, error) {
	sc, err := c.init.CreateSchedule(ctx, req)
	return sc, publicError(err)
}

// ListSchedules returns every schedule, by name.
func (c *Client) ListSchedules(ctx context.Context) ([]client.Schedule, error) {
	return c.init.ListSchedules(ctx)
}

// DeleteSchedule deletes the schedule named name; ErrNotFound when there is none.
func (c *Client) DeleteSchedule(ctx context.Context, name string) error {
	return c.init.DeleteSchedule(ctx, name)
}

// APIHandler returns the REST API (/v1/tasks, /v1/templates, /health) over
// this client's database, to mount on the program's own HTTP server. It is
// only a handler: that server sets its own timeouts (ReadHeaderTimeout,
// ReadTimeout, WriteTimeout, IdleTimeout, MaxHeaderBytes — a server without
// them lets a client trickling a body hold a connection forever), TLS and
// authentication, as `tasker server` does from its [api] configuration.
func (c *Client) APIHandler() (http.Handler, error) {
	return api.NewHandler(api.Config{Backend: c.store, Logger: c.log})
}

// publicError gives a request that can never succeed the type the REST client
// reports it with, so a program handles both the same way.
func publicError(err error) error {
	if err == nil {
		return nil
	}
	var fe *taskreq.FieldError
	if errors.As(err, &fe) {
		return api.FieldAPIError(fe)
	}
	var be *taskreq.BatchError
	if errors.As(err, &be) {
		return api.BatchAPIError(be)
	}
	return err
}
