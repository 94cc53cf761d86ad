package orchestration

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskerhq/tasker/internal/db"
	"github.com/taskerhq/tasker/internal/messages"
	"github.com/taskerhq/tasker/internal/queue"
	"github.com/taskerhq/tasker/internal/state"
	"github.com/taskerhq/tasker/internal/tracing"
)

// ProcessResultMessage processes one step result message (see ProcessResultMessages).
func (s *Service) ProcessResultMessage(ctx context.Context, msgID int64) error {
	return s.ProcessResultMessages(ctx, []int64{msgID})
}

// resultItem is one result message of a batch.
type resultItem struct {
	msg    messages.StepResultMessage
	msgID  int64
	waited time.Duration
	// ctx and span are the item's result_processor.process_single_step_result.
	ctx  context.Context
	span trace.Span
	// target is its task and step, once locked; nil when they are gone.
	target *db.ResultTarget
	task   *taskRow
	d      resultDecision
	// tr is the step's transition, when the result applies.
	tr      *db.StepTransition
	res     messages.StepExecutionResult
	hctx    context.Context
	hspan   trace.Span
	applied bool
}

// ProcessResultMessages is ResultProcessor.process_single_step_result for a
// batch of result messages, in one transaction: it takes (and archives) the
// messages, locks their tasks in one order, applies every result to its step
// in one statement, evaluates each touched task once (one readiness read for
// all of them), enqueues every step that became ready in one statement and
// moves every task in another. A duplicate (already applied) result changes
// nothing but its acknowledgement. Messages another transaction holds are
// skipped: that transaction processes them.
func (s *Service) ProcessResultMessages(ctx context.Context, ids []int64) error {
	start := time.Now()
	ev := s.events()
	// The wake-ups go out with the commit, from inside the transaction: it
	// commits without waiting for its WAL flush (see TakeMessages), so the
	// notification lock is not held through an fsync, and a separate
	// notifying round trip and transaction is saved.
	ev.notifyInTx = true
	var items []*resultItem
	var evals []*evalTask
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		items, evals = nil, nil
		taken, err := s.funcs.TakeMessages(tracing.Suppress(ctx), tx, queue.StepResults, ids)
		if err != nil {
			return fmt.Errorf("reading step results: %w", err)
		}
		if len(taken) == 0 {
			return nil // other orchestrators have them, or they are done
		}
		s.m.MessagesRead(ctx, queue.StepResults, len(taken))
		items = s.startItems(ctx, taken)
		if err := s.applyResults(ctx, tx, items, ev); err != nil {
			return err
		}
		evals = s.tasksToEvaluate(items, ev)
		err = s.evaluateTasks(ctx, tx, evals, ev)
		for _, e := range evals {
			tracing.End(trace.SpanFromContext(e.ctx), err)
		}
		return err
	})
	for _, it := range items {
		if it.hspan != nil {
			tracing.End(it.hspan, err)
		}
		tracing.End(it.span, err)
	}
	if err != nil {
		return err
	}
	enqueued := map[uuid.UUID]bool{}
	for _, e := range evals {
		enqueued[e.t.uuid] = e.enqueued > 0
	}
	elapsed := time.Since(start)
	for _, it := range items {
		s.m.MessageArchived(it.ctx, queue.StepResults)
		s.m.QueueWait(it.ctx, queue.StepResults, it.waited)
		if it.task == nil {
			s.m.ResultProcessed(it.ctx, "", outcomeDuplicate, elapsed)
			continue
		}
		s.m.ResultProcessed(it.ctx, it.task.namespace, it.d.outcome, elapsed)
		if it.applied && enqueued[it.task.uuid] {
			s.m.StepTransition(it.ctx, it.task.namespace, it.waited+elapsed)
		}
	}
	ev.flush()
	if ev.retryIn > 0 {
		s.wakeAt(ev.retryIn)
	}
	return nil
}

// startItems decodes the taken messages and starts their spans under the
// trace context each carries. A malformed message is dropped (it is
// archived with the batch) and logged.
func (s *Service) startItems(ctx context.Context, taken []db.TakenMessage) []*resultItem {
	items := make([]*resultItem, 0, len(taken))
	for _, m := range taken {
		it := &resultItem{msgID: m.MsgID, waited: m.Waited}
		if err := json.Unmarshal(m.Body, &it.msg); err != nil {
			s.m.MessageFailed(ctx, queue.StepResults)
			s.log.ErrorContext(ctx, "discarding malformed step result", "msg_id", m.MsgID, "error", err)
			continue
		}
		_ = queue.DecodeHeaders(m.Headers, &it.msg.Headers)
		pctx := tracing.WithCorrelationID(s.tr.Extract(ctx, it.msg.Headers), it.msg.CorrelationID)
		it.ctx, it.span = s.tr.Start(pctx, "result_processor.process_single_step_result", trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithAttributes(tracing.IDs(it.msg.CorrelationID, it.msg.TaskUUID, it.msg.StepUUID, "", it.msg.StepName)...),
			trace.WithAttributes(tracing.KeyAttempt.Int(it.msg.Attempt), attribute.Bool("success", it.msg.Success),
				semconv.MessagingDestinationNameKey.String(queue.StepResults), semconv.MessagingMessageIDKey.String(strconv.FormatInt(m.MsgID, 10)),
				attribute.Int("batch_size", len(taken))))
		items = append(items, it)
	}
	return items
}

// applyResults locks the items' tasks, decides each result and applies
// every step transition in one statement.
func (s *Service) applyResults(ctx context.Context, tx pgx.Tx, items []*resultItem, ev *txEvents) error {
	refs := make([]db.StepRef, len(items))
	for i, it := range items {
		refs[i] = db.StepRef{TaskUUID: it.msg.TaskUUID, StepUUID: it.msg.StepUUID}
	}
	targets, err := s.funcs.LockResultTargets(tracing.Suppress(ctx), tx, refs)
	if err != nil {
		return err
	}
	steps := map[uuid.UUID]*db.ResultTarget{}
	tasks := map[uuid.UUID]*taskRow{}
	for i := range targets {
		t := &targets[i]
		steps[t.Step.UUID] = t
		if tasks[t.Task.UUID] == nil {
			tasks[t.Task.UUID] = &taskRow{uuid: t.Task.UUID, state: t.Task.State, correlationID: t.Task.CorrelationID,
				namespace: t.Task.Namespace, name: t.Task.Name}
		}
	}
	var trs []db.StepTransition
	var applying []*resultItem
	for _, it := range items {
		it.target = steps[it.msg.StepUUID]
		if it.target == nil || it.target.Task.UUID != it.msg.TaskUUID {
			it.target, it.d = nil, resultDecision{outcome: outcomeDuplicate}
			continue
		}
		it.task = tasks[it.msg.TaskUUID]
		it.span.SetAttributes(tracing.KeyNamespace.String(it.task.namespace))
		st := &it.target.Step
		if len(st.Results) > 0 {
			if err := json.Unmarshal(st.Results, &it.res); err != nil {
				return fmt.Errorf("processing result of step %s: decoding stored result: %w", st.UUID, err)
			}
		}
		it.d = decideResult(*st, &it.res)
		if it.d.outcome == outcomeDuplicate {
			s.log.DebugContext(it.ctx, "duplicate step result ignored", append(s.stepAttrs(it), "step_state", st.State)...)
			continue
		}
		if err := state.CheckStep(st.State, it.d.to); err != nil {
			return fmt.Errorf("processing result of step %s: %w", st.UUID, err)
		}
		meta := map[string]any{"reason": it.d.reason}
		if it.res.Error != nil {
			meta["error"] = it.res.Error
		}
		it.tr = &db.StepTransition{StepUUID: st.UUID, From: st.State, To: it.d.to, Metadata: meta}
		if it.d.retry {
			it.tr.Backoff = s.backoff(st.BackoffBase, st.BackoffCap, st.Attempts)
		}
		// A second delivery of this result in the same batch is a duplicate.
		st.State = it.d.to
		it.hctx, it.hspan = s.tr.Start(it.ctx, "result_processor.handle_step_completion",
			trace.WithAttributes(tracing.IDs(it.task.correlationID, it.task.uuid, it.msg.StepUUID, it.task.namespace, st.Name)...),
			trace.WithAttributes(attribute.String("from_state", string(it.tr.From)), attribute.String("to_state", string(it.d.to)),
				attribute.String("reason", it.d.reason)))
		if it.d.retry {
			it.hspan.SetAttributes(attribute.Int64("backoff_ms", it.tr.Backoff.Milliseconds()))
		}
		trs = append(trs, *it.tr)
		applying = append(applying, it)
	}
	if len(trs) == 0 {
		return nil
	}
	start := time.Now()
	moved, err := s.funcs.TransitionSteps(tracing.Suppress(ctx), tx, trs)
	end := time.Now()
	for _, it := range applying {
		s.tr.BatchMember(it.hctx, db.Call{Function: "transition_step_state_atomic"}, start, end, len(trs), err)
	}
	if err != nil {
		return err
	}
	if len(moved) != len(trs) {
		// Impossible while the task is locked, unless something bypassed the lock.
		return fmt.Errorf("processing results: %d of %d steps changed state concurrently", len(trs)-len(moved), len(trs))
	}
	for _, it := range applying {
		it.applied = true
		s.resultEvents(it, ev)
	}
	return nil
}

func (s *Service) stepAttrs(it *resultItem) []any {
	return []any{"correlation_id", it.task.correlationID, "task_uuid", it.task.uuid, "step_uuid", it.msg.StepUUID,
		"namespace", it.task.namespace, "operation", "process_single_step_result", "step_name", it.target.Step.Name,
		"attempt", it.target.Step.Attempts}
}

// resultEvents records a result's lifecycle event.
func (s *Service) resultEvents(it *resultItem, ev *txEvents) {
	ctx, attrs, res, tr, reason := it.ctx, s.stepAttrs(it), it.res, it.tr, it.d.reason
	ev.add(func() {
		switch tr.To {
		case state.StepComplete:
			s.log.InfoContext(ctx, "step completed", append(attrs, "event", "step.completed",
				"duration_ms", res.Metadata.ExecutionTimeMs)...)
		case state.StepWaitingForRetry:
			s.log.WarnContext(ctx, "step retry scheduled", append(attrs, "event", "step.retry_scheduled",
				"backoff_ms", tr.Backoff.Milliseconds(), "error", errMessage(res.Error))...)
		case state.StepError:
			s.log.ErrorContext(ctx, "step failed permanently", append(attrs, "event", "step.failed",
				"reason", reason, "error", errMessage(res.Error))...)
		}
	})
}

// tasksToEvaluate returns each task an applied result touched, once, unless
// it is already final; its evaluation (result_processor.trigger_next_steps)
// is traced under the last of its results in the batch.
func (s *Service) tasksToEvaluate(items []*resultItem, ev *txEvents) []*evalTask {
	last := map[uuid.UUID]*resultItem{}
	var order []uuid.UUID
	for _, it := range items {
		if !it.applied || it.task.state.Terminal() {
			continue
		}
		if last[it.task.uuid] == nil {
			order = append(order, it.task.uuid)
		}
		last[it.task.uuid] = it
	}
	evals := make([]*evalTask, 0, len(order))
	for _, id := range order {
		it := last[id]
		t := it.task
		tctx, _ := s.tr.Start(it.ctx, "result_processor.trigger_next_steps",
			trace.WithAttributes(tracing.IDs(t.correlationID, t.uuid, uuid.Nil, t.namespace, "")...))
		ev.add(func() {
			s.log.InfoContext(tctx, "task evaluation started", "correlation_id", t.correlationID, "task_uuid", t.uuid,
				"namespace", t.namespace, "operation", "trigger_next_steps", "event", "task.evaluation_started", "trigger", "step_result")
		})
		evals = append(evals, &evalTask{t: t, ctx: tctx})
	}
	return evals
}

// backoff is the retry delay after a failed attempt (backoffDelay with this
// orchestrator's jitter and a random draw).
func (s *Service) backoff(base, cap time.Duration, attempt int) time.Duration {
	return backoffDelay(base, cap, attempt, s.cfg.RetryJitter, rand.Float64())
}

// backoffDelay is base·2^(attempt-1), capped at cap, then moved by up to
// ±jitter of itself: draw in [0, 1) picks where in that range (0.5 is no
// change), so orchestrators retrying many steps at once spread them out.
func backoffDelay(base, cap time.Duration, attempt int, jitter, draw float64) time.Duration {
	d := float64(base) * math.Pow(2, float64(max(attempt-1, 0)))
	if d > float64(cap) {
		d = float64(cap)
	}
	if jitter > 0 {
		d += d * jitter * (2*draw - 1)
	}
	return time.Duration(max(d, 0))
}

func errMessage(e *messages.ResultError) string {
	if e == nil {
		return ""
	}
	return e.Message
}
