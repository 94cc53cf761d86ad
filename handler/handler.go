// Package handler is what step handler authors import: the Handler interface,
// the StepContext a handler receives, error classification (Permanent,
// Retryable) and the Registry that maps the handler names used in templates
// to handlers.
//
// A handler returns the step's result (any JSON-encodable value) or an error.
// A plain error is retried while the step has attempts left; wrap it with
// Permanent to fail the step at once.
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
// step's timeout elapses, when the task is cancelled, or when the worker shuts
// down. A panic is recovered by the worker and fails the attempt (retried per
// the step's retry policy).
type Handler interface {
	Handle(ctx context.Context, step *StepContext) (any, error)
}

// Func adapts a plain function to Handler.
type Func func(ctx context.Context, step *StepContext) (any, error)

// Handle implements Handler.
func (f Func) Handle(ctx context.Context, step *StepContext) (any, error) { return f(ctx, step) }

// Typed adapts a function that takes the task context decoded into In and
// returns a result of type Out. A task context that does not decode into In
// fails the step permanently: retrying cannot change the task's input.
func Typed[In, Out any](fn func(ctx context.Context, step *StepContext, in In) (Out, error)) Handler {
	return Func(func(ctx context.Context, step *StepContext) (any, error) {
		var in In
		if len(step.Context) > 0 {
			if err := json.Unmarshal(step.Context, &in); err != nil {
				return nil, Permanent(fmt.Errorf("decoding task context: %w", err))
			}
		}
		return fn(ctx, step, in)
	})
}

// Output is a result with metadata: return it (or a pointer to it) from a
// handler to record metadata next to the step's result value.
type Output struct {
	Value    any
	Metadata map[string]any
}

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

	submitter TaskSubmitter
}

// SetTaskSubmitter sets what SubmitChildTask uses. The worker sets it on every
// step it runs; tests of handlers set a fake.
func (s *StepContext) SetTaskSubmitter(sub TaskSubmitter) { s.submitter = sub }

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

// Input returns key of the step's task context decoded as a T.
func Input[T any](s *StepContext, key string) (T, error) {
	var v T
	err := s.Input(key, &v)
	return v, err
}

// Init returns key of the step's handler initialization decoded as a T.
func Init[T any](s *StepContext, key string) (T, error) {
	var v T
	err := s.Init(key, &v)
	return v, err
}

// DependencyResult returns the result of the named ancestor step decoded as a T.
func DependencyResult[T any](s *StepContext, step string) (T, error) {
	var v T
	err := s.DependencyResult(step, &v)
	return v, err
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

// ErrNoSubmitter is returned by SubmitChildTask when the step runs where
// tasks cannot be created.
var ErrNoSubmitter = errors.New("this worker cannot submit tasks")

// SubmitChildTask creates a nested task (see ChildTask) and returns its UUID.
func (s *StepContext) SubmitChildTask(ctx context.Context, req client.TaskRequest) (uuid.UUID, error) {
	if s.submitter == nil {
		return uuid.Nil, ErrNoSubmitter
	}
	if req.ParentCorrelationID == nil {
		parent := s.CorrelationID
		req.ParentCorrelationID = &parent
	}
	return s.submitter.SubmitTask(ctx, req)
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

// Registry maps the handler names used in templates to handlers. It is safe
// for concurrent use.
type Registry struct {
	mu       sync.RWMutex
	handlers map[string]Handler
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{handlers: map[string]Handler{}} }

// ErrDuplicateHandler is returned by Register for a name already registered.
var ErrDuplicateHandler = errors.New("handler already registered")

// Register adds h under name. A name registered twice is an error, so two
// packages cannot silently replace each other's handlers.
func (r *Registry) Register(name string, h Handler) error {
	if name == "" {
		return errors.New("registering handler: empty name")
	}
	if h == nil {
		return fmt.Errorf("registering handler %q: nil handler", name)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.handlers[name]; ok {
		return fmt.Errorf("registering handler %q: %w", name, ErrDuplicateHandler)
	}
	r.handlers[name] = h
	return nil
}

// MustRegister is Register that panics on error, for registration at start-up.
func (r *Registry) MustRegister(name string, h Handler) {
	if err := r.Register(name, h); err != nil {
		panic(err)
	}
}

// RegisterFunc registers a plain function (see Func).
func (r *Registry) RegisterFunc(name string, fn func(ctx context.Context, step *StepContext) (any, error)) error {
	return r.Register(name, Func(fn))
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
