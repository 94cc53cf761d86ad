// Package taskertest helps test step handlers and whole workflows: RunStep
// calls one handler with a synthetic StepContext the way a worker would, and
// RunTask runs a template to completion in-process against a real database.
package taskertest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taskerhq/tasker"
	"github.com/taskerhq/tasker/client"
	"github.com/taskerhq/tasker/handler"
	"github.com/taskerhq/tasker/template"
)

// StepOpts describes the step RunStep runs. Zero values mean: an empty task
// context and inputs, no dependency results, attempt 1 of 3, fresh UUIDs.
type StepOpts struct {
	Namespace, TaskName, StepName string
	// Context is the task context (encoded to JSON; must encode to an object).
	Context any
	// Inputs is the step's handler initialization from its template.
	Inputs any
	// DependencyResults maps ancestor step names to their results (encoded to JSON).
	DependencyResults map[string]any
	Attempt           int
	MaxAttempts       int
	CorrelationID     uuid.UUID
	// Submitter receives child tasks; default a *Submitter that records them.
	Submitter handler.TaskSubmitter
}

// StepResult is what one handler call produced, as the worker records it.
type StepResult struct {
	// Value is the result encoded as JSON (nil when the step failed).
	Value json.RawMessage
	// Metadata is what a handler.Output carried.
	Metadata map[string]any
	// Err is the classified failure, nil on success.
	Err *handler.Error
	// Step is the context the handler saw.
	Step *handler.StepContext
}

// Decode decodes the result value into v.
func (r StepResult) Decode(v any) error {
	if r.Err != nil {
		return fmt.Errorf("step failed: %w", r.Err)
	}
	return json.Unmarshal(r.Value, v)
}

// Retryable reports whether the step failed and would be retried.
func (r StepResult) Retryable() bool { return r.Err != nil && r.Err.Retryable }

// Permanent reports whether the step failed and would not be retried.
func (r StepResult) Permanent() bool { return r.Err != nil && !r.Err.Retryable }

// RunStep calls h once with the step opts describes, classifying its error
// and encoding its result as a worker does. It fails the test when opts
// cannot be encoded or the handler's result is not JSON-encodable.
func RunStep(t testing.TB, h handler.Handler, opts StepOpts) StepResult {
	t.Helper()
	sc, err := NewStepContext(opts)
	if err != nil {
		t.Fatalf("taskertest: %v", err)
	}
	v, herr := h.Handle(context.Background(), sc)
	out := StepResult{Step: sc, Err: handler.Classify(herr)}
	if herr != nil {
		return out
	}
	switch o := v.(type) {
	case handler.Output:
		v, out.Metadata = o.Value, o.Metadata
	case *handler.Output:
		if o != nil {
			v, out.Metadata = o.Value, o.Metadata
		}
	}
	if out.Value, err = json.Marshal(v); err != nil {
		t.Fatalf("taskertest: the handler's result is not JSON-encodable: %v", err)
	}
	return out
}

// NewStepContext builds the StepContext a worker would hand a handler.
func NewStepContext(opts StepOpts) (*handler.StepContext, error) {
	taskCtx, err := encodeObject(opts.Context, "context")
	if err != nil {
		return nil, err
	}
	inputs, err := encodeObject(opts.Inputs, "inputs")
	if err != nil {
		return nil, err
	}
	deps := make(map[string]json.RawMessage, len(opts.DependencyResults))
	for name, v := range opts.DependencyResults {
		if deps[name], err = json.Marshal(v); err != nil {
			return nil, fmt.Errorf("encoding dependency result %q: %w", name, err)
		}
	}
	sc := &handler.StepContext{
		TaskUUID: uuid.Must(uuid.NewV7()), StepUUID: uuid.Must(uuid.NewV7()),
		Namespace: opts.Namespace, TaskName: opts.TaskName, StepName: opts.StepName, TaskVersion: "0.0.0",
		CorrelationID: opts.CorrelationID, Context: taskCtx, Inputs: inputs, DependencyResults: deps,
		Attempt: max(opts.Attempt, 1), MaxAttempts: opts.MaxAttempts,
	}
	if sc.CorrelationID == uuid.Nil {
		sc.CorrelationID = uuid.Must(uuid.NewV7())
	}
	if sc.MaxAttempts == 0 {
		sc.MaxAttempts = max(template.DefaultMaxAttempts, sc.Attempt)
	}
	sub := opts.Submitter
	if sub == nil {
		sub = &Submitter{}
	}
	sc.SetTaskSubmitter(sub)
	return sc, nil
}

func encodeObject(v any, what string) (json.RawMessage, error) {
	if v == nil {
		return json.RawMessage(`{}`), nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encoding %s: %w", what, err)
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(b, &obj) != nil || obj == nil {
		return nil, fmt.Errorf("%s must encode to a JSON object, got %s", what, b)
	}
	return b, nil
}

// Submitter records the child tasks handlers submit, answering each with a
// new UUID. It is safe for concurrent use.
type Submitter struct {
	mu   sync.Mutex
	reqs []client.TaskRequest
}

// SubmitTask implements handler.TaskSubmitter.
func (s *Submitter) SubmitTask(_ context.Context, req client.TaskRequest) (uuid.UUID, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reqs = append(s.reqs, req)
	return uuid.Must(uuid.NewV7()), nil
}

// Requests returns the submitted requests in order.
func (s *Submitter) Requests() []client.TaskRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]client.TaskRequest(nil), s.reqs...)
}

// TaskOpts tunes RunTask. Zero values mean the documented defaults.
type TaskOpts struct {
	// Timeout bounds the wait for the task to end. Default 30s.
	Timeout time.Duration
	// Templates are registered as well, e.g. the templates of child tasks.
	Templates []*template.Template
}

// TaskRun is a task RunTask ran to its end.
type TaskRun struct {
	Task  *client.Task
	Steps map[string]client.Step
}

// StepResult decodes the result of the named step into v.
func (r *TaskRun) StepResult(name string, v any) error {
	s, ok := r.Steps[name]
	if !ok {
		return fmt.Errorf("task has no step %q", name)
	}
	if s.State != "complete" && s.State != "resolved_manually" {
		return fmt.Errorf("step %q ended %s, not complete", name, s.State)
	}
	return json.Unmarshal(s.Result, v)
}

// RunTask registers tpl (and opts.Templates), runs a worker with handlers and
// an orchestrator on pool, creates a task of tpl with taskContext and waits
// until it is complete or in error. The database is migrated first. It fails
// the test when the task does not end within opts.Timeout.
func RunTask(t testing.TB, pool *pgxpool.Pool, tpl *template.Template, handlers *handler.Registry, taskContext any, opts *TaskOpts) *TaskRun {
	t.Helper()
	if opts == nil {
		opts = &TaskOpts{}
	}
	timeout := opts.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	run, err := runTask(ctx, pool, tpl, handlers, taskContext, opts.Templates)
	if err != nil {
		t.Fatalf("taskertest: %v", err)
	}
	return run
}

func runTask(ctx context.Context, pool *pgxpool.Pool, tpl *template.Template, handlers *handler.Registry, taskContext any, more []*template.Template) (_ *TaskRun, err error) {
	if err := tasker.Migrate(ctx, pool); err != nil {
		return nil, err
	}
	c, err := tasker.NewClient(pool, &tasker.Config{
		Templates: append([]*template.Template{tpl}, more...), Handlers: handlers,
		Worker:        &tasker.WorkerConfig{PollInterval: 100 * time.Millisecond},
		Orchestration: &tasker.OrchestrationConfig{ReadinessInterval: 50 * time.Millisecond, FallbackInterval: 100 * time.Millisecond},
	})
	if err != nil {
		return nil, err
	}
	if err := c.Start(ctx); err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, c.Stop(context.WithoutCancel(ctx))) }()
	req, err := client.NewTaskRequest(tpl.Namespace, tpl.Name, tpl.Version, taskContext)
	if err != nil {
		return nil, err
	}
	created, err := c.CreateTask(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("creating task: %w", err)
	}
	for {
		task, err := c.GetTask(ctx, created.TaskUUID)
		if err != nil {
			return nil, fmt.Errorf("reading task: %w", err)
		}
		if task.Terminal() {
			steps, err := c.ListSteps(ctx, created.TaskUUID)
			if err != nil {
				return nil, fmt.Errorf("reading steps: %w", err)
			}
			run := &TaskRun{Task: task, Steps: make(map[string]client.Step, len(steps))}
			for _, s := range steps {
				run.Steps[s.Name] = s
			}
			return run, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("task %s still %s: %w", created.TaskUUID, task.State, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}
