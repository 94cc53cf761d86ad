package bench

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
)

// Completion methods.
const (
	// CompletionHook takes the completion time in-process from the
	// orchestrator's task.completed / task.failed lifecycle records, which it
	// emits right after the finalizing transaction commits.
	CompletionHook = "hook"
	// CompletionPoll reads the task's state on a dedicated connection every
	// PollInterval.
	CompletionPoll = "poll"
)

// Lifecycle events the orchestrator logs once a task reached a final state
// (internal/orchestration finalizeTask).
const (
	eventTaskCompleted = "task.completed"
	eventTaskFailed    = "task.failed"
)

// tracker remembers when each task's final transaction committed, as the
// orchestrator reports it through its logger.
type tracker struct {
	mu    sync.Mutex
	tasks map[uuid.UUID]*finish
}

type finish struct {
	done chan struct{}
	at   time.Time
}

func newTracker() *tracker { return &tracker{tasks: map[uuid.UUID]*finish{}} }

func (t *tracker) entry(id uuid.UUID) *finish {
	f, ok := t.tasks[id]
	if !ok {
		f = &finish{done: make(chan struct{})}
		t.tasks[id] = f
	}
	return f
}

// finished records that task id reached a final state now. Only the first
// report counts.
func (t *tracker) finished(id uuid.UUID, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.entry(id)
	if f.at.IsZero() {
		f.at = at
		close(f.done)
	}
}

// watch returns the entry of task id; its done channel closes when the task
// finishes, which may already have happened.
func (t *tracker) watch(id uuid.UUID) *finish {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.entry(id)
}

func (t *tracker) forget(id uuid.UUID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.tasks, id)
}

// hookHandler passes records on to inner as inner's level allows, and
// reports task completions to the tracker whatever the level.
type hookHandler struct {
	inner slog.Handler
	t     *tracker
}

func (h hookHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelInfo || h.inner.Enabled(ctx, l)
}

func (h hookHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelInfo {
		at := time.Now()
		var event string
		var task uuid.UUID
		r.Attrs(func(a slog.Attr) bool {
			switch a.Key {
			case "event":
				event = a.Value.String()
			case "task_uuid":
				if id, ok := a.Value.Any().(uuid.UUID); ok {
					task = id
				}
			}
			return true
		})
		if (event == eventTaskCompleted || event == eventTaskFailed) && task != uuid.Nil {
			h.t.finished(task, at)
		}
	}
	if h.inner.Enabled(ctx, r.Level) {
		return h.inner.Handle(ctx, r)
	}
	return nil
}

func (h hookHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return hookHandler{inner: h.inner.WithAttrs(attrs), t: h.t}
}

func (h hookHandler) WithGroup(name string) slog.Handler {
	return hookHandler{inner: h.inner.WithGroup(name), t: h.t}
}
