package engine_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/taskerhq/tasker/handler"
	"github.com/taskerhq/tasker/internal/worker"
)

// orderDispatcher records the tasks whose steps it runs, in order.
type orderDispatcher struct {
	inner worker.Dispatcher
	mu    sync.Mutex
	tasks []uuid.UUID
}

func (d *orderDispatcher) Dispatch(ctx context.Context, s *handler.StepContext, name string) (any, error) {
	d.mu.Lock()
	d.tasks = append(d.tasks, s.TaskUUID)
	d.mu.Unlock()
	return d.inner.Dispatch(ctx, s, name)
}

func (d *orderDispatcher) Has(name string) bool { return d.inner.Has(name) }

// A backlog is worked off by task priority, highest first and oldest first
// within a priority: a worker that starts after the backlog was queued
// claims it by polling, one step at a time at concurrency 1.
func TestBacklogRunsByPriority(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	o := b.start(t, engineOpts{orchestrate: true})
	byPriority := map[int][]uuid.UUID{}
	var all []uuid.UUID
	for i := range 12 {
		p := []int{0, 10, -5}[i%3]
		req := newRequest(t, "single_workflow/single_step", map[string]any{"even_number": 2})
		req.Priority = p
		c, err := o.Orchestrator.CreateTask(ctx, req)
		require.NoError(t, err)
		byPriority[p] = append(byPriority[p], c.TaskUUID)
		all = append(all, c.TaskUUID)
	}
	var want []uuid.UUID
	for _, p := range []int{10, 0, -5} {
		want = append(want, byPriority[p]...)
	}
	// Every step is queued, and old enough for the worker's poller (which
	// leaves younger messages to their wake-ups, and this worker was not
	// listening when they were sent).
	require.Eventually(t, func() bool {
		var n int
		require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FROM tasker.queue_messages
			WHERE queue_name = 'worker_single_workflow_queue' AND enqueued_at <= clock_timestamp() - interval '250 milliseconds'`).Scan(&n))
		return n == len(all)
	}, 30*time.Second, 20*time.Millisecond)

	d := &orderDispatcher{inner: worker.RegistryDispatcher{Registry: b.registry}}
	b.start(t, engineOpts{work: true, dispatcher: d, concurrency: 1, namespaces: []string{"single_workflow"}})
	for _, id := range all {
		require.Equal(t, "complete", waitTerminal(t, o.Backend(), id, 30*time.Second).State)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	require.Equal(t, want, d.tasks)
}
