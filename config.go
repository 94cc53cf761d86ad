package tasker

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskerhq/tasker/handler"
	"github.com/taskerhq/tasker/template"
)

// Defaults of the zero values of WorkerConfig and OrchestrationConfig.
const (
	ConcurrencyDefault           = 10
	LeaseDefault                 = 10 * time.Second
	PollIntervalDefault          = time.Second
	ShutdownGraceDefault         = 10 * time.Second
	OverdueHandlerWarningDefault = 30 * time.Second
	ResultWorkersDefault         = 2
	ReadinessIntervalDefault     = time.Second
	FallbackIntervalDefault      = time.Second
)

// Config configures a Client. Its zero value is a client that can create and
// read tasks; set Worker to run handlers and Orchestration to move tasks on.
type Config struct {
	// Templates are registered when the client starts. A template whose
	// namespace, name and version are registered with different content is
	// refused: change the version when a template changes.
	Templates []*template.Template
	// Handlers are the step handlers the worker runs. Required with Worker.
	Handlers *handler.Registry
	// Worker, when set, runs a worker for the handlers.
	Worker *WorkerConfig
	// Orchestration, when set, runs an orchestrator: it processes step
	// results, enqueues the steps that become ready and finalizes tasks. At
	// least one process per database must run one.
	Orchestration *OrchestrationConfig
	// Logger receives structured logs with correlation fields. Default:
	// nothing is logged.
	Logger *slog.Logger
	// TracerProvider makes spans. Default: otel.GetTracerProvider().
	TracerProvider trace.TracerProvider
	// MeterProvider records metrics. Default: otel.GetMeterProvider().
	MeterProvider metric.MeterProvider
	// Propagator carries trace context through queue messages. Default:
	// otel.GetTextMapPropagator().
	Propagator propagation.TextMapPropagator
}

// WorkerConfig configures the worker of a Client. Zero values mean the
// documented defaults.
type WorkerConfig struct {
	// Namespaces the worker serves. Default: the namespaces of Config.Templates.
	Namespaces []string
	// ID names the worker in step history. Default: "worker_" + a UUIDv7.
	ID string
	// Concurrency is how many handlers run at once. Default ConcurrencyDefault.
	Concurrency int
	// Lease is how long a claimed step stays this worker's without a
	// heartbeat: a crashed worker's steps run again this long after its last
	// heartbeat. Default LeaseDefault.
	Lease time.Duration
	// PollInterval is how often queues are read for steps whose notification
	// was missed. Default PollIntervalDefault.
	PollInterval time.Duration
	// ShutdownGrace is how long running handlers may finish once Stop is
	// called; steps still running then are left to lease expiry. Default
	// ShutdownGraceDefault; negative means none.
	ShutdownGrace time.Duration
	// OverdueHandlerWarning is how long a handler may go on after its step's
	// timeout cancelled it before a warning names it. It keeps its slot
	// until it returns, and no other attempt of its step starts in this
	// worker meanwhile. Default OverdueHandlerWarningDefault.
	OverdueHandlerWarning time.Duration
}

// OrchestrationConfig configures the orchestrator of a Client. Zero values
// mean the documented defaults.
type OrchestrationConfig struct {
	// ResultWorkers is how many batches of step results are processed at
	// once; each batch takes every result waiting when it starts. Default
	// ResultWorkersDefault.
	ResultWorkers int
	// ReadinessInterval is how often tasks whose retry backoff elapsed are
	// looked for. Default ReadinessIntervalDefault.
	ReadinessInterval time.Duration
	// FallbackInterval is how often orchestration queues are read for
	// messages whose notification was missed. Default FallbackIntervalDefault.
	FallbackInterval time.Duration
	// Retention is how long finished tasks (with their steps and history)
	// and archived queue messages are kept before they are pruned, in small
	// batches. Default 7 days; negative keeps everything.
	Retention time.Duration
	// PruneInterval is how often what has outlived Retention is deleted.
	// Default 1 minute.
	PruneInterval time.Duration
	// PruneBatch is how many rows one pruning transaction deletes. Default 500.
	PruneBatch int
	// ScheduleInterval is how often due cron schedules are looked for: a
	// firing happens within this much of its time. Default 1 second.
	ScheduleInterval time.Duration
}

func (c *Config) validate() error {
	if c.Worker != nil {
		if c.Handlers == nil {
			return errors.New("tasker config: Handlers is required with Worker")
		}
		if len(c.Worker.Namespaces) == 0 && len(c.Templates) == 0 {
			return errors.New("tasker config: Worker.Namespaces is required when Templates is empty")
		}
		if c.Worker.Concurrency < 0 {
			return fmt.Errorf("tasker config: Worker.Concurrency must not be negative, got %d", c.Worker.Concurrency)
		}
		if c.Worker.Lease != 0 && c.Worker.Lease < 100*time.Millisecond {
			return fmt.Errorf("tasker config: Worker.Lease must be ≥ 100ms, got %s", c.Worker.Lease)
		}
	}
	for i, t := range c.Templates {
		if t == nil {
			return fmt.Errorf("tasker config: Templates[%d] is nil", i)
		}
		if err := t.Validate(nil); err != nil {
			return fmt.Errorf("tasker config: Templates[%d]: %w", i, err)
		}
	}
	return nil
}

// namespaces is what the worker serves.
func (c *Config) namespaces() []string {
	if len(c.Worker.Namespaces) > 0 {
		return c.Worker.Namespaces
	}
	return template.Namespaces(c.Templates)
}
