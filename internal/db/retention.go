package db

import (
	"context"
	"fmt"
	"time"
)

// The statements of retention: deleting what finished long enough ago, in
// small batches so each is a short transaction. Several orchestrators may
// prune at once: each batch skips the rows another one has locked.

// PruneParams selects one batch of rows to prune.
type PruneParams struct {
	// Before is the cutoff: only rows that finished (or were archived)
	// strictly before it go.
	Before time.Time
	// Limit bounds the rows one call deletes.
	Limit int
}

// PruneTasks deletes up to p.Limit finished tasks that completed before
// p.Before, oldest first, with their steps and edges (ON DELETE CASCADE)
// and their histories (which have no foreign keys, see migration
// hot_path_writes, so they are deleted here). A task that has not finished
// is never deleted, however old. It returns how many tasks it deleted.
func (f *Funcs) PruneTasks(ctx context.Context, q Querier, p PruneParams) (n int64, err error) {
	ctx, sc := f.in.Begin(ctx, Call{Function: "prune_tasks"})
	defer func() { sc.End(err) }()
	// The state list is spelled out, not tasker.task_state_is_terminal, so
	// that it matches the predicate of the partial index tasks_finished_idx
	// (migration retention) and the planner can use that index.
	err = q.QueryRow(ctx, `WITH d AS (
			DELETE FROM tasker.tasks WHERE task_uuid IN (
				SELECT task_uuid FROM tasker.tasks
				WHERE state IN ('complete', 'error', 'cancelled', 'resolved_manually') AND completed_at < $1
				ORDER BY completed_at LIMIT $2 FOR UPDATE SKIP LOCKED)
			RETURNING task_uuid
		), sh AS (
			DELETE FROM tasker.workflow_step_transitions h USING d WHERE h.task_uuid = d.task_uuid
		), th AS (
			DELETE FROM tasker.task_transitions h USING d WHERE h.task_uuid = d.task_uuid
		)
		SELECT count(*) FROM d`, p.Before, p.Limit).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("pruning tasks: %w", err)
	}
	return n, nil
}

// PruneArchivedMessages deletes up to p.Limit queue messages archived
// before p.Before, oldest first, and returns how many it deleted.
func (f *Funcs) PruneArchivedMessages(ctx context.Context, q Querier, p PruneParams) (n int64, err error) {
	ctx, sc := f.in.Begin(ctx, Call{Function: "prune_queue_archive"})
	defer func() { sc.End(err) }()
	tag, err := q.Exec(ctx, `DELETE FROM tasker.queue_archive WHERE msg_id IN (
			SELECT msg_id FROM tasker.queue_archive WHERE archived_at < $1
			ORDER BY archived_at LIMIT $2 FOR UPDATE SKIP LOCKED)`,
		p.Before, p.Limit)
	if err != nil {
		return 0, fmt.Errorf("pruning archived messages: %w", err)
	}
	return tag.RowsAffected(), nil
}
