package foreign

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taskerhq/tasker/internal/base"
	"github.com/taskerhq/tasker/internal/config"
	"github.com/taskerhq/tasker/internal/db"
	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/metrics"
	"github.com/taskerhq/tasker/internal/orchestration"
	"github.com/taskerhq/tasker/internal/queue"
	"github.com/taskerhq/tasker/internal/telemetry"
	"github.com/taskerhq/tasker/internal/templatestore"
	"github.com/taskerhq/tasker/internal/tracing"
	"github.com/taskerhq/tasker/internal/worker"
	"github.com/taskerhq/tasker/template"
)

// Component is the log component of records the foreign runtime writes.
const Component = "ruby_worker"

// Options configure a Bridge's telemetry. The rest comes from Tasker's
// configuration (config files, TASKER_* and OTEL_* variables), as for every
// Tasker process.
type Options struct {
	// ServiceName is the telemetry service.name unless OTEL_SERVICE_NAME is
	// set. Default "tasker-ruby-worker".
	ServiceName string `json:"service_name"`
	// LogLevel overrides telemetry.logs.level when non-empty.
	LogLevel string `json:"log_level"`
	// Env, when non-nil, is the environment the configuration is read from
	// instead of the process's. A shared library's Go runtime sees the
	// environment the process started with, not what the host language set
	// since (Ruby's ENV[]=), so the host passes its current one.
	Env map[string]string `json:"env"`
}

// ParseOptions decodes and validates Options (empty input: defaults).
func ParseOptions(data []byte) (Options, error) {
	var o Options
	if len(data) > 0 {
		if err := decodeStrict(data, &o); err != nil {
			return o, fmt.Errorf("bridge options: %w", err)
		}
	}
	if o.ServiceName == "" {
		o.ServiceName = "tasker-ruby-worker"
	}
	switch o.LogLevel {
	case "", config.LevelDebug, config.LevelInfo, config.LevelWarn, config.LevelError:
	default:
		return o, fmt.Errorf("bridge options: log_level: %q is not one of debug, info, warn, error", o.LogLevel)
	}
	return o, nil
}

// Bridge is one foreign runtime's view of Tasker: telemetry from Open, and a
// worker between Start and Stop.
type Bridge struct {
	cfg     *config.Config
	prov    *telemetry.Providers
	metrics *metrics.Metrics
	tracer  *tracing.Tracer
	logger  *slog.Logger
	// rlog is the logger of the runtime's own records.
	rlog *slog.Logger

	refs *refs

	// disp is read without mu: Next must not wait for a Stop that is itself
	// waiting for the runtime to finish the steps Next hands out.
	disp atomic.Pointer[Dispatcher]

	mu     sync.Mutex
	state  int
	pool   *pgxpool.Pool
	engine *engine.Engine
}

const (
	stateOpen = iota
	stateRunning
	stateStopped
	stateClosed
)

// Open loads the configuration and builds the process's telemetry, as every
// Tasker process does.
func Open(ctx context.Context, o Options) (*Bridge, error) {
	lo := config.LoadOptions{}
	if o.Env != nil {
		lo.Getenv = func(k string) string { return o.Env[k] }
		lo.Environ = func() []string {
			out := make([]string, 0, len(o.Env))
			for k, v := range o.Env {
				out = append(out, k+"="+v)
			}
			return out
		}
	}
	cfg, _, err := config.Load(lo)
	if err != nil {
		return nil, fmt.Errorf("loading configuration: %w", err)
	}
	if o.LogLevel != "" {
		cfg.Telemetry.Logs.Level = o.LogLevel
	}
	boot := telemetry.NewLogger(cfg.Telemetry.Logs, os.Stderr, nil)
	prov, err := telemetry.New(ctx, cfg.Telemetry, o.ServiceName, telemetry.WithLogger(boot))
	if err != nil {
		return nil, fmt.Errorf("starting telemetry: %w", err)
	}
	m, err := metrics.New(prov.MeterProvider, metrics.WithCorrelationIDLabel(cfg.Telemetry.Metrics.CorrelationIDLabel))
	if err != nil {
		return nil, errors.Join(fmt.Errorf("starting metrics: %w", err), prov.Shutdown(ctx))
	}
	logger := telemetry.NewLogger(cfg.Telemetry.Logs, os.Stderr, prov)
	b := &Bridge{
		cfg: cfg, prov: prov, metrics: m, logger: logger,
		rlog:   logger.With(telemetry.ComponentKey, Component),
		tracer: tracing.New(prov.TracerProvider, prov.Propagator),
	}
	b.refs = newRefs(b.tracer)
	return b, nil
}

// Start connects to PostgreSQL (applying migrations, as `tasker worker`
// does), registers wc.Templates and starts a worker whose steps go to the
// foreign runtime through Next. A Bridge runs one worker in its life.
func (b *Bridge) Start(ctx context.Context, wc WorkerConfig) (err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state != stateOpen {
		return errors.New("starting worker: this bridge has already started a worker")
	}
	disp := newDispatcher(wc.Handlers, b.refs)
	var tpls []*template.Template
	for _, dir := range wc.Templates {
		more, err := template.LoadDir(dir)
		if err != nil {
			return fmt.Errorf("worker config: templates: %s: %w", dir, err)
		}
		tpls = append(tpls, more...)
	}
	for _, t := range tpls {
		if err := t.Validate(disp.Has); err != nil {
			return fmt.Errorf("worker config: templates: %w", err)
		}
	}
	pool, err := db.NewPool(ctx, wc.DatabaseURL, wc.MaxConns)
	if err != nil {
		return fmt.Errorf("connecting to PostgreSQL: %w", err)
	}
	defer func() {
		if err != nil {
			pool.Close()
		}
	}()
	if err := db.Migrate(ctx, pool); err != nil {
		return fmt.Errorf("migrating: %w", err)
	}
	if err := templatestore.RegisterAll(ctx, pool, queue.NewClient(nil), tpls); err != nil {
		return fmt.Errorf("registering templates: %w", err)
	}
	// The service is only the Submitter through which handlers create child tasks.
	sub, err := orchestration.New(pool, orchestration.Config{Telemetry: b.telemetry()})
	if err != nil {
		return fmt.Errorf("starting worker: %w", err)
	}
	e, err := engine.Start(ctx, engine.Config{Pool: pool, Telemetry: b.telemetry(),
		Worker: &worker.Config{
			Namespaces: wc.Namespaces, Concurrency: wc.Concurrency, Lease: ms(wc.LeaseMS),
			PollInterval: ms(wc.PollIntervalMS), ShutdownGrace: ms(wc.ShutdownGraceMS),
			Dispatcher: disp, Submitter: sub,
		}})
	if err != nil {
		return err
	}
	b.pool, b.engine, b.state = pool, e, stateRunning
	b.disp.Store(disp)
	b.logger.Info("foreign worker running", "component", Component, "worker_id", e.Worker.ID(),
		"namespaces", wc.Namespaces, "handlers", wc.Handlers, "concurrency", wc.Concurrency)
	return nil
}

func (b *Bridge) telemetry() base.Telemetry {
	return base.Telemetry{Logger: b.logger, Tracer: b.tracer, Metrics: b.metrics}
}

// Stop stops claiming steps, waits up to timeout for the steps in flight
// (the runtime must keep pulling and completing them meanwhile), abandons
// the rest to lease expiry and closes the database pool. Next reports
// stopped once it returns.
func (b *Bridge) Stop(timeout time.Duration) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state != stateRunning {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := b.engine.StopContext(ctx)
	b.disp.Load().stop()
	b.pool.Close()
	b.state = stateStopped
	if err != nil {
		return fmt.Errorf("stopping worker: %w", err)
	}
	return nil
}

// Next returns the next step for the foreign runtime, waiting up to timeout.
// ok is false on timeout; ErrStopped once Stop has finished (or no worker
// was started).
func (b *Bridge) Next(timeout time.Duration) (data []byte, ok bool, err error) {
	d := b.disp.Load()
	if d == nil {
		return nil, false, ErrStopped
	}
	return d.next(timeout)
}

// Complete answers the step named by handle.
func (b *Bridge) Complete(handle uint64, r Result) error { return b.refs.complete(handle, r) }

// ErrStopped is returned by Next when the worker has stopped.
var ErrStopped = errors.New("the worker has stopped")

// Close stops the worker if it runs and flushes and shuts down telemetry.
func (b *Bridge) Close() error {
	err := b.Stop(ms(30000))
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == stateClosed {
		return err
	}
	b.state = stateClosed
	b.refs.closeAll()
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(b.cfg.Telemetry.OTLP.Timeout)+time.Second)
	defer cancel()
	return errors.Join(err, b.metrics.Close(), b.prov.Shutdown(ctx))
}

// Flush exports buffered spans, logs and metrics now.
func (b *Bridge) Flush(ctx context.Context) error { return b.prov.ForceFlush(ctx) }
