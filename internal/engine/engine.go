// Package engine wires one process's share of Tasker: a NOTIFY listener, an
// orchestrator and/or a worker, all on one pool. `tasker dev`, `tasker
// server`, `tasker worker` and the tests build on it.
package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taskerhq/tasker/internal/api"
	"github.com/taskerhq/tasker/internal/base"
	"github.com/taskerhq/tasker/internal/metrics"
	"github.com/taskerhq/tasker/internal/orchestration"
	"github.com/taskerhq/tasker/internal/queue"
	"github.com/taskerhq/tasker/internal/worker"
)

// Config selects what runs.
type Config struct {
	Pool *pgxpool.Pool
	// Orchestration runs an orchestrator when non-nil.
	Orchestration *orchestration.Config
	// Worker runs a worker when non-nil.
	Worker *worker.Config
	// Telemetry is given to every component for the fields it leaves zero;
	// its Metrics also gets the process's gauges (pool, queues, tasks,
	// listener, active handlers, live workers).
	base.Telemetry
}

// Engine is a running set of components.
type Engine struct {
	Orchestrator *orchestration.Service
	Worker       *worker.Worker
	Listener     *queue.Listener

	pool    *pgxpool.Pool
	signals *api.TaskSignals
	cancel  context.CancelFunc
	metrics *metrics.Metrics
	wg      sync.WaitGroup
	mu      sync.Mutex
	errs    []error
}

// Start builds and starts the configured components and waits until the
// listener is listening, so nothing sent after Start returns is missed.
func Start(ctx context.Context, cfg Config) (*Engine, error) {
	if cfg.Pool == nil {
		return nil, errors.New("engine: pool is required")
	}
	cfg.Telemetry = cfg.Telemetry.WithDefaults()
	connCfg := cfg.Pool.Config().ConnConfig
	e := &Engine{
		pool: cfg.Pool,
		Listener: queue.NewListener(func(ctx context.Context) (*pgx.Conn, error) {
			return pgx.ConnectConfig(ctx, connCfg.Copy())
		}, cfg.Logger.With("component", "listener")),
	}
	// API servers over this engine answer task waiters from the
	// orchestrators' task-terminal notifications.
	e.signals = api.NewTaskSignals()
	if err := e.Listener.HandleChannel(queue.TaskTerminalChannel, e.signals.Notify); err != nil {
		return nil, fmt.Errorf("starting listener: %w", err)
	}
	var consumers *orchestration.Consumers
	if cfg.Orchestration != nil {
		oc := *cfg.Orchestration
		oc.Telemetry = oc.Telemetry.Inherit(cfg.Telemetry)
		svc, err := orchestration.New(cfg.Pool, oc)
		if err != nil {
			return nil, fmt.Errorf("starting orchestration: %w", err)
		}
		if err := svc.Setup(ctx); err != nil {
			return nil, fmt.Errorf("starting orchestration: %w", err)
		}
		if consumers, err = svc.Subscribe(e.Listener); err != nil {
			return nil, fmt.Errorf("starting orchestration: %w", err)
		}
		e.Orchestrator = svc
	}
	if cfg.Worker != nil {
		wc := *cfg.Worker
		wc.Telemetry = wc.Telemetry.Inherit(cfg.Telemetry)
		w, err := worker.New(cfg.Pool, wc)
		if err != nil {
			return nil, fmt.Errorf("starting worker: %w", err)
		}
		if err := w.CheckNamespaces(ctx); err != nil {
			return nil, fmt.Errorf("starting worker: %w", err)
		}
		if err := w.Subscribe(e.Listener); err != nil {
			return nil, fmt.Errorf("starting worker: %w", err)
		}
		e.Worker = w
	}
	if err := cfg.Metrics.DeclareKnown(ctx, cfg.Pool); err != nil {
		return nil, err
	}
	if err := e.observe(cfg); err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	e.cancel = cancel
	e.run(func() error { return e.Listener.Run(runCtx) })
	if e.Orchestrator != nil {
		e.run(func() error { return e.Orchestrator.Run(runCtx, consumers) })
	}
	if e.Worker != nil {
		e.run(func() error { return e.Worker.Run(runCtx) })
	}
	select {
	case <-e.Listener.Ready():
	case <-ctx.Done():
		e.Stop()
		return nil, ctx.Err()
	}
	return e, nil
}

// TaskSignals is the hub the engine's listener feeds with task-terminal
// notifications.
func (e *Engine) TaskSignals() *api.TaskSignals { return e.signals }

// Backend is the REST API's backend over this engine's database, creating
// tasks through its orchestrator (nil without one).
func (e *Engine) Backend() *api.Store {
	if e.Orchestrator == nil {
		return nil
	}
	return api.NewStore(e.pool, e.Orchestrator, e.Orchestrator.Funcs()).WithSignals(e.signals)
}

func (e *Engine) run(fn func() error) {
	e.wg.Go(func() {
		if err := fn(); err != nil {
			e.mu.Lock()
			e.errs = append(e.errs, err)
			e.mu.Unlock()
		}
	})
}

// observe registers the process's gauges with the metrics.
func (e *Engine) observe(cfg Config) error {
	m := cfg.Metrics
	if m == nil {
		return nil
	}
	e.metrics = m
	errs := []error{m.ObservePool(cfg.Pool), m.ObserveQueues(cfg.Pool), m.ObserveListener(e.Listener)}
	if e.Orchestrator != nil {
		errs = append(errs, m.ObserveTasks(cfg.Pool), m.ObserveLiveWorkers(e.Orchestrator.LiveWorkers))
	}
	if e.Worker != nil {
		errs = append(errs, m.ObserveActiveExecutions(e.Worker.ActiveByNamespace), m.ObserveOverdueHandlers(e.Worker.OverdueByNamespace))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("registering gauges: %w", err)
	}
	return nil
}

// Stop stops every component and waits for them; it returns their errors.
func (e *Engine) Stop() error { return e.StopContext(context.Background()) }

// StopContext is Stop that waits for running steps only until ctx ends; steps
// still running then are abandoned to lease expiry (another worker retries
// them).
func (e *Engine) StopContext(ctx context.Context) error {
	e.cancel()
	done := make(chan struct{})
	go func() { e.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		if e.Worker != nil {
			e.Worker.Abandon()
		}
		<-done
	}
	if e.metrics != nil {
		e.errs = append(e.errs, e.metrics.Close())
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return errors.Join(e.errs...)
}
