package engine_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/taskerhq/tasker/internal/base"
	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/orchestration"
	"github.com/taskerhq/tasker/internal/state"
	"github.com/taskerhq/tasker/internal/worker"
)

// TestDelayedTaskStartsAtItsRunAt creates a task delayed 2s in a process
// that runs no orchestrator loops (as an API-only process would), then starts
// an orchestrator whose readiness poll ticks once a minute: the task must not
// start before its run_at, and it must finish long before the next tick,
// because the orchestrator wakes its poll at the earliest run_at it reads.
func TestDelayedTaskStartsAtItsRunAt(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	creator, err := orchestration.New(b.pool, orchestration.Config{Telemetry: base.Telemetry{Logger: testLogger(t)}})
	require.NoError(t, err)
	req := newRequest(t, "linear_workflow/mathematical_sequence", map[string]any{"even_number": 2})
	req.Delay = "2s"
	created, err := creator.CreateTask(ctx, req)
	require.NoError(t, err)
	require.Equal(t, state.TaskWaitingForDependencies, created.State)

	sub, err := orchestration.New(b.pool, orchestration.Config{Telemetry: base.Telemetry{Logger: testLogger(t)}})
	require.NoError(t, err)
	e, err := engine.Start(ctx, engine.Config{Pool: b.pool, Telemetry: base.Telemetry{Logger: testLogger(t)},
		Orchestration: &orchestration.Config{ReadinessInterval: time.Minute, FallbackInterval: 200 * time.Millisecond},
		Worker: &worker.Config{Namespaces: allNamespaces(b), Dispatcher: worker.RegistryDispatcher{Registry: b.registry},
			PollInterval: 100 * time.Millisecond, Submitter: sub}})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, e.Stop()) })

	final := waitTerminal(t, e.Backend(), created.TaskUUID, 30*time.Second)
	require.Equal(t, "complete", final.State)

	var runAt, leftWaiting, firstEnqueued time.Time
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT run_at FROM tasker.tasks WHERE task_uuid = $1`, created.TaskUUID).Scan(&runAt))
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT min(created_at) FROM tasker.task_transitions
		WHERE task_uuid = $1 AND from_state = 'waiting_for_dependencies'`, created.TaskUUID).Scan(&leftWaiting))
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT min(created_at) FROM tasker.workflow_step_transitions
		WHERE task_uuid = $1 AND to_state = 'enqueued'`, created.TaskUUID).Scan(&firstEnqueued))
	require.False(t, leftWaiting.Before(runAt), "task left waiting_for_dependencies at %s, before its run_at %s", leftWaiting, runAt)
	require.False(t, firstEnqueued.Before(runAt), "first step enqueued at %s, before the task's run_at %s", firstEnqueued, runAt)
}

// TestDelayedTasksStayOutOfTheReadinessPoll: tasks delayed into the future,
// however high their priority, neither fill the poll's bounded scan of
// waiting tasks (an undelayed waiting task with ready steps is still found)
// nor are read by it; once a delayed task's run_at has come it is found.
func TestDelayedTasksStayOutOfTheReadinessPoll(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	svc, err := orchestration.New(b.pool, orchestration.Config{Telemetry: base.Telemetry{Logger: testLogger(t)}})
	require.NoError(t, err)
	create := func(priority int) uuid.UUID {
		req := newRequest(t, "single_workflow/single_step", map[string]any{"even_number": 2})
		req.Delay, req.Priority = "1h", priority
		c, err := svc.CreateTask(ctx, req)
		require.NoError(t, err)
		require.Equal(t, state.TaskWaitingForDependencies, c.State)
		return c.TaskUUID
	}
	var delayed []uuid.UUID
	for range 3 {
		delayed = append(delayed, create(100))
	}
	// A waiting task with ready steps and no delay: what the poll's safety
	// net over waiting_for_dependencies exists for.
	waiting := create(0)
	_, err = b.pool.Exec(ctx, `UPDATE tasker.tasks SET run_at = NULL WHERE task_uuid = $1`, waiting)
	require.NoError(t, err)
	_, err = b.pool.Exec(ctx, `UPDATE tasker.workflow_steps SET next_retry_at = now() WHERE task_uuid = $1`, waiting)
	require.NoError(t, err)

	found := func(limit int) []uuid.UUID {
		ready, err := svc.Funcs().GetNextReadyTasks(ctx, b.pool, limit)
		require.NoError(t, err)
		var ids []uuid.UUID
		for _, r := range ready {
			ids = append(ids, r.TaskUUID)
		}
		return ids
	}
	// A limit of 1 scans two waiting tasks of each kind: by priority alone,
	// both would be delayed ones.
	require.Equal(t, []uuid.UUID{waiting}, found(1))

	_, err = b.pool.Exec(ctx, `UPDATE tasker.tasks SET run_at = now() WHERE task_uuid = $1`, delayed[1])
	require.NoError(t, err)
	_, err = b.pool.Exec(ctx, `UPDATE tasker.workflow_steps SET next_retry_at = now() WHERE task_uuid = $1`, delayed[1])
	require.NoError(t, err)
	require.ElementsMatch(t, []uuid.UUID{waiting, delayed[1]}, found(10))
}
