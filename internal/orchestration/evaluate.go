package orchestration

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskerhq/tasker/internal/db"
	"github.com/taskerhq/tasker/internal/queue"
	"github.com/taskerhq/tasker/internal/state"
	"github.com/taskerhq/tasker/internal/tracing"
)

// txEvents collects what happened inside a transaction so lifecycle records
// are written once, and only if it commits.
type txEvents struct {
	// wake sends the NOTIFYs the transaction left for after its commit.
	wake  []func()
	after []func()
	// retryIn is the earliest retry backoff scheduled in the transaction.
	retryIn time.Duration
	// enqueued is set when the transaction enqueued steps.
	enqueued bool
	// notifyInTx sends NOTIFYs inside the transaction, delivered at commit:
	// for a caller's transaction, whose commit this process does not see.
	notifyInTx bool
}

func (e *txEvents) add(fn func()) { e.after = append(e.after, fn) }

func (e *txEvents) flush() {
	for _, fn := range e.wake {
		fn()
	}
	for _, fn := range e.after {
		fn()
	}
}

// summarize computes get_task_execution_context's execution status from
// readiness rows, so the hot path reads the steps once.
func summarize(rows []db.StepReadiness) (status string, ready []uuid.UUID, inFlight, retrying int) {
	var failed, completed int
	for _, r := range rows {
		switch state.Step(r.CurrentState) {
		case state.StepError:
			failed++
		case state.StepComplete, state.StepResolvedManually:
			completed++
		case state.StepWaitingForRetry:
			retrying++
		}
		if state.Step(r.CurrentState).InFlight() {
			inFlight++
		}
		if r.ReadyForExecution {
			ready = append(ready, r.StepUUID)
		}
	}
	switch {
	case failed > 0:
		status = "blocked_by_failures"
	case len(ready) > 0:
		status = "has_ready_steps"
	case inFlight > 0:
		status = "processing"
	case len(rows) > 0 && completed == len(rows):
		status = "all_complete"
	default:
		status = "waiting_for_dependencies"
	}
	return status, ready, inFlight, retrying
}

// evaluateTask is the StepEnqueuer and TaskFinalizer for one locked task:
// it enqueues the steps that became ready, finalizes the task, or parks it
// in a waiting state.
func (s *Service) evaluateTask(ctx context.Context, tx pgx.Tx, t *taskRow, ev *txEvents) (err error) {
	dctx, span := s.tr.Start(ctx, "step_enqueuer.discover_ready_steps",
		trace.WithAttributes(tracing.IDs(t.correlationID, t.uuid, uuid.Nil, t.namespace, "")...))
	rows, err := s.funcs.GetStepReadinessStatus(dctx, tx, t.uuid, nil)
	status, ready, inFlight, retrying := summarize(rows)
	span.SetAttributes(attribute.String("execution_status", status), attribute.Int("ready_steps", len(ready)))
	tracing.End(span, err)
	if err != nil {
		return fmt.Errorf("discovering ready steps: %w", err)
	}
	switch status {
	case "has_ready_steps":
		return s.enqueueSteps(ctx, tx, t, ready, ev)
	case "all_complete":
		return s.finalizeTask(ctx, tx, t, ev)
	case "blocked_by_failures":
		if inFlight == 0 {
			return s.finalizeTask(ctx, tx, t, ev)
		}
		return s.moveTask(ctx, tx, t, "step_failed_permanently", state.TaskPath(t.state, state.TaskBlockedByFailures)...)
	case "processing":
		if t.state == state.TaskStepsInProcess || t.state.Waiting() {
			return s.moveTask(ctx, tx, t, "step_result_received", state.TaskEvaluatingResults)
		}
		return nil
	default: // waiting_for_dependencies
		if retrying > 0 {
			if err := s.moveTask(ctx, tx, t, "awaiting_retry_backoff", state.TaskPath(t.state, state.TaskWaitingForRetry)...); err != nil {
				return err
			}
			for _, r := range rows {
				if r.NextRetryAt != nil && r.CurrentState == string(state.StepWaitingForRetry) {
					d := time.Until(*r.NextRetryAt)
					if ev.retryIn == 0 || d < ev.retryIn {
						ev.retryIn = max(d, time.Millisecond)
					}
				}
			}
			return nil
		}
		return s.moveTask(ctx, tx, t, "no_ready_steps", state.TaskPath(t.state, state.TaskWaitingForDependencies)...)
	}
}

// enqueueSteps is StepEnqueuer.enqueue_steps_batch: one statement moves the
// steps to enqueued and sends their messages, whose headers carry this span
// as the parent of the workers' spans.
func (s *Service) enqueueSteps(ctx context.Context, tx pgx.Tx, t *taskRow, ready []uuid.UUID, ev *txEvents) (err error) {
	wq, err := queue.WorkerQueue(t.namespace)
	if err != nil {
		return err
	}
	ctx, span := s.tr.Start(ctx, "step_enqueuer.enqueue_steps_batch", trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(tracing.IDs(t.correlationID, t.uuid, uuid.Nil, t.namespace, "")...),
		trace.WithAttributes(semconv.MessagingDestinationNameKey.String(wq), attribute.Int("steps", len(ready))))
	defer func() { tracing.End(span, err) }()
	headers := s.tr.Inject(ctx)
	enq, err := s.funcs.EnqueueStepsQuiet(ctx, tx, t.uuid, ready, wq, headers)
	if err != nil {
		return fmt.Errorf("enqueuing steps of task %s: %w", t.uuid, err)
	}
	ids := make([]int64, len(enq))
	for i, e := range enq {
		ids[i] = e.MsgID
	}
	if ev.notifyInTx {
		if err := s.queues.Notify(ctx, tx, wq, ids, headers); err != nil {
			return fmt.Errorf("notifying workers of task %s: %w", t.uuid, err)
		}
	} else {
		ev.wake = append(ev.wake, func() {
			// Outside the transaction's commit, so notifying commits do not
			// queue behind each other's WAL flush; a lost wake-up is found by
			// the workers' fallback poller.
			if err := s.queues.Notify(context.WithoutCancel(ctx), s.pool, wq, ids, headers); err != nil {
				s.log.WarnContext(ctx, "notifying workers failed; their poller will find the steps", "queue", wq, "error", err)
			}
		})
	}
	// The task passes through enqueuing_steps within this transaction; one
	// statement records both hops.
	path := append(state.TaskPath(t.state, state.TaskEnqueuingSteps), state.TaskStepsInProcess)
	if err := s.moveTask(ctx, tx, t, "ready_steps_found", path...); err != nil {
		return err
	}
	corr, task, ns := t.correlationID, t.uuid, t.namespace
	ev.enqueued = true
	ev.add(func() {
		for _, e := range enq {
			s.m.StepEnqueued(ctx, ns, e.StepName, wq)
		}
		for _, e := range enq {
			s.log.InfoContext(ctx, "step enqueued", "correlation_id", corr, "task_uuid", task, "step_uuid", e.StepUUID,
				"namespace", ns, "operation", "enqueue_steps_batch", "event", "step.enqueued", "step_name", e.StepName, "queue", wq, "msg_id", e.MsgID)
		}
		s.log.InfoContext(ctx, "task steps enqueued", "correlation_id", corr, "task_uuid", task, "namespace", ns,
			"operation", "enqueue_steps_batch", "event", "task.steps_enqueued", "steps_enqueued", len(enq))
		if s.presence.warnUnserved(ns, time.Now()) {
			s.log.WarnContext(ctx, "steps enqueued in a namespace no live worker serves; they wait until a worker for it starts",
				"correlation_id", corr, "task_uuid", task, "namespace", ns, "queue", wq, "operation", "enqueue_steps_batch")
		}
	})
	return nil
}

// finalizeTask is TaskFinalizer.finalize_task, under claim_task_for_finalization's lock.
func (s *Service) finalizeTask(ctx context.Context, tx pgx.Tx, t *taskRow, ev *txEvents) (err error) {
	start := time.Now()
	ctx, span := s.tr.Start(ctx, "task_finalizer.finalize_task",
		trace.WithAttributes(tracing.IDs(t.correlationID, t.uuid, uuid.Nil, t.namespace, "")...))
	defer func() { tracing.End(span, err) }()
	cctx, cspan := s.tr.Start(ctx, "task_finalizer.check_task_finalization_ready")
	f, err := s.funcs.ClaimTaskForFinalization(cctx, tx, t.uuid, s.cfg.ProcessorUUID)
	cspan.SetAttributes(attribute.Bool("claimed", f.Claimed), attribute.String("execution_status", f.ExecutionStatus))
	tracing.End(cspan, err)
	if err != nil {
		return fmt.Errorf("finalizing task %s: %w", t.uuid, err)
	}
	if !f.Claimed {
		if f.ExecutionStatus == "blocked_by_failures" {
			return s.moveTask(ctx, tx, t, "step_failed_permanently", state.TaskPath(t.state, state.TaskBlockedByFailures)...)
		}
		return nil
	}
	corr, task, ns := t.correlationID, t.uuid, t.namespace
	ev.add(func() {
		s.log.InfoContext(ctx, "task ready for finalization", "correlation_id", corr, "task_uuid", task, "namespace", ns,
			"operation", "finalize_task", "event", "task.finalization_ready", "execution_status", f.ExecutionStatus)
	})
	tctx, tspan := s.tr.Start(ctx, "task_finalizer.transition_to_terminal_state", trace.WithAttributes(attribute.String("final_state", f.TargetState)))
	defer func() { tracing.End(tspan, err) }()
	span.SetAttributes(attribute.String("final_state", f.TargetState))
	switch f.TargetState {
	case string(state.TaskComplete):
		if err := s.moveTask(tctx, tx, t, "all_steps_complete", state.TaskPath(t.state, state.TaskComplete)...); err != nil {
			return err
		}
		s.afterTerminal(ctx, t, ev)
		ev.add(func() {
			s.m.TaskFinalized(ctx, corr, ns, t.name, "complete", time.Since(start))
			s.log.InfoContext(ctx, "task completed", "correlation_id", corr, "task_uuid", task, "namespace", ns,
				"operation", "finalize_task", "event", "task.completed", "duration_ms", ms(time.Since(start)))
		})
	case string(state.TaskError):
		if err := s.moveTask(tctx, tx, t, "step_failed_permanently", state.TaskPath(t.state, state.TaskError)...); err != nil {
			return err
		}
		s.afterTerminal(ctx, t, ev)
		ev.add(func() {
			s.m.TaskFinalized(ctx, corr, ns, t.name, "error", time.Since(start))
			s.log.ErrorContext(ctx, "task failed", "correlation_id", corr, "task_uuid", task, "namespace", ns,
				"operation", "finalize_task", "event", "task.failed", "duration_ms", ms(time.Since(start)))
		})
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
