package worker

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskerhq/tasker/handler"
	"github.com/taskerhq/tasker/internal/db"
	"github.com/taskerhq/tasker/internal/metrics"
	"github.com/taskerhq/tasker/internal/queue"
	"github.com/taskerhq/tasker/internal/tracing"
)

// observer is where a step's logs, metrics and spans are made, so the
// executor reads as what happens to a step rather than how it is reported.
type observer struct {
	log *slog.Logger
	tr  *tracing.Tracer
	m   *metrics.Metrics
}

func stepAttrs(c db.ClaimedStep) []any {
	return []any{"correlation_id", c.CorrelationID, "task_uuid", c.TaskUUID, "step_uuid", c.StepUUID,
		"namespace", c.Namespace, "step_name", c.StepName, "attempt", c.Attempt}
}

// claimed records a claim and reports whether it yielded a step to run; a
// claim that did not ends its span here.
func (o *observer) claimed(q string, cl claimed, method string, claimDur time.Duration) bool {
	c := cl.c
	cl.span.SetAttributes(tracing.IDs(c.CorrelationID, c.TaskUUID, c.StepUUID, c.Namespace, c.StepName)...)
	cl.span.SetAttributes(attribute.String("claim_outcome", c.Outcome), tracing.KeyAttempt.Int(c.Attempt))
	switch c.Outcome {
	case db.ClaimClaimed, db.ClaimReclaimed, db.ClaimExhausted:
	default:
		o.log.DebugContext(cl.ctx, "step message not claimed", "correlation_id", c.CorrelationID, "task_uuid", c.TaskUUID,
			"step_uuid", c.StepUUID, "queue", q, "msg_id", c.MsgID, "outcome", c.Outcome)
		cl.span.End()
		return false
	}
	if link, ok := tracing.LinkTo(c.PriorTraceparent); ok {
		cl.span.AddLink(link)
	}
	o.m.StepClaimed(cl.ctx, c.Namespace, method, q, claimDur)
	o.m.QueueWait(cl.ctx, q, c.QueueWait)
	if method == ClaimPoll {
		o.m.FallbackPollHits(cl.ctx, q, 1)
	}
	o.log.InfoContext(cl.ctx, "step claimed", append(stepAttrs(c), "operation", "claim_step", "event", "step.claimed",
		"duration_ms", ms(claimDur), "claim_method", method, "outcome", c.Outcome)...)
	return true
}

// stepContext is the context a claimed step runs under: the handlers'
// lifetime (execCtx) with the step's span and correlation ID.
func (o *observer) stepContext(execCtx context.Context, cl claimed) context.Context {
	return tracing.WithCorrelationID(tracing.Rebase(execCtx, cl.ctx), cl.c.CorrelationID)
}

func (o *observer) stepDone(cl claimed, err error) { tracing.End(cl.span, err) }

// invoking starts the handler span; the returned function ends it with the
// outcome and records the execution.
func (o *observer) invoking(ctx context.Context, c db.ClaimedStep) (context.Context, func(outcome, bool, time.Duration)) {
	stepSpan := trace.SpanFromContext(ctx)
	o.log.InfoContext(ctx, "step executing", append(stepAttrs(c), "operation", "execute_step_with_context",
		"event", "step.executing", "handler", c.Handler)...)
	hctx, hspan := o.tr.Start(ctx, "worker.invoke_handler",
		trace.WithAttributes(tracing.IDs(c.CorrelationID, c.TaskUUID, c.StepUUID, c.Namespace, c.StepName)...),
		trace.WithAttributes(tracing.KeyHandler.String(c.Handler), tracing.KeyAttempt.Int(c.Attempt)))
	return hctx, func(out outcome, aborted bool, d time.Duration) {
		if aborted {
			hspan.SetAttributes(attribute.Bool("abandoned", true))
			hspan.End()
			o.log.WarnContext(ctx, "step abandoned at shutdown", stepAttrs(c)...)
			return
		}
		errType := ""
		if out.err != nil {
			errType = out.err.Type
			tracing.Fail(hspan, errType, out.err.Error())
			tracing.Fail(stepSpan, errType, out.err.Error())
		}
		o.m.StepExecuted(hctx, c.CorrelationID, c.Namespace, c.StepName, errType, d)
		hspan.End()
	}
}

// submitting starts the submission span; the returned function ends it.
func (o *observer) submitting(ctx context.Context, c db.ClaimedStep) (context.Context, func(q string, success bool, err error, d, ran time.Duration)) {
	sctx, span := o.tr.Start(ctx, "worker.submit_step_result", trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(tracing.IDs(c.CorrelationID, c.TaskUUID, c.StepUUID, c.Namespace, c.StepName)...),
		trace.WithAttributes(semconv.MessagingDestinationNameKey.String(queue.StepResults)))
	return sctx, func(q string, success bool, err error, d, ran time.Duration) {
		tracing.End(span, err)
		if err != nil {
			o.log.ErrorContext(ctx, "submitting step result failed; the step will be retried after its lease expires",
				append(stepAttrs(c), "operation", "submit_step_result", "error", err)...)
			return
		}
		o.m.ResultSubmitted(sctx, c.Namespace, q, d)
		o.log.DebugContext(ctx, "step result submitted", append(stepAttrs(c), "operation", "submit_step_result",
			"success", success, "duration_ms", ms(ran))...)
	}
}

func (o *observer) panicked(ctx context.Context, sc *handler.StepContext, name string, p any, stack []byte) {
	o.log.ErrorContext(ctx, "handler panicked", "correlation_id", sc.CorrelationID, "task_uuid", sc.TaskUUID,
		"step_uuid", sc.StepUUID, "handler", name, "panic", fmt.Sprint(p), "stack", string(stack))
}

func (o *observer) dependencyDecodeFailed(ctx context.Context, c db.ClaimedStep, err error) {
	o.log.ErrorContext(ctx, "decoding dependency results", append(stepAttrs(c), "error", err)...)
}

// resultsFlushed records each step's part in a batched result write as a
// span of its own trace.
func (o *observer) resultsFlushed(batch []*pendingResult, start, end time.Time, err error) {
	call := db.Call{Function: "submit_step_result", Queue: queue.StepResults, Messaging: "send"}
	for _, p := range batch {
		o.tr.BatchMember(p.ctx, call, start, end, len(batch), err)
	}
}

func (o *observer) handlerOverdue(ctx context.Context, c db.ClaimedStep, after time.Duration) {
	o.log.WarnContext(ctx, "handler still running after its step timed out; its slot stays taken until it returns",
		append(stepAttrs(c), "handler", c.Handler, "overdue_ms", after.Milliseconds(), "timeout_ms", c.Timeout.Milliseconds())...)
}

func (o *observer) resultDiscarded(ctx context.Context, step uuid.UUID, attempt int) {
	o.log.WarnContext(ctx, "step result discarded: the lease was lost to another worker", "step_uuid", step, "attempt", attempt)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
