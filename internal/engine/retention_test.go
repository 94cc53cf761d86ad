package engine_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/taskerhq/tasker/internal/queue"
)

// TestPruningUnderLoadLosesNoLiveTask prunes with a retention of zero (every
// finished task is fair game) over and over while tasks are created and run.
// Every task must still finish (a deleted live task never would: its steps
// would be gone), tasks are deleted only once finished, and the pruner must
// have deleted some while others were running.
func TestPruningUnderLoadLosesNoLiveTask(t *testing.T) {
	t.Parallel()
	b := setup(t)
	e := b.start(t, engineOpts{orchestrate: true, work: true})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	// Every task announces its end on the terminal channel; record them.
	conn, err := pgx.Connect(ctx, b.pool.Config().ConnString())
	require.NoError(t, err)
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, "LISTEN "+queue.TaskTerminalChannel)
	require.NoError(t, err)

	const n = 40
	created := make(chan uuid.UUID, n)
	go func() {
		defer close(created)
		for i := range n {
			ref := []string{"linear_workflow/mathematical_sequence", "diamond_workflow/diamond_pattern", "single_workflow/single_step"}[i%3]
			c, err := e.Orchestrator.CreateTask(ctx, newRequest(t, ref, map[string]any{"even_number": 2}))
			if err != nil {
				t.Errorf("creating task %d: %v", i, err)
				return
			}
			created <- c.TaskUUID
		}
	}()

	var mu sync.Mutex
	var prunedWhileBusy, prunedTotal int64
	pruneDone := make(chan struct{})
	stopPruning := make(chan struct{})
	go func() {
		defer close(pruneDone)
		for {
			select {
			case <-stopPruning:
				return
			default:
			}
			var live int
			if err := b.pool.QueryRow(ctx, `SELECT count(*) FROM tasker.tasks
				WHERE state NOT IN ('complete', 'error', 'cancelled', 'resolved_manually')`).Scan(&live); err != nil {
				return
			}
			p, err := e.Orchestrator.Prune(ctx, time.Now())
			if err != nil {
				t.Errorf("pruning: %v", err)
				return
			}
			mu.Lock()
			prunedTotal += p.Tasks
			if live > 0 {
				prunedWhileBusy += p.Tasks
			}
			mu.Unlock()
		}
	}()

	ids := map[uuid.UUID]bool{}
	for id := range created {
		ids[id] = false
	}
	require.Len(t, ids, n)
	finished := 0
	for finished < n {
		note, err := conn.WaitForNotification(ctx)
		require.NoError(t, err, "%d of %d tasks finished; a live task was lost?", finished, n)
		id, err := uuid.Parse(note.Payload)
		require.NoError(t, err)
		if done, ok := ids[id]; ok && !done {
			ids[id] = true
			finished++
		}
	}
	close(stopPruning)
	<-pruneDone
	// Whatever the pruner has not reached yet finished too.
	var unfinished int
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FROM tasker.tasks
		WHERE state NOT IN ('complete', 'error', 'cancelled', 'resolved_manually')`).Scan(&unfinished))
	require.Zero(t, unfinished)
	p, err := e.Orchestrator.Prune(ctx, time.Now())
	require.NoError(t, err)
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, int64(n), prunedTotal+p.Tasks, "every task was pruned once, after it finished")
	require.Positive(t, prunedWhileBusy, "pruning ran while tasks were live")
	var left int
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM tasker.tasks) + (SELECT count(*) FROM tasker.workflow_steps)
		+ (SELECT count(*) FROM tasker.task_transitions) + (SELECT count(*) FROM tasker.workflow_step_transitions)`).Scan(&left))
	require.Zero(t, left, "steps and histories go with their tasks")
}
