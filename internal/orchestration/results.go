package orchestration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskerhq/tasker/internal/messages"
	"github.com/taskerhq/tasker/internal/queue"
	"github.com/taskerhq/tasker/internal/state"
	"github.com/taskerhq/tasker/internal/tracing"
)

// ProcessResultMessage is ResultProcessor.process_single_step_result: in one
// transaction it applies a worker's result to its step, enqueues whatever
// became ready or finalizes the task, and acknowledges the message. A
// duplicate (already applied) result changes nothing but the acknowledgement.
func (s *Service) ProcessResultMessage(ctx context.Context, msgID int64) error {
	start := time.Now()
	ev := &txEvents{}
	var waited time.Duration
	var ns, result string
	var pctx context.Context
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var body, headers []byte
		var waitedSec float64
		// Take and acknowledge the message in one statement: the archive
		// commits with the rest of the processing or not at all.
		err := tx.QueryRow(ctx, `WITH m AS (
				DELETE FROM tasker.queue_messages q
				WHERE q.msg_id = (SELECT msg_id FROM tasker.queue_messages
					WHERE msg_id = $1 AND queue_name = $2 FOR UPDATE SKIP LOCKED)
				RETURNING q.msg_id, q.queue_name, q.read_ct, q.enqueued_at, q.message, q.headers
			), a AS (
				INSERT INTO tasker.queue_archive (msg_id, queue_name, read_ct, enqueued_at, message, headers)
				SELECT * FROM m
			)
			SELECT message, headers, extract(epoch FROM clock_timestamp() - enqueued_at)::float8,
				-- Nothing here needs to wait for its WAL flush: if a crash loses
				-- this transaction, the result message is back in the queue and
				-- is processed again (and the worker's durable submission, or
				-- the next durable commit, flushes it anyway).
				set_config('synchronous_commit', 'off', true)
			FROM m`,
			msgID, queue.StepResults).Scan(&body, &headers, &waitedSec, nil)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil // another orchestrator has it, or it is done
		}
		if err != nil {
			return fmt.Errorf("reading step result %d: %w", msgID, err)
		}
		waited = time.Duration(waitedSec * float64(time.Second))
		s.m.MessagesRead(ctx, queue.StepResults, 1)
		var msg messages.StepResultMessage
		if err := json.Unmarshal(body, &msg); err != nil {
			s.m.MessageFailed(ctx, queue.StepResults)
			s.log.ErrorContext(ctx, "discarding malformed step result", "msg_id", msgID, "error", err)
			return nil
		}
		_ = queue.DecodeHeaders(headers, &msg.Headers)
		pctx = tracing.WithCorrelationID(s.tr.Extract(ctx, msg.Headers), msg.CorrelationID)
		var span trace.Span
		pctx, span = s.tr.Start(pctx, "result_processor.process_single_step_result", trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithAttributes(tracing.IDs(msg.CorrelationID, msg.TaskUUID, msg.StepUUID, "", msg.StepName)...),
			trace.WithAttributes(tracing.KeyAttempt.Int(msg.Attempt), attribute.Bool("success", msg.Success),
				semconv.MessagingDestinationNameKey.String(queue.StepResults), semconv.MessagingMessageIDKey.String(fmt.Sprint(msgID))))
		ns, result, err = s.processResult(pctx, tx, &msg, msgID, ev)
		tracing.End(span, err)
		return err
	})
	if err != nil {
		return err
	}
	if pctx != nil {
		s.m.MessageArchived(pctx, queue.StepResults)
		s.m.QueueWait(pctx, queue.StepResults, waited)
		elapsed := time.Since(start)
		s.m.ResultProcessed(pctx, ns, result, elapsed)
		if ev.enqueued {
			s.m.StepTransition(pctx, ns, waited+elapsed)
		}
	}
	ev.flush()
	if ev.retryIn > 0 {
		s.wakeAt(ev.retryIn)
	}
	return nil
}

func (s *Service) processResult(ctx context.Context, tx pgx.Tx, msg *messages.StepResultMessage, msgID int64, ev *txEvents) (ns, result string, err error) {
	t, st, err := s.lockTaskAndStep(ctx, tx, msg)
	if err != nil {
		return "", "", err
	}
	if t == nil || st == nil {
		return "", "duplicate", nil
	}
	trace.SpanFromContext(ctx).SetAttributes(tracing.KeyNamespace.String(t.namespace))
	if result, err = s.applyStepResult(ctx, tx, t, st, msg, ev); err != nil {
		return t.namespace, result, fmt.Errorf("processing result of step %s: %w", msg.StepUUID, err)
	}
	return t.namespace, result, nil
}

// lockTaskAndStep locks the task row (serialising every decision about the
// task) and reads the step, in one round trip.
func (s *Service) lockTaskAndStep(ctx context.Context, tx pgx.Tx, msg *messages.StepResultMessage) (*taskRow, *stepRow, error) {
	var t taskRow
	var st stepRow
	var tstate, sstate string
	var baseMs, capMs int32
	err := tx.QueryRow(ctx, `SELECT t.task_uuid, t.state, t.correlation_id, ns.name, nt.name,
			s.state, s.attempts, s.max_attempts, s.retryable, s.backoff_base_ms, s.backoff_cap_ms, s.name, s.results
		FROM tasker.tasks t
		JOIN tasker.named_tasks nt ON nt.named_task_uuid = t.named_task_uuid
		JOIN tasker.task_namespaces ns ON ns.task_namespace_uuid = nt.task_namespace_uuid
		JOIN tasker.workflow_steps s ON s.task_uuid = t.task_uuid AND s.workflow_step_uuid = $2
		WHERE t.task_uuid = $1 FOR UPDATE OF t`, msg.TaskUUID, msg.StepUUID).
		Scan(&t.uuid, &tstate, &t.correlationID, &t.namespace, &t.name,
			&sstate, &st.attempts, &st.maxAttempts, &st.retryable, &baseMs, &capMs, &st.name, &st.results)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("locking task %s: %w", msg.TaskUUID, err)
	}
	t.state, st.state = state.Task(tstate), state.Step(sstate)
	st.base, st.cap = time.Duration(baseMs)*time.Millisecond, time.Duration(capMs)*time.Millisecond
	return &t, &st, nil
}

type stepRow struct {
	state       state.Step
	attempts    int
	maxAttempts int
	retryable   bool
	base, cap   time.Duration
	name        string
	results     []byte
}

func (s *Service) applyStepResult(ctx context.Context, tx pgx.Tx, t *taskRow, st *stepRow, msg *messages.StepResultMessage, ev *txEvents) (result string, err error) {
	var res messages.StepExecutionResult
	if len(st.results) > 0 {
		if err := json.Unmarshal(st.results, &res); err != nil {
			return "", fmt.Errorf("decoding stored result: %w", err)
		}
	}
	logAttrs := []any{"correlation_id", t.correlationID, "task_uuid", t.uuid, "step_uuid", msg.StepUUID,
		"namespace", t.namespace, "operation", "process_single_step_result", "step_name", st.name, "attempt", st.attempts}

	var to state.Step
	var reason string
	var backoff time.Duration
	switch st.state {
	case state.StepEnqueuedForOrchestration:
		to, reason = state.StepComplete, "result_success"
		if !res.Success {
			to, reason = state.StepError, "result_reported_failure"
		}
	case state.StepEnqueuedAsErrorForOrchestration:
		retryable := res.Error != nil && res.Error.Retryable && res.Metadata.Retryable
		switch {
		case !retryable:
			to, reason = state.StepError, "non_retryable_failure"
		case !st.retryable:
			to, reason = state.StepError, "step_not_retryable"
		case st.attempts >= st.maxAttempts:
			to, reason = state.StepError, "retries_exhausted"
		default:
			to, reason = state.StepWaitingForRetry, "retryable_failure"
			backoff = s.backoff(st.base, st.cap, st.attempts)
		}
	default:
		// Already applied (a duplicate delivery) or superseded: nothing to do.
		s.log.DebugContext(ctx, "duplicate step result ignored", append(logAttrs, "step_state", st.state)...)
		return "duplicate", nil
	}
	if err := state.CheckStep(st.state, to); err != nil {
		return "", err
	}
	result = map[state.Step]string{state.StepComplete: "success", state.StepWaitingForRetry: "retry", state.StepError: "failure"}[to]
	meta := map[string]any{"reason": reason}
	if res.Error != nil {
		meta["error"] = res.Error
	}
	hctx, hspan := s.tr.Start(ctx, "result_processor.handle_step_completion",
		trace.WithAttributes(tracing.IDs(t.correlationID, t.uuid, msg.StepUUID, t.namespace, st.name)...),
		trace.WithAttributes(attribute.String("from_state", string(st.state)), attribute.String("to_state", string(to)),
			attribute.String("reason", reason)))
	ok, err := s.funcs.TransitionStepStateAtomic(hctx, tx, msg.StepUUID, string(st.state), string(to), meta, backoff)
	if err == nil && !ok {
		err = fmt.Errorf("step %s changed state concurrently", msg.StepUUID)
	}
	if to == state.StepWaitingForRetry {
		hspan.SetAttributes(attribute.Int64("backoff_ms", backoff.Milliseconds()))
	}
	tracing.End(hspan, err)
	if err != nil {
		return "", err
	}
	ev.add(func() {
		switch to {
		case state.StepComplete:
			s.log.InfoContext(ctx, "step completed", append(logAttrs, "event", "step.completed",
				"duration_ms", res.Metadata.ExecutionTimeMs)...)
		case state.StepWaitingForRetry:
			s.log.WarnContext(ctx, "step retry scheduled", append(logAttrs, "event", "step.retry_scheduled",
				"backoff_ms", backoff.Milliseconds(), "error", errMessage(res.Error))...)
		case state.StepError:
			s.log.ErrorContext(ctx, "step failed permanently", append(logAttrs, "event", "step.failed",
				"reason", reason, "error", errMessage(res.Error))...)
		}
	})
	if t.state.Terminal() {
		return result, nil
	}
	ev.add(func() {
		s.log.InfoContext(ctx, "task evaluation started", "correlation_id", t.correlationID, "task_uuid", t.uuid,
			"namespace", t.namespace, "operation", "trigger_next_steps", "event", "task.evaluation_started", "trigger", "step_result")
	})
	tctx, tspan := s.tr.Start(ctx, "result_processor.trigger_next_steps",
		trace.WithAttributes(tracing.IDs(t.correlationID, t.uuid, uuid.Nil, t.namespace, "")...))
	err = s.evaluateTask(tctx, tx, t, ev)
	tracing.End(tspan, err)
	return result, err
}

// backoff is base·2^(attempt-1), capped, with ± jitter.
func (s *Service) backoff(base, cap time.Duration, attempt int) time.Duration {
	d := float64(base) * math.Pow(2, float64(max(attempt-1, 0)))
	if d > float64(cap) {
		d = float64(cap)
	}
	if j := s.cfg.RetryJitter; j > 0 {
		d += d * j * (2*rand.Float64() - 1)
	}
	return time.Duration(max(d, 0))
}

func errMessage(e *messages.ResultError) string {
	if e == nil {
		return ""
	}
	return e.Message
}
