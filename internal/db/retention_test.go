package db_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/taskerhq/tasker/internal/db"
	"github.com/taskerhq/tasker/internal/state"
)

// finishedAt builds a task in st with one step and a history row for each,
// completed at `at` (when st is terminal).
func (e *env) finishedAt(t *testing.T, st state.Task, at time.Time) *dag {
	t.Helper()
	ctx := context.Background()
	d := e.build(t, taskSpec{State: string(st)}, stepSpec{Name: "only", State: "complete"})
	_, err := e.pool.Exec(ctx, `UPDATE tasker.tasks SET completed_at = CASE WHEN completed_at IS NOT NULL THEN $2::timestamptz END
		WHERE task_uuid = $1`, d.Task, at)
	require.NoError(t, err)
	_, err = e.pool.Exec(ctx, `INSERT INTO tasker.task_transitions (task_uuid, to_state) VALUES ($1, $2)`, d.Task, string(st))
	require.NoError(t, err)
	_, err = e.pool.Exec(ctx, `INSERT INTO tasker.workflow_step_transitions (workflow_step_uuid, task_uuid, to_state)
		VALUES ($1, $2, 'complete')`, d.id(t, "only"), d.Task)
	require.NoError(t, err)
	return d
}

// rowsOf counts what is left of a task in each table that holds it.
func rowsOf(t *testing.T, q db.Querier, task uuid.UUID) (n int) {
	t.Helper()
	require.NoError(t, q.QueryRow(context.Background(), `SELECT
		(SELECT count(*) FROM tasker.tasks WHERE task_uuid = $1) +
		(SELECT count(*) FROM tasker.workflow_steps WHERE task_uuid = $1) +
		(SELECT count(*) FROM tasker.task_transitions WHERE task_uuid = $1) +
		(SELECT count(*) FROM tasker.workflow_step_transitions WHERE task_uuid = $1)`, task).Scan(&n))
	return n
}

func TestPruneTasks(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	cutoff := dbNow(t, e.pool).Add(-time.Hour)
	var old []*dag
	for i, st := range []state.Task{state.TaskComplete, state.TaskError, state.TaskCancelled, state.TaskResolvedManually} {
		old = append(old, e.finishedAt(t, st, cutoff.Add(-time.Duration(4-i)*time.Minute)))
	}
	recent := e.finishedAt(t, state.TaskComplete, cutoff.Add(time.Minute))
	running := e.finishedAt(t, state.TaskStepsInProcess, cutoff.Add(-24*time.Hour))
	// A task another transaction holds is skipped, not waited for.
	held := e.finishedAt(t, state.TaskComplete, cutoff.Add(-time.Hour))
	tx, err := e.pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	_, err = tx.Exec(ctx, `SELECT 1 FROM tasker.tasks WHERE task_uuid = $1 FOR UPDATE`, held.Task)
	require.NoError(t, err)

	// Oldest first, a batch at a time.
	n, err := e.funcs.PruneTasks(ctx, e.pool, db.PruneParams{Before: cutoff, Limit: 3})
	require.NoError(t, err)
	require.EqualValues(t, 3, n)
	for _, d := range old[:3] {
		require.Zero(t, rowsOf(t, e.pool, d.Task), "task, steps and both histories go")
	}
	require.Equal(t, 4, rowsOf(t, e.pool, old[3].Task))

	n, err = e.funcs.PruneTasks(ctx, e.pool, db.PruneParams{Before: cutoff, Limit: 3})
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
	require.Zero(t, rowsOf(t, e.pool, old[3].Task))
	for _, d := range []*dag{recent, running, held} {
		require.Equal(t, 4, rowsOf(t, e.pool, d.Task), "finished after the cutoff, unfinished, or held: kept")
	}

	require.NoError(t, tx.Rollback(ctx))
	n, err = e.funcs.PruneTasks(ctx, e.pool, db.PruneParams{Before: cutoff, Limit: 3})
	require.NoError(t, err)
	require.EqualValues(t, 1, n, "once released, the held task goes")
	require.Zero(t, rowsOf(t, e.pool, held.Task))
}

func TestPruneArchivedMessages(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	cutoff := dbNow(t, e.pool).Add(-time.Hour)
	archive := func(at time.Time) int64 {
		var id int64
		require.NoError(t, e.pool.QueryRow(ctx, `INSERT INTO tasker.queue_archive (msg_id, queue_name, read_ct, enqueued_at, archived_at, message)
			VALUES ((SELECT coalesce(max(msg_id), 0) + 1 FROM tasker.queue_archive), 'q', 1, $1, $1, '{}') RETURNING msg_id`, at).Scan(&id))
		return id
	}
	oldest, older, old := archive(cutoff.Add(-3*time.Minute)), archive(cutoff.Add(-2*time.Minute)), archive(cutoff.Add(-time.Minute))
	recent := archive(cutoff.Add(time.Minute))
	left := func() []int64 {
		rows, err := e.pool.Query(ctx, `SELECT msg_id FROM tasker.queue_archive ORDER BY msg_id`)
		require.NoError(t, err)
		var ids []int64
		for rows.Next() {
			var id int64
			require.NoError(t, rows.Scan(&id))
			ids = append(ids, id)
		}
		require.NoError(t, rows.Err())
		return ids
	}

	n, err := e.funcs.PruneArchivedMessages(ctx, e.pool, db.PruneParams{Before: cutoff, Limit: 2})
	require.NoError(t, err)
	require.EqualValues(t, 2, n)
	require.Equal(t, []int64{old, recent}, left(), "oldest first: %d and %d went", oldest, older)
	n, err = e.funcs.PruneArchivedMessages(ctx, e.pool, db.PruneParams{Before: cutoff, Limit: 2})
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
	require.Equal(t, []int64{recent}, left())
}
