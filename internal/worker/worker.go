package worker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taskerhq/tasker/handler"
	"github.com/taskerhq/tasker/internal/base"
	"github.com/taskerhq/tasker/internal/db"
	"github.com/taskerhq/tasker/internal/metrics"
	"github.com/taskerhq/tasker/internal/queue"
	"github.com/taskerhq/tasker/internal/templatestore"
	"github.com/taskerhq/tasker/internal/tracing"
)

// Config configures a Worker. Zero values mean the documented default.
type Config struct {
	// Namespaces the worker serves (required). Each must have a registered template.
	Namespaces []string
	// ID names the worker in step history. Default: "worker_" + a UUIDv7.
	ID string
	// Concurrency is how many handlers run at once. Default 10.
	Concurrency int
	// Lease is how long a claimed step stays ours without a heartbeat; a crashed
	// worker's steps are retried this long after its last heartbeat. Default 10s.
	Lease time.Duration
	// PollInterval is how often queues are read for steps whose notification
	// was missed and for expired leases. Default 1s.
	PollInterval time.Duration
	// PollMinAge keeps the poller off messages a notification is about to deliver. Default 200ms.
	PollMinAge time.Duration
	// ShutdownGrace is how long running handlers may finish after Run's context
	// ends; steps still running then are abandoned to lease expiry. Default 10s;
	// negative means none.
	ShutdownGrace time.Duration
	// Dispatcher runs handlers (required).
	Dispatcher Dispatcher
	// OverdueHandlerWarning is how long a handler may keep running after its
	// step's timeout cancelled it before a warning names it. Such a handler
	// keeps its slot until it returns (it still uses the worker's resources),
	// and no other attempt of its step starts here meanwhile. Default 30s.
	OverdueHandlerWarning time.Duration
	// Submitter lets handlers create child tasks. Optional.
	Submitter handler.TaskSubmitter
	base.Telemetry
}

func (c Config) withDefaults() Config {
	if c.ID == "" {
		c.ID = "worker_" + uuid.Must(uuid.NewV7()).String()
	}
	c.Concurrency = cmp.Or(c.Concurrency, 10)
	c.Lease = cmp.Or(c.Lease, 10*time.Second)
	c.PollInterval = cmp.Or(c.PollInterval, time.Second)
	c.PollMinAge = cmp.Or(c.PollMinAge, 200*time.Millisecond)
	c.OverdueHandlerWarning = cmp.Or(c.OverdueHandlerWarning, 30*time.Second)
	if c.ShutdownGrace == 0 {
		c.ShutdownGrace = 10 * time.Second
	}
	c.Telemetry = c.Telemetry.WithDefaults()
	return c
}

func (c Config) validate() error {
	if len(c.Namespaces) == 0 {
		return errors.New("worker.namespaces: at least one namespace is required")
	}
	for _, ns := range c.Namespaces {
		if err := queue.ValidateNamespace(ns); err != nil {
			return fmt.Errorf("worker.namespaces: %w", err)
		}
	}
	switch {
	case c.Dispatcher == nil:
		return errors.New("worker.dispatcher: required")
	case c.Concurrency < 1:
		return fmt.Errorf("worker.concurrency: must be ≥ 1, got %d", c.Concurrency)
	case c.Lease < 100*time.Millisecond:
		return fmt.Errorf("worker.lease: must be ≥ 100ms, got %s", c.Lease)
	case c.PollInterval < 10*time.Millisecond:
		return fmt.Errorf("worker.poll_interval: must be ≥ 10ms, got %s", c.PollInterval)
	}
	return nil
}

// Claim methods: how a step was found.
const (
	ClaimEvent = "event"
	ClaimPoll  = "poll"
)

// Worker serves the steps of its namespaces.
type Worker struct {
	cfg    Config
	pool   *pgxpool.Pool
	funcs  *db.Funcs
	qc     *queue.Client
	log    *slog.Logger
	tr     *tracing.Tracer
	m      *metrics.Metrics
	queues []string
	subs   []*queue.Subscription

	slots chan struct{}

	obs *observer

	abandon     chan struct{}
	abandonOnce sync.Once

	// results feeds submitLoop; submitterDone closes when it has stopped.
	results       chan *pendingResult
	submitterDone chan struct{}

	mu     sync.Mutex
	active map[uuid.UUID]activeStep
	// handlers are the running handler goroutines by step; overdue those
	// past their step's timeout, with their namespace.
	handlers map[uuid.UUID]chan struct{}
	overdue  map[uuid.UUID]string
}

type activeStep struct {
	db.LeaseRef
	Namespace string
	// cancel ends the handler's context when the step's task is cancelled.
	cancel context.CancelCauseFunc
}

// ErrTaskCancelled is the cause of a handler's context ending because an
// operator cancelled the step's task.
var ErrTaskCancelled = errors.New("the step's task was cancelled")

// ErrUnknownNamespace is returned by Run for a namespace with no registered template.
var ErrUnknownNamespace = errors.New("unknown namespace")

// New returns a worker over pool.
func New(pool *pgxpool.Pool, cfg Config) (*Worker, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	w := &Worker{
		cfg:      cfg,
		pool:     pool,
		funcs:    db.NewFuncs(cfg.Observer),
		qc:       queue.NewClient(cfg.Observer),
		log:      cfg.Logger.With("component", "worker", "worker_id", cfg.ID),
		tr:       cfg.Tracer,
		m:        cfg.Metrics,
		slots:    make(chan struct{}, cfg.Concurrency),
		active:   map[uuid.UUID]activeStep{},
		abandon:  make(chan struct{}),
		handlers: map[uuid.UUID]chan struct{}{},
		overdue:  map[uuid.UUID]string{},
		// Room for every running handler's result: a full channel would
		// only mean the submitter is behind, never a lost result.
		results:       make(chan *pendingResult, cfg.Concurrency),
		submitterDone: make(chan struct{}),
	}
	w.obs = &observer{log: w.log, tr: w.tr, m: w.m}
	for _, ns := range cfg.Namespaces {
		q, _ := queue.WorkerQueue(ns)
		w.queues = append(w.queues, q)
	}
	return w, nil
}

// ID is the worker's identity in step history.
func (w *Worker) ID() string { return w.cfg.ID }

// Subscribe registers the worker's queues with listener (before it runs).
func (w *Worker) Subscribe(l *queue.Listener) error {
	for _, q := range w.queues {
		sub, err := l.Subscribe(q, 1024)
		if err != nil {
			return err
		}
		w.subs = append(w.subs, sub)
	}
	return nil
}

// CheckNamespaces returns ErrUnknownNamespace (wrapped, naming it) for a
// namespace with no registered template.
func (w *Worker) CheckNamespaces(ctx context.Context) error {
	for _, ns := range w.cfg.Namespaces {
		ok, err := templatestore.NamespaceExists(ctx, w.pool, ns)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%w %q: no template of that namespace is registered", ErrUnknownNamespace, ns)
		}
	}
	return nil
}

// Run serves steps until ctx is done, then lets running handlers finish for
// ShutdownGrace. Every goroutine it starts has stopped when it returns.
func (w *Worker) Run(ctx context.Context) error {
	if err := w.CheckNamespaces(ctx); err != nil {
		return err
	}
	if len(w.subs) != len(w.queues) {
		return errors.New("worker: Subscribe must be called before Run")
	}
	// Handlers run under execCtx so shutdown can give them a grace period.
	execCtx, cancelExec := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelExec()
	var loops, execs, submitter sync.WaitGroup
	// Results are written even while shutting down, so the submitter runs
	// until every handler has returned and its result is committed.
	stopSubmitter := make(chan struct{})
	submitter.Go(func() { w.submitLoop(context.WithoutCancel(ctx), ctx.Done(), stopSubmitter) })
	for _, sub := range w.subs {
		loops.Go(func() { w.eventLoop(ctx, execCtx, sub, &execs) })
	}
	loops.Go(func() { w.pollLoop(ctx, execCtx, &execs) })
	loops.Go(func() { w.heartbeatLoop(ctx, execCtx) })
	loops.Go(func() { w.presenceLoop(ctx) })
	w.log.InfoContext(ctx, "worker started", "namespaces", w.cfg.Namespaces, "concurrency", w.cfg.Concurrency,
		"lease_ms", w.cfg.Lease.Milliseconds())
	<-ctx.Done()
	loops.Wait()

	finished := make(chan struct{})
	go func() { execs.Wait(); close(finished) }()
	if w.cfg.ShutdownGrace > 0 {
		select {
		case <-finished:
		case <-w.abandon:
			w.log.Warn("shutdown cut short; abandoning running steps to lease expiry")
		case <-time.After(w.cfg.ShutdownGrace):
			w.log.Warn("shutdown grace elapsed; abandoning running steps to lease expiry")
		}
	}
	cancelExec()
	<-finished
	close(stopSubmitter)
	submitter.Wait()
	return nil
}

// Abandon ends the shutdown grace period of a stopping Run at once: running
// handlers are cancelled and their steps left to lease expiry.
func (w *Worker) Abandon() { w.abandonOnce.Do(func() { close(w.abandon) }) }

func (w *Worker) track(c db.ClaimedStep) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.active[c.StepUUID] = activeStep{LeaseRef: db.LeaseRef{StepUUID: c.StepUUID, Attempt: c.Attempt, MsgID: c.MsgID}, Namespace: c.Namespace}
}

// setCancel registers how to stop the handler of a tracked step's attempt.
func (w *Worker) setCancel(id uuid.UUID, attempt int, cancel context.CancelCauseFunc) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if a, ok := w.active[id]; ok && a.Attempt == attempt {
		a.cancel = cancel
		w.active[id] = a
	}
}

// cancelSteps stops the handlers of steps whose task was cancelled.
func (w *Worker) cancelSteps(ids []uuid.UUID) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, id := range ids {
		if a, ok := w.active[id]; ok && a.cancel != nil {
			a.cancel(ErrTaskCancelled)
		}
	}
}

// untrack forgets a step's attempt; a later attempt of the same step that
// this worker claimed meanwhile stays tracked.
func (w *Worker) untrack(id uuid.UUID, attempt int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.active[id].Attempt == attempt {
		delete(w.active, id)
	}
}

// ActiveByNamespace counts running handlers per namespace (for the active executions gauge).
func (w *Worker) ActiveByNamespace() map[string]int64 {
	out := make(map[string]int64, len(w.cfg.Namespaces))
	for _, ns := range w.cfg.Namespaces {
		out[ns] = 0
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, r := range w.active {
		out[r.Namespace]++
	}
	return out
}
