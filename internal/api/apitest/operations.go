package apitest

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/client"
	"github.com/taskerhq/tasker/internal/api"
	"github.com/taskerhq/tasker/internal/taskreq"
)

func conflict(field, format string, args ...any) error {
	return &taskreq.FieldError{Field: field, Code: client.CodeStateConflict, Kind: taskreq.Conflict, Message: fmt.Sprintf(format, args...)}
}

// operate runs fn on the stored task under the lock and returns a copy.
func (b *Backend) operate(method string, id uuid.UUID, fn func(t *client.Task, steps []client.Step) error) (*client.Task, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.errs[method]; err != nil {
		return nil, err
	}
	t, ok := b.tasks[id]
	if !ok {
		return nil, fmt.Errorf("task %s: %w", id, api.ErrNotFound)
	}
	if err := fn(t, b.steps[id]); err != nil {
		return nil, err
	}
	b.signals.Notify(id.String())
	out := *t
	return &out, nil
}

func (b *Backend) move(t *client.Task, to, reason string) {
	now := time.Now().UTC()
	t.Transitions = append(t.Transitions, client.Transition{From: t.State, To: to, Reason: reason, At: now})
	t.State, t.UpdatedAt = to, now
}

// CancelTask implements api.Backend: an unfinished task and its unfinished
// steps become cancelled (children are not followed).
func (b *Backend) CancelTask(_ context.Context, id uuid.UUID, req client.CancelRequest) (*client.Task, error) {
	return b.operate("CancelTask", id, func(t *client.Task, steps []client.Step) error {
		switch {
		case t.State == "cancelled":
			return nil
		case t.Terminal():
			return conflict("task_uuid", "task %s is %s: only an unfinished task can be cancelled", id, t.State)
		}
		b.move(t, "cancelled", "cancelled")
		for i := range steps {
			switch steps[i].State {
			case "complete", "error", "resolved_manually", "cancelled":
			default:
				steps[i].State = "cancelled"
			}
		}
		return nil
	})
}

// RetryTask implements api.Backend: a task in error goes back to
// waiting_for_dependencies and its failed steps to pending.
func (b *Backend) RetryTask(_ context.Context, id uuid.UUID, _ client.RetryRequest) (*client.Task, error) {
	return b.operate("RetryTask", id, func(t *client.Task, steps []client.Step) error {
		if t.State != "error" {
			return conflict("task_uuid", "task %s is %s: only a task in error can be retried", id, t.State)
		}
		b.move(t, "waiting_for_dependencies", "operator_retry")
		for i := range steps {
			if steps[i].State == "error" {
				steps[i].State, steps[i].Error = "pending", nil
			}
		}
		return nil
	})
}

// ResolveStep implements api.Backend: a step in error becomes
// resolved_manually with the result.
func (b *Backend) ResolveStep(_ context.Context, id uuid.UUID, step string, req client.ResolveRequest) (*client.Task, error) {
	return b.operate("ResolveStep", id, func(t *client.Task, steps []client.Step) error {
		for i := range steps {
			if steps[i].Name != step && steps[i].StepUUID.String() != step {
				continue
			}
			if steps[i].State != "error" {
				return conflict("step", "step %s is %s: only a step in error can be resolved", steps[i].Name, steps[i].State)
			}
			steps[i].State, steps[i].Result, steps[i].Error = "resolved_manually", req.Result, nil
			if t.State == "error" {
				b.move(t, "waiting_for_dependencies", "step_resolved")
			}
			return nil
		}
		return &taskreq.FieldError{Field: "step", Code: client.CodeNotFound, Kind: taskreq.NotFound,
			Message: fmt.Sprintf("task %s has no step %q", id, step)}
	})
}
