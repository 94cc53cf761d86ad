package orchestration

import (
	"context"
	"time"

	"github.com/taskerhq/tasker/internal/db"
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
	batch := db.PruneParams{Before: cutoff, Limit: s.cfg.PruneBatch}
	for {
		n, err := s.funcs.PruneTasks(ctx, s.pool, batch)
		if err != nil {
			return out, err
		}
		out.Tasks += n
		s.m.Pruned(ctx, "tasks", n)
		if n < int64(s.cfg.PruneBatch) {
			break
		}
	}
	for {
		n, err := s.funcs.PruneArchivedMessages(ctx, s.pool, batch)
		if err != nil {
			return out, err
		}
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
