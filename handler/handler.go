// Package handler is what step handler authors import: the Handler interface,
// the StepContext a handler receives and the Result it returns.
package handler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/client"
)

// Handler runs one step. It must honour ctx: the worker cancels it when the
// step's timeout elapses or the worker shuts down. A panic is recovered by the
// worker and fails the step (retried per the step's retry policy).
type Handler interface {
	Call(ctx context.Context, step *StepContext) Result
}

// Func adapts a plain function to Handler.
type Func func(ctx context.Context, step *StepContext) Result

// Call implements Handler.
func (f Func) Call(ctx context.Context, step *StepContext) Result { return f(ctx, step) }

// TaskSubmitter creates tasks from inside a handler (nested workflows).
type TaskSubmitter interface {
	SubmitTask(ctx context.Context, req client.TaskRequest) (uuid.UUID, error)
}

// StepContext is everything a handler knows about the step it runs.
type StepContext struct {
	TaskUUID            uuid.UUID
	StepUUID            uuid.UUID
	StepName            string
	Namespace           string
	TaskName            string
	TaskVersion         string
	CorrelationID       uuid.UUID
	ParentCorrelationID *uuid.UUID
	// Context is the task's input: always a JSON object.
	Context json.RawMessage
	// Inputs is the step's handler initialization from the template (JSON object, may be empty).
	Inputs json.RawMessage
	// DependencyResults maps every completed ancestor step's name to its result value.
	DependencyResults map[string]json.RawMessage
	// Attempt is 1 on the first run and counts every claim, including ones lost to a crashed worker.
	Attempt     int
	MaxAttempts int

	Submitter TaskSubmitter
}

// Input decodes key of the task context into v.
func (s *StepContext) Input(key string, v any) error {
	return decodeKey(s.Context, key, v, "task context")
}

// Init decodes key of the step's handler initialization into v.
func (s *StepContext) Init(key string, v any) error {
	return decodeKey(s.Inputs, key, v, "step inputs")
}

// DependencyResult decodes the result of the named ancestor step into v.
func (s *StepContext) DependencyResult(step string, v any) error {
	raw, ok := s.DependencyResults[step]
	if !ok {
		return fmt.Errorf("no result for dependency %q", step)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("decoding result of dependency %q: %w", step, err)
	}
	return nil
}

// IsRetry reports whether an earlier attempt of this step ran.
func (s *StepContext) IsRetry() bool { return s.Attempt > 1 }

// IsLastAttempt reports whether a failure now will not be retried.
func (s *StepContext) IsLastAttempt() bool { return s.Attempt >= s.MaxAttempts }

// ChildTask builds a request for a nested task whose parent correlation ID is
// this step's task's correlation ID.
func (s *StepContext) ChildTask(namespace, name, version string, taskContext any) (client.TaskRequest, error) {
	req, err := client.NewTaskRequest(namespace, name, version, taskContext)
	if err != nil {
		return req, err
	}
	parent := s.CorrelationID
	req.ParentCorrelationID = &parent
	return req, nil
}

// SubmitChildTask creates a nested task (see ChildTask) and returns its UUID.
func (s *StepContext) SubmitChildTask(ctx context.Context, req client.TaskRequest) (uuid.UUID, error) {
	if s.Submitter == nil {
		return uuid.Nil, errors.New("this worker cannot submit tasks")
	}
	if req.ParentCorrelationID == nil {
		parent := s.CorrelationID
		req.ParentCorrelationID = &parent
	}
	return s.Submitter.SubmitTask(ctx, req)
}

func decodeKey(obj json.RawMessage, key string, v any, what string) error {
	var m map[string]json.RawMessage
	if len(obj) > 0 {
		if err := json.Unmarshal(obj, &m); err != nil {
			return fmt.Errorf("decoding %s: %w", what, err)
		}
	}
	raw, ok := m[key]
	if !ok {
		return fmt.Errorf("%s has no key %q", what, key)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("decoding %s key %q: %w", what, key, err)
	}
	return nil
}

// Error types reported in Result.Error.Type by the worker itself.
const (
	ErrorTypePanic          = "handler_panic"
	ErrorTypeTimeout        = "handler_timeout"
	ErrorTypeUnknownHandler = "handler_not_found"
	ErrorTypeLeaseExpired   = "lease_expired"
	ErrorTypeRetryable      = "retryable_error"
	ErrorTypePermanent      = "permanent_error"
)

// StepError describes a failed attempt.
type StepError struct {
	Message   string `json:"message"`
	Type      string `json:"error_type"`
	Retryable bool   `json:"retryable"`
	Code      string `json:"error_code,omitempty"`
}

// Result is what a handler returns. Build it with Success, Retryable or Permanent.
type Result struct {
	Success  bool
	Value    any
	Error    *StepError
	Metadata map[string]any
}

// Success reports a completed step whose result is value (any JSON-encodable value).
func Success(value any) Result { return Result{Success: true, Value: value} }

// Retryable reports a failure that is retried while attempts remain.
func Retryable(err error) Result {
	return Result{Error: &StepError{Message: errString(err), Type: ErrorTypeRetryable, Retryable: true}}
}

// Permanent reports a failure that is never retried.
func Permanent(err error) Result {
	return Result{Error: &StepError{Message: errString(err), Type: ErrorTypePermanent}}
}

// Failure reports a failure with an explicit error type and code.
func Failure(errType, code, message string, retryable bool) Result {
	return Result{Error: &StepError{Message: message, Type: errType, Code: code, Retryable: retryable}}
}

// WithMetadata returns r with key set in its metadata.
func (r Result) WithMetadata(key string, value any) Result {
	m := make(map[string]any, len(r.Metadata)+1)
	for k, v := range r.Metadata {
		m[k] = v
	}
	m[key] = value
	r.Metadata = m
	return r
}

func errString(err error) string {
	if err == nil {
		return "unknown error"
	}
	return err.Error()
}

// Registry maps the handler names used in templates to handlers. It is safe
// for concurrent use.
type Registry struct {
	mu       sync.RWMutex
	handlers map[string]Handler
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{handlers: map[string]Handler{}} }

// Register adds h under name, replacing any earlier handler of that name.
func (r *Registry) Register(name string, h Handler) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.handlers[name] = h
}

// Lookup returns the handler registered under name.
func (r *Registry) Lookup(name string) (Handler, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	h, ok := r.handlers[name]
	return h, ok
}

// Has reports whether a handler is registered under name.
func (r *Registry) Has(name string) bool { _, ok := r.Lookup(name); return ok }

// Names lists the registered handler names, sorted.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := make([]string, 0, len(r.handlers))
	for n := range r.handlers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
