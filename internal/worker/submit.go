package worker

import (
	"context"
	"time"

	"github.com/taskerhq/tasker/internal/db"
)

// submit writes a step's result and acknowledges its message in one durable
// statement, then wakes orchestration.

func (w *Worker) submit(ctx context.Context, sub db.StepResultSubmission) error {
	var err error
	for attempt := range 5 {
		var ok bool
		var id int64
		id, ok, err = w.funcs.SubmitStepResult(ctx, w.pool, sub)
		if err == nil {
			if !ok {
				w.obs.resultDiscarded(ctx, sub.StepUUID, sub.Attempt)
				return nil
			}
			if sub.DeferNotify {
				// After the commit, so notifying commits do not serialise;
				// a lost wake-up is found by orchestration's fallback poller.
				if nerr := w.qc.Notify(ctx, w.pool, sub.ResultQueue, []int64{id}, sub.Headers); nerr != nil {
					w.log.WarnContext(ctx, "notifying orchestration failed; its poller will find the result", "error", nerr)
				}
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(50<<attempt) * time.Millisecond):
		}
	}
	return err
}
