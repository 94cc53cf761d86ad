// Package base holds what every Tasker service shares: its logger, tracer,
// metrics and the observer of its SQL calls, with one set of defaults, so
// the worker, orchestration and the engine that wires them do not each
// repeat them.
package base

import (
	"log/slog"

	"github.com/taskerhq/tasker/internal/db"
	"github.com/taskerhq/tasker/internal/metrics"
	"github.com/taskerhq/tasker/internal/tracing"
)

// Telemetry is embedded in every service's Config. Zero fields mean: no
// logs, no spans (trace context still propagated), no metrics, and SQL calls
// observed by the tracer and the metrics.
type Telemetry struct {
	Logger *slog.Logger
	// Tracer makes spans and carries trace context through message headers.
	Tracer *tracing.Tracer
	// Metrics records the service's metrics (nil: none).
	Metrics *metrics.Metrics
	// Observer sees every SQL function call.
	Observer db.Observer
}

// WithDefaults returns t with its zero fields set to the defaults.
func (t Telemetry) WithDefaults() Telemetry {
	if t.Logger == nil {
		t.Logger = slog.New(slog.DiscardHandler)
	}
	if t.Tracer == nil {
		t.Tracer = tracing.Noop()
	}
	if t.Observer == nil {
		t.Observer = db.Observers{t.Tracer, t.Metrics}
	}
	return t
}

// Inherit returns t with its zero fields taken from parent (a process's
// telemetry handed to the services it starts).
func (t Telemetry) Inherit(parent Telemetry) Telemetry {
	if t.Logger == nil {
		t.Logger = parent.Logger
	}
	if t.Tracer == nil {
		t.Tracer = parent.Tracer
	}
	if t.Metrics == nil {
		t.Metrics = parent.Metrics
	}
	// Observer is not inherited: WithDefaults derives it from this
	// service's own tracer, which may differ from the parent's.
	return t
}
