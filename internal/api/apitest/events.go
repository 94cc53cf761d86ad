package apitest

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/client"
	"github.com/taskerhq/tasker/internal/api"
)

// WatchTask implements api.Backend: the backend signals a task's watchers
// whenever a test or an operation changes it (PutTask, Update, cancel…).
func (b *Backend) WatchTask(id uuid.UUID) (<-chan struct{}, func()) {
	return b.signals.Subscribe(id)
}

// Update runs f on the stored task under the lock and wakes its watchers,
// as a state change in the engine does.
func (b *Backend) Update(id uuid.UUID, f func(*client.Task)) {
	b.mu.Lock()
	if t, ok := b.tasks[id]; ok {
		f(t)
	}
	b.mu.Unlock()
	b.signals.Notify(id.String())
}

// TaskHistory implements api.Backend over the stored transitions: the
// cursor counts the task's transitions and its steps' (in step order).
func (b *Backend) TaskHistory(_ context.Context, id uuid.UUID, after api.HistoryCursor) ([]client.TaskEvent, api.HistoryCursor, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.errs["TaskHistory"]; err != nil {
		return nil, after, err
	}
	t, ok := b.tasks[id]
	if !ok {
		return nil, after, fmt.Errorf("task %s: %w", id, api.ErrNotFound)
	}
	var out []client.TaskEvent
	for i := int(after.Task); i < len(t.Transitions); i++ {
		out = append(out, client.TaskEvent{Kind: "task", TaskUUID: id, Transition: t.Transitions[i]})
	}
	after.Task = int64(len(t.Transitions))
	n := int64(0)
	for _, s := range b.steps[id] {
		for _, tr := range s.Transitions {
			n++
			if n > after.Step {
				step := s.StepUUID
				out = append(out, client.TaskEvent{Kind: "step", TaskUUID: id, StepUUID: &step, StepName: s.Name, Transition: tr})
			}
		}
	}
	after.Step = max(after.Step, n)
	return out, after, nil
}
