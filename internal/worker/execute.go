package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/google/uuid"
	"github.com/taskerhq/tasker/handler"
	"github.com/taskerhq/tasker/internal/db"
	"github.com/taskerhq/tasker/internal/messages"
	"github.com/taskerhq/tasker/internal/queue"
)

// outcome is what one attempt of a step produced.
type outcome struct {
	value    any
	metadata map[string]any
	err      *handler.Error // nil on success
}

// outcomeOf turns a handler's return values into an outcome.
func outcomeOf(v any, err error) outcome {
	if err != nil {
		return outcome{err: handler.Classify(err)}
	}
	switch o := v.(type) {
	case handler.Output:
		return outcome{value: o.Value, metadata: o.Metadata}
	case *handler.Output:
		if o == nil {
			return outcome{}
		}
		return outcome{value: o.Value, metadata: o.Metadata}
	}
	return outcome{value: v}
}

func failed(errType string, retryable bool, format string, args ...any) outcome {
	return outcome{err: &handler.Error{Type: errType, Retryable: retryable, Err: fmt.Errorf(format, args...)}}
}

// prepareClaim records a claim and returns the function that runs its step
// (under execCtx), or nil when the claim yielded nothing to run.
func (w *Worker) prepareClaim(q string, cl claimed, method string, claimDur time.Duration) func(execCtx context.Context) {
	c := cl.c
	if !w.obs.claimed(q, cl, method, claimDur) {
		return nil
	}
	w.track(c)
	return func(execCtx context.Context) {
		defer w.untrack(c.StepUUID, c.Attempt)
		stepCtx, cancel := context.WithCancelCause(execCtx)
		defer cancel(nil)
		w.setCancel(c.StepUUID, c.Attempt, cancel)
		err := w.execute(w.obs.stepContext(stepCtx, cl), q, c)
		w.obs.stepDone(cl, err)
	}
}

// execute runs one claimed step and submits its result. ctx carries the
// step's span; the error it returns is only for that span.
func (w *Worker) execute(ctx context.Context, q string, c db.ClaimedStep) error {
	started := time.Now()
	var out outcome
	if c.Outcome == db.ClaimExhausted {
		out = failed(handler.ErrorTypeLeaseExpired, false,
			"the worker running attempt %d stopped responding and no attempts remain", c.Attempt)
	} else {
		// An earlier attempt of this step that ignored its timeout may still
		// run here: never run two attempts of one step at once.
		if prev := w.previousAttempt(c.StepUUID); prev != nil {
			select {
			case <-prev:
			case <-ctx.Done():
				return errors.New("abandoned at shutdown")
			}
		}
		sc := w.stepContext(ctx, c)
		hctx, done := w.obs.invoking(ctx, c)
		hstart := time.Now()
		var aborted bool
		var running <-chan struct{}
		out, aborted, running = w.invoke(hctx, sc, c.Handler, c.Timeout)
		done(out, aborted, time.Since(hstart))
		if aborted && errors.Is(context.Cause(ctx), ErrTaskCancelled) {
			// The step is cancelled: there is no one to report to, and its
			// message is archived by whichever claim finds it next.
			w.log.InfoContext(ctx, "step handler stopped: its task was cancelled", "correlation_id", c.CorrelationID,
				"task_uuid", c.TaskUUID, "step_uuid", c.StepUUID, "step_name", c.StepName, "event", "step.cancelled")
			return ErrTaskCancelled
		}
		if running != nil && !aborted {
			// After the timeout result is submitted (so the step is retried
			// without waiting), the slot stays taken until the handler returns.
			defer w.awaitOverdue(ctx, c, running)
		}
		if aborted {
			// Shutdown took the handler away: leave the step to lease expiry so
			// another worker retries it, as if this process had crashed.
			return errors.New("abandoned at shutdown")
		}
	}
	finished := time.Now()
	traceparent := w.tr.Traceparent(ctx)
	results, err := encodeResult(c, out, w.cfg.ID, traceparent, started, finished)
	if err != nil {
		out = failed("result_encoding_error", false, "%v", err)
		results, _ = encodeResult(c, out, w.cfg.ID, traceparent, started, finished)
	}
	sctx, done := w.obs.submitting(ctx, c)
	sub := db.StepResultSubmission{
		StepUUID: c.StepUUID, Attempt: c.Attempt, Success: out.err == nil, Results: results,
		WorkerID: w.cfg.ID, Queue: q, MsgID: c.MsgID, ResultQueue: queue.StepResults, Headers: w.tr.Inject(sctx),
		DeferNotify: true,
	}
	substart := time.Now()
	err = w.submit(sctx, sub)
	done(q, sub.Success, err, time.Since(substart), finished.Sub(started))
	return err
}

// stepContext hydrates what the handler sees from the claim.
func (w *Worker) stepContext(ctx context.Context, c db.ClaimedStep) *handler.StepContext {
	sc := &handler.StepContext{
		TaskUUID: c.TaskUUID, StepUUID: c.StepUUID, StepName: c.StepName, Namespace: c.Namespace,
		TaskName: c.TaskName, TaskVersion: c.TaskVersion, CorrelationID: c.CorrelationID,
		ParentCorrelationID: c.ParentCorrelationID, Context: c.TaskContext, Inputs: orEmptyObject(c.Inputs),
		Attempt: c.Attempt, MaxAttempts: c.MaxAttempts, DependencyResults: map[string]json.RawMessage{},
	}
	sc.SetTaskSubmitter(w.cfg.Submitter)
	if len(c.DependencyResults) > 0 {
		if err := json.Unmarshal(c.DependencyResults, &sc.DependencyResults); err != nil {
			w.obs.dependencyDecodeFailed(ctx, c, err)
		}
	}
	return sc
}

// invoke runs the handler with the step's timeout and turns a panic or a
// timeout into a failed outcome. aborted is true when ctx (shutdown) ended
// it. running is non-nil when the handler has not returned (it ignored its
// cancelled context): it closes when the handler finally returns.
func (w *Worker) invoke(ctx context.Context, sc *handler.StepContext, name string, timeout time.Duration) (out outcome, aborted bool, running <-chan struct{}) {
	if !w.cfg.Dispatcher.Has(name) {
		return failed(handler.ErrorTypeUnknownHandler, false, "no handler named %q is registered on worker %s", name, w.cfg.ID), false, nil
	}
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	hctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	done := make(chan outcome, 1)
	returned := w.handlerStarted(sc.StepUUID)
	go func() {
		defer w.handlerReturned(sc.StepUUID, returned)
		defer func() {
			if p := recover(); p != nil {
				w.obs.panicked(ctx, sc, name, p, debug.Stack())
				done <- failed(handler.ErrorTypePanic, true, "handler panicked: %v", p)
			}
		}()
		done <- outcomeOf(w.cfg.Dispatcher.Dispatch(hctx, sc, name))
	}()
	select {
	case r := <-done:
		if hctx.Err() != nil && ctx.Err() != nil {
			return r, true, nil
		}
		return r, false, nil
	case <-hctx.Done():
		if ctx.Err() != nil {
			return outcome{}, true, returned
		}
		return failed(handler.ErrorTypeTimeout, true, "handler did not finish within %s", timeout), false, returned
	}
}

// handlerStarted records a running handler of step and returns the channel
// closed when it returns.
func (w *Worker) handlerStarted(step uuid.UUID) chan struct{} {
	returned := make(chan struct{})
	w.mu.Lock()
	w.handlers[step] = returned
	w.mu.Unlock()
	return returned
}

func (w *Worker) handlerReturned(step uuid.UUID, returned chan struct{}) {
	w.mu.Lock()
	if w.handlers[step] == returned {
		delete(w.handlers, step)
	}
	w.mu.Unlock()
	close(returned)
}

// previousAttempt returns the channel of a handler of step still running
// here (a timed-out attempt that ignored its context), or nil.
func (w *Worker) previousAttempt(step uuid.UUID) <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.handlers[step]
}

// awaitOverdue holds the step's slot until a timed-out handler returns (or
// the worker's shutdown ends its wait), so a handler that ignores
// cancellation still counts against concurrency, and reports it once when it
// is overdue by OverdueHandlerWarning.
func (w *Worker) awaitOverdue(ctx context.Context, c db.ClaimedStep, returned <-chan struct{}) {
	w.mu.Lock()
	w.overdue[c.StepUUID] = c.Namespace
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		delete(w.overdue, c.StepUUID)
		w.mu.Unlock()
	}()
	warn := time.NewTimer(w.cfg.OverdueHandlerWarning)
	defer warn.Stop()
	// A worker shutting down stops waiting (ctx ends when its grace period
	// does): a handler that never returns must not hold up the shutdown.
	select {
	case <-returned:
		return
	case <-ctx.Done():
		return
	case <-warn.C:
		w.obs.handlerOverdue(ctx, c, w.cfg.OverdueHandlerWarning)
	}
	select {
	case <-returned:
	case <-ctx.Done():
	}
}

// OverdueByNamespace counts, per namespace, handlers still running after
// their step's timeout cancelled them.
func (w *Worker) OverdueByNamespace() map[string]int64 {
	out := make(map[string]int64, len(w.cfg.Namespaces))
	for _, ns := range w.cfg.Namespaces {
		out[ns] = 0
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, ns := range w.overdue {
		out[ns]++
	}
	return out
}

func encodeResult(c db.ClaimedStep, o outcome, workerID, traceparent string, started, finished time.Time) (json.RawMessage, error) {
	out := messages.StepExecutionResult{
		StepUUID: c.StepUUID,
		Success:  o.err == nil,
		Status:   "completed",
		Result:   o.value,
		Metadata: messages.ResultMetadata{
			ExecutionTimeMs: float64(finished.Sub(started).Microseconds()) / 1000,
			Attempt:         c.Attempt, WorkerID: workerID, StartedAt: started.UTC(), CompletedAt: finished.UTC(),
			CorrelationID: c.CorrelationID, Traceparent: traceparent, Custom: o.metadata,
		},
	}
	if e := o.err; e != nil {
		out.Status = "failed"
		out.Result = map[string]any{}
		out.Error = &messages.ResultError{Message: e.Error(), ErrorType: e.Type, ErrorCode: e.Code, Retryable: e.Retryable}
		out.Metadata.Retryable = e.Retryable
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("encoding result of step %s: %w", c.StepName, err)
	}
	if messages.HasEscapedNUL(b) {
		// It would fail the write of every result batched with it.
		return nil, fmt.Errorf("result of step %s contains the NUL character (\\u0000), which PostgreSQL cannot store", c.StepName)
	}
	return b, nil
}

func orEmptyObject(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 || string(raw) == "null" {
		return json.RawMessage(`{}`)
	}
	return raw
}
