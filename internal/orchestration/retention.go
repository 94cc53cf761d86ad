package orchestration

import (
	"context"
	"fmt"
	"time"

	"github.com/taskerhq/tasker/internal/tracing"
)

// pruneLoop deletes what has outlived the retention every PruneInterval
// until ctx ends. Several orchestrators may prune at once: each batch skips
// the rows another one has locked.
func (s *Service) pruneLoop(ctx context.Context) {
	if s.cfg.Retention < 0 {
		return
	}
	tick := time.NewTicker(s.cfg.PruneInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if _, err := s.Prune(ctx, time.Now().Add(-s.cfg.Retention)); err != nil && ctx.Err() == nil {
			s.log.WarnContext(ctx, "pruning failed; the next round tries again", "operation", "prune", "error", err)
		}
	}
}

// Pruned counts what one Prune deleted.
type Pruned struct {
	Tasks, ArchivedMessages int64
}

// Prune deletes the tasks that finished before cutoff (with their steps,
// edges and histories) and the queue messages archived before it, in
// batches of PruneBatch, each its own short transaction, until none is left.
// A task that has not finished is never deleted, however old.
func (s *Service) Prune(ctx context.Context, cutoff time.Time) (Pruned, error) {
	ctx = tracing.Suppress(ctx)
	var out Pruned
	for {
		// Steps and edges go with their task (ON DELETE CASCADE); the
		// history tables have no foreign keys (see migration
		// hot_path_writes) and are deleted here.
		var n int64
		err := s.pool.QueryRow(ctx, `WITH d AS (
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
			SELECT count(*) FROM d`, cutoff, s.cfg.PruneBatch).Scan(&n)
		if err != nil {
			return out, fmt.Errorf("pruning tasks: %w", err)
		}
		out.Tasks += n
		s.m.Pruned(ctx, "tasks", n)
		if n < int64(s.cfg.PruneBatch) {
			break
		}
	}
	for {
		tag, err := s.pool.Exec(ctx, `DELETE FROM tasker.queue_archive WHERE msg_id IN (
				SELECT msg_id FROM tasker.queue_archive WHERE archived_at < $1
				ORDER BY archived_at LIMIT $2 FOR UPDATE SKIP LOCKED)`,
			cutoff, s.cfg.PruneBatch)
		if err != nil {
			return out, fmt.Errorf("pruning archived messages: %w", err)
		}
		n := tag.RowsAffected()
		out.ArchivedMessages += n
		s.m.Pruned(ctx, "queue_archive", n)
		if n < int64(s.cfg.PruneBatch) {
			break
		}
	}
	if out.Tasks > 0 || out.ArchivedMessages > 0 {
		s.log.InfoContext(ctx, "pruned finished tasks and archived messages", "operation", "prune", "event", "retention.pruned",
			"tasks", out.Tasks, "archived_messages", out.ArchivedMessages, "cutoff", cutoff)
	}
	return out, nil
}
