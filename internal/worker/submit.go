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
func (w *Worker) submitLoop(ctx context.Context, stopping, stop <-chan struct{}) {
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
					w.flush(ctx, stopping, []*pendingResult{p})
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
		w.flush(ctx, stopping, batch)
	}
}

// flush writes one batch, retrying a failed write with backoff, and wakes
// orchestration once for the whole batch.
func (w *Worker) flush(ctx context.Context, stopping <-chan struct{}, batch []*pendingResult) {
	subs := make([]db.StepResultSubmission, len(batch))
	for i, p := range batch {
		subs[i] = p.sub
	}
	var out []db.SubmittedResult
	var err error
	start := time.Now()
	// A result that cannot be stored for want of the database is retried
	// for as long as the step may still be this worker's: the heartbeat
	// keeps its lease while the database answers, and a lost lease shows as
	// a discarded result once it does. Only a stopping worker gives up, once
	// the lease has surely expired (another worker then runs the step
	// again). Any other error is retried a few times.
	backoff := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		// The batch statement has no trace of its own: each step records
		// its part below, in its own trace.
		out, err = w.funcs.SubmitStepResults(tracing.Suppress(ctx), w.pool, w.cfg.ID, queue.StepResults, subs)
		if err == nil || !submitAgain(err, attempt, stopping, time.Since(start), w.cfg.Lease) || !sleepCtx(ctx, backoff) {
			break
		}
		backoff = min(2*backoff, 5*time.Second)
		if backoff == 5*time.Second {
			w.log.WarnContext(ctx, "storing step results failed; retrying while their leases last", "results", len(batch), "error", err)
		}
	}
	if err != nil && len(batch) > 1 && !db.Unavailable(err) {
		// One result the database refuses must not fail the others
		// written with it: write them one by one.
		for _, p := range batch {
			w.flush(ctx, stopping, []*pendingResult{p})
		}
		return
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

// submitAgain decides whether a failed result write is tried again: while
// the database is unreachable, until the worker is stopping and the lease
// has expired; for any other error, up to five tries.
func submitAgain(err error, attempt int, stopping <-chan struct{}, elapsed, lease time.Duration) bool {
	if !db.Unavailable(err) {
		return attempt < 5
	}
	select {
	case <-stopping:
		return elapsed <= lease
	default:
		return true
	}
}

// sleepCtx waits d, or less when ctx ends first (then it reports false).
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
