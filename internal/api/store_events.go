package api

import (
	"context"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/client"
	"github.com/taskerhq/tasker/internal/db"
)

// WithSignals makes the store's WatchTask answer from sig, which the
// process's NOTIFY listener feeds; without it WatchTask cannot tell.
func (s *Store) WithSignals(sig *TaskSignals) *Store {
	s.signals = sig
	return s
}

// WatchTask implements Backend.
func (s *Store) WatchTask(id uuid.UUID) (<-chan struct{}, func()) {
	if s.signals == nil {
		return nil, func() {}
	}
	return s.signals.Subscribe(id)
}

// TaskHistory implements Backend.
func (s *Store) TaskHistory(ctx context.Context, id uuid.UUID, after HistoryCursor) ([]client.TaskEvent, HistoryCursor, error) {
	if after == (HistoryCursor{}) {
		// Only the first read tells a missing task from one without news.
		if _, err := db.GetTask(ctx, s.pool, id); err != nil {
			return nil, after, err
		}
	}
	rows, err := db.TaskHistoryAfter(ctx, s.pool, id, after.Task, after.Step)
	if err != nil {
		return nil, after, err
	}
	out := make([]client.TaskEvent, len(rows))
	for i, r := range rows {
		ev := client.TaskEvent{Kind: "task", TaskUUID: id,
			Transition: client.Transition{From: r.From, To: r.To, Reason: r.Reason, At: r.At, Meta: r.Meta}}
		if r.Step {
			step := r.StepUUID
			ev.Kind, ev.StepUUID, ev.StepName = "step", &step, r.StepName
			after.Step = max(after.Step, r.ID)
		} else {
			after.Task = max(after.Task, r.ID)
		}
		out[i] = ev
	}
	return out, after, nil
}
