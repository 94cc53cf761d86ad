package worker

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
	"github.com/taskerhq/tasker/internal/db"
	"github.com/taskerhq/tasker/internal/queue"
	"github.com/taskerhq/tasker/internal/tracing"
)

// maxResultBatch bounds one flush of results.
const maxResultBatch = 64

// errSubmitterStopped is returned to a submission made after the worker's
// result submitter stopped (it cannot happen while Run waits for handlers).
var errSubmitterStopped = errors.New("result submitter stopped")

// pendingResult is one step's result waiting for its batch to commit.
type pendingResult struct {
	ctx  context.Context
	sub  db.StepResultSubmission
	done chan error
}

// submit hands a step's result to the submitter and waits until the batch
// holding it is committed: a result is acknowledged only once durable.
func (w *Worker) submit(ctx context.Context, sub db.StepResultSubmission) error {
	p := &pendingResult{ctx: ctx, sub: sub, done: make(chan error, 1)}
	select {
	case w.results <- p:
	case <-w.submitterDone:
		return errSubmitterStopped
	}
	return <-p.done
}

// submitLoop writes results group-commit style: when nothing is being
// written a result is flushed at once (no added latency when idle); while a
// flush is in flight the next results queue up and go together in the next
// one (one statement, one commit, one wake-up for all of them). It returns
// when stop is closed and every queued result is written.
func (w *Worker) submitLoop(ctx context.Context, stop <-chan struct{}) {
	defer close(w.submitterDone)
	batch := make([]*pendingResult, 0, maxResultBatch)
	for {
		select {
		case p := <-w.results:
			batch = append(batch[:0], p)
		case <-stop:
			// Handlers have all returned: whatever is queued is the last.
			for {
				select {
				case p := <-w.results:
					w.flush(ctx, []*pendingResult{p})
				default:
					return
				}
			}
		}
	fill:
		for len(batch) < maxResultBatch {
			select {
			case p := <-w.results:
				batch = append(batch, p)
			default:
				break fill
			}
		}
		w.flush(ctx, batch)
	}
}

// flush writes one batch, retrying a failed write with backoff, and wakes
// orchestration once for the whole batch.
func (w *Worker) flush(ctx context.Context, batch []*pendingResult) {
	subs := make([]db.StepResultSubmission, len(batch))
	for i, p := range batch {
		subs[i] = p.sub
	}
	var out []db.SubmittedResult
	var err error
	start := time.Now()
	for attempt := range 5 {
		// The batch statement has no trace of its own: each step records
		// its part below, in its own trace.
		out, err = w.funcs.SubmitStepResults(tracing.Suppress(ctx), w.pool, w.cfg.ID, queue.StepResults, subs)
		if err == nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(50<<attempt) * time.Millisecond):
			continue
		}
		break
	}
	end := time.Now()
	w.obs.resultsFlushed(batch, start, end, err)
	if err != nil {
		for _, p := range batch {
			p.done <- err
		}
		return
	}
	msgIDs := make(map[uuid.UUID]int64, len(out))
	for _, o := range out {
		msgIDs[o.StepUUID] = o.MsgID
	}
	var ids []int64
	for _, p := range batch {
		if id := msgIDs[p.sub.StepUUID]; id != 0 {
			ids = append(ids, id)
		} else {
			w.obs.resultDiscarded(p.ctx, p.sub.StepUUID, p.sub.Attempt)
		}
	}
	if len(ids) > 0 {
		// After the commit, so notifying commits do not serialise; a lost
		// wake-up is found by orchestration's fallback poller. One statement
		// wakes orchestration for every message of the batch; the trace
		// context travels in each message's stored headers.
		if nerr := w.qc.Notify(tracing.Suppress(ctx), w.pool, queue.StepResults, ids, nil); nerr != nil {
			w.log.WarnContext(ctx, "notifying orchestration failed; its poller will find the results", "error", nerr)
		}
	}
	for _, p := range batch {
		p.done <- nil
	}
}
