package foreign

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// WorkerConfig is what the foreign runtime asks for when it starts a worker
// (JSON). Zero values mean the documented default.
type WorkerConfig struct {
	// Namespaces the worker serves (required).
	Namespaces []string `json:"namespaces"`
	// Handlers are the handler names the foreign runtime can run (required):
	// a step whose handler is not among them fails as handler_not_found.
	Handlers []string `json:"handlers"`
	// DatabaseURL is the PostgreSQL URL (required).
	DatabaseURL string `json:"database_url"`
	// MaxConns caps the worker's database connections. Default 10.
	MaxConns int32 `json:"max_conns"`
	// Concurrency is how many steps are in flight at once; the runtime
	// should pull with as many threads. Default 4.
	Concurrency int `json:"concurrency"`
	// LeaseMS is the step lease in milliseconds. Default 10000.
	LeaseMS int `json:"lease_ms"`
	// PollIntervalMS is the fallback poll period. Default 1000.
	PollIntervalMS int `json:"poll_interval_ms"`
	// ShutdownGraceMS is how long in-flight steps may finish at Stop (Stop's
	// own timeout may cut it shorter). Default (and 0) 30000.
	ShutdownGraceMS int `json:"shutdown_grace_ms"`
	// Templates are directories of template YAML files to register first,
	// each checked against Handlers.
	Templates []string `json:"templates"`
}

func (c WorkerConfig) withDefaults() WorkerConfig {
	if c.MaxConns == 0 {
		c.MaxConns = 10
	}
	if c.Concurrency == 0 {
		c.Concurrency = 4
	}
	if c.LeaseMS == 0 {
		c.LeaseMS = 10000
	}
	if c.PollIntervalMS == 0 {
		c.PollIntervalMS = 1000
	}
	if c.ShutdownGraceMS == 0 {
		c.ShutdownGraceMS = 30000
	}
	return c
}

func (c WorkerConfig) validate() error {
	switch {
	case len(c.Namespaces) == 0:
		return errors.New("namespaces: at least one namespace is required")
	case len(c.Handlers) == 0:
		return errors.New("handlers: at least one handler name is required")
	case c.DatabaseURL == "":
		return errors.New("database_url: required")
	case c.MaxConns < 1:
		return fmt.Errorf("max_conns: must be ≥ 1, got %d", c.MaxConns)
	case c.Concurrency < 1:
		return fmt.Errorf("concurrency: must be ≥ 1, got %d", c.Concurrency)
	case c.LeaseMS < 100:
		return fmt.Errorf("lease_ms: must be ≥ 100, got %d", c.LeaseMS)
	case c.PollIntervalMS < 10:
		return fmt.Errorf("poll_interval_ms: must be ≥ 10, got %d", c.PollIntervalMS)
	case c.ShutdownGraceMS < 0:
		return fmt.Errorf("shutdown_grace_ms: must be ≥ 0, got %d", c.ShutdownGraceMS)
	}
	for i, h := range c.Handlers {
		if h == "" {
			return fmt.Errorf("handlers[%d]: empty name", i)
		}
	}
	return nil
}

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

// ParseWorkerConfig decodes and validates a WorkerConfig, naming the bad key.
func ParseWorkerConfig(data []byte) (WorkerConfig, error) {
	var c WorkerConfig
	if err := decodeStrict(data, &c); err != nil {
		return c, fmt.Errorf("worker config: %w", err)
	}
	c = c.withDefaults()
	if err := c.validate(); err != nil {
		return c, fmt.Errorf("worker config: %w", err)
	}
	return c, nil
}

// Step is what the foreign runtime receives for one claimed step: the full
// handler context plus the W3C trace context of the worker.invoke_handler
// span, which the runtime's own spans (if it has an OpenTelemetry SDK of its
// own) may use as their parent.
type Step struct {
	// Span is the handle of the step's handler_execution span (a child of
	// worker.invoke_handler), which ends when the step is completed: the
	// runtime's own spans and records go under it. The dispatcher adds it
	// as the step is handed out (so it is empty when encoded before).
	Span uint64 `json:"span,omitempty"`
	// Handle names the step in Complete, Log and StartSpan.
	Handle              uint64                     `json:"handle"`
	Handler             string                     `json:"handler"`
	TaskUUID            uuid.UUID                  `json:"task_uuid"`
	StepUUID            uuid.UUID                  `json:"step_uuid"`
	StepName            string                     `json:"step_name"`
	Namespace           string                     `json:"namespace"`
	TaskName            string                     `json:"task_name"`
	TaskVersion         string                     `json:"task_version"`
	CorrelationID       uuid.UUID                  `json:"correlation_id"`
	ParentCorrelationID *uuid.UUID                 `json:"parent_correlation_id"`
	Context             json.RawMessage            `json:"context"`
	Inputs              json.RawMessage            `json:"inputs"`
	DependencyResults   map[string]json.RawMessage `json:"dependency_results"`
	Attempt             int                        `json:"attempt"`
	MaxAttempts         int                        `json:"max_attempts"`
	Traceparent         string                     `json:"traceparent"`
	Tracestate          string                     `json:"tracestate"`
	// DeadlineUnixMS is when the worker gives up on the handler (its timeout).
	DeadlineUnixMS int64 `json:"deadline_unix_ms,omitempty"`
}

// Result is the foreign handler's answer for one step.
type Result struct {
	Success bool `json:"success"`
	// Value is the step's result (any JSON) when Success.
	Value json.RawMessage `json:"value"`
	// Metadata is recorded next to the result when Success.
	Metadata map[string]any `json:"metadata"`
	Error    *ResultError   `json:"error"`
}

// ResultError describes a failed attempt.
type ResultError struct {
	// Type is stored as the attempt's error type (e.g. the exception class).
	Type    string `json:"type"`
	Code    string `json:"code"`
	Message string `json:"message"`
	// Retryable false fails the step at once.
	Retryable bool `json:"retryable"`
}

// ParseResult decodes and validates a Result.
func ParseResult(data []byte) (Result, error) {
	var r Result
	if err := decodeStrict(data, &r); err != nil {
		return r, fmt.Errorf("step result: %w", err)
	}
	switch {
	case r.Success && r.Error != nil:
		return r, errors.New("step result: error: must be absent when success is true")
	case !r.Success && r.Error == nil:
		return r, errors.New("step result: error: required when success is false")
	case !r.Success && r.Error.Type == "":
		return r, errors.New("step result: error.type: required")
	case !r.Success && r.Error.Message == "":
		return r, errors.New("step result: error.message: required")
	}
	if r.Success && len(r.Value) == 0 {
		r.Value = json.RawMessage("null")
	}
	return r, nil
}

// SpanStatus is how the foreign runtime ends a span.
type SpanStatus struct {
	// Status is "ok", "error" or "" (unset).
	Status     string         `json:"status"`
	Message    string         `json:"message"`
	ErrorType  string         `json:"error_type"`
	Attributes map[string]any `json:"attributes"`
}

func parseSpanStatus(data []byte) (SpanStatus, error) {
	var s SpanStatus
	if len(bytes.TrimSpace(data)) == 0 {
		return s, nil
	}
	if err := decodeStrict(data, &s); err != nil {
		return s, fmt.Errorf("span status: %w", err)
	}
	switch s.Status {
	case "", "ok", "error":
	default:
		return s, fmt.Errorf("span status: status: %q is not one of ok, error", s.Status)
	}
	return s, nil
}

// parseFields decodes a JSON object of log fields or span attributes; an
// empty input is no fields. Numbers stay json.Number so big integers keep
// their digits.
func parseFields(data []byte, what string) (map[string]any, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%s: not a JSON object: %w", what, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%s: trailing data after the JSON object", what)
	}
	return m, nil
}

// decodeStrict decodes one JSON object, refusing unknown keys (a misspelt
// key would otherwise be silently ignored) and trailing data.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("invalid JSON: %w", err)
	}
	if dec.More() {
		return errors.New("invalid JSON: trailing data after the object")
	}
	return nil
}
