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
	// wakes are the NOTIFYs the transaction leaves for after its commit,
	// sent in one statement.
	wakes []queue.Wake
	after []func()
	// retryIn is the earliest retry backoff scheduled in the transaction.
	retryIn time.Duration
	// notifyInTx sends NOTIFYs inside the transaction, delivered at commit:
	// for a caller's transaction, whose commit this process does not see,
	// and for transactions that commit without waiting for their WAL flush.
	notifyInTx bool
	// notify sends wakes after commit (set by the service that flushes).
	notify func([]queue.Wake)
}

func (e *txEvents) add(fn func()) { e.after = append(e.after, fn) }

func (e *txEvents) flush() {
	if len(e.wakes) > 0 && e.notify != nil {
		e.notify(e.wakes)
	}
	for _, fn := range e.after {
		fn()
	}
}

// events returns a txEvents whose wake-ups this service sends after commit.
func (s *Service) events() *txEvents {
	return &txEvents{notify: func(w []queue.Wake) {
		// Outside the transaction's commit, so notifying commits do not
		// queue behind each other's WAL flush; a lost wake-up is found by
		// the fallback pollers.
		if err := s.queues.NotifyAll(tracing.Suppress(context.Background()), s.pool, w); err != nil {
			s.log.Warn("sending wake-ups failed; pollers will find the work", "wakes", len(w), "error", err)
		}
	}}
}

// evalTask is a locked task to evaluate and the context its spans go under.
type evalTask struct {
	t   *taskRow
	ctx context.Context
	// enqueued is set by evaluateTasks to the number of steps enqueued.
	enqueued int
}

// evaluateTask evaluates one locked task (see evaluateTasks).
func (s *Service) evaluateTask(ctx context.Context, tx pgx.Tx, t *taskRow, ev *txEvents) error {
	return s.evaluateTasks(ctx, tx, []*evalTask{{t: t, ctx: ctx}}, ev)
}

// evaluation is one task's part of evaluateTasks.
type evaluation struct {
	*evalTask
	d    taskDecision
	hops []db.TaskHop
	// mctx is the span context the task's move belongs to.
	mctx  context.Context
	spans []trace.Span
	queue string
	// headers are the enqueue span's trace context, carried by the task's
	// step messages and their wake-ups.
	headers map[string]string
	// finalizeStart is when finalization began (task duration metrics).
	finalizeStart time.Time
}

// evaluateTasks is the StepEnqueuer and TaskFinalizer for locked tasks: it
// reads the readiness of all their steps at once, enqueues every step that
// became ready in one statement, and moves every task (to steps_in_process,
// a waiting state, or its final state) in another. Each task keeps its own
// spans; a batch statement is recorded in each task's trace as the
// single-task call it replaces (tracing.BatchMember).
func (s *Service) evaluateTasks(ctx context.Context, tx pgx.Tx, ts []*evalTask, ev *txEvents) error {
	if len(ts) == 0 {
		return nil
	}
	evs := make([]*evaluation, len(ts))
	ids := make([]uuid.UUID, len(ts))
	dspans := make([]trace.Span, len(ts))
	dctxs := make([]context.Context, len(ts))
	for i, e := range ts {
		evs[i] = &evaluation{evalTask: e}
		ids[i] = e.t.uuid
		dctxs[i], dspans[i] = s.tr.Start(e.ctx, "step_enqueuer.discover_ready_steps",
			trace.WithAttributes(tracing.IDs(e.t.correlationID, e.t.uuid, uuid.Nil, e.t.namespace, "")...))
	}
	start := time.Now()
	rows, err := s.funcs.StepReadiness(tracing.Suppress(ctx), tx, ids)
	end := time.Now()
	byTask := map[uuid.UUID][]db.StepReadiness{}
	for _, r := range rows {
		byTask[r.TaskUUID] = append(byTask[r.TaskUUID], r)
	}
	for i, e := range evs {
		s.tr.BatchMember(dctxs[i], db.Call{Function: "get_step_readiness_status"}, start, end, len(ts), err)
		if err == nil {
			e.d = decideTask(e.t.state, byTask[e.t.uuid])
			dspans[i].SetAttributes(attribute.String("execution_status", e.d.status), attribute.Int("ready_steps", len(e.d.ready)))
		}
		tracing.End(dspans[i], err)
	}
	if err != nil {
		return fmt.Errorf("discovering ready steps: %w", err)
	}
	defer func() {
		for _, e := range evs {
			for j := len(e.spans) - 1; j >= 0; j-- {
				tracing.End(e.spans[j], err)
			}
		}
	}()

	var toEnqueue []db.StepToEnqueue
	var hops []db.TaskHop
	enqCtx := map[uuid.UUID]context.Context{}
	for _, e := range evs {
		e.mctx = e.ctx
		switch e.d.action {
		case actNone:
			continue
		case actEnqueue:
			if e.queue, err = queue.WorkerQueue(e.t.namespace); err != nil {
				return err
			}
			ectx, span := s.tr.Start(e.ctx, "step_enqueuer.enqueue_steps_batch", trace.WithSpanKind(trace.SpanKindProducer),
				trace.WithAttributes(tracing.IDs(e.t.correlationID, e.t.uuid, uuid.Nil, e.t.namespace, "")...),
				trace.WithAttributes(semconv.MessagingDestinationNameKey.String(e.queue), attribute.Int("steps", len(e.d.ready))))
			e.spans, e.mctx = append(e.spans, span), ectx
			enqCtx[e.t.uuid] = ectx
			// The message headers make this span the parent of the workers' spans.
			e.headers = s.tr.Inject(ectx)
			for _, id := range e.d.ready {
				toEnqueue = append(toEnqueue, db.StepToEnqueue{TaskUUID: e.t.uuid, StepUUID: id, Queue: e.queue, Headers: e.headers})
			}
		case actFinalize:
			e.finalizeStart = time.Now()
			fctx, span := s.tr.Start(e.ctx, "task_finalizer.finalize_task",
				trace.WithAttributes(tracing.IDs(e.t.correlationID, e.t.uuid, uuid.Nil, e.t.namespace, "")...))
			final := e.d.path[len(e.d.path)-1]
			span.SetAttributes(attribute.String("final_state", string(final)))
			_, cspan := s.tr.Start(fctx, "task_finalizer.check_task_finalization_ready")
			cspan.SetAttributes(attribute.Bool("claimed", true), attribute.String("execution_status", e.d.status))
			cspan.End()
			tctx, tspan := s.tr.Start(fctx, "task_finalizer.transition_to_terminal_state",
				trace.WithAttributes(attribute.String("final_state", string(final))))
			e.spans, e.mctx = append(e.spans, span, tspan), tctx
		}
		e.hops = taskHops(e.t.uuid, e.t.state, e.d.reason, e.d.path)
		if err = checkHops(e.hops); err != nil {
			return fmt.Errorf("task %s: %w", e.t.uuid, err)
		}
		hops = append(hops, e.hops...)
	}

	var enq []db.EnqueuedStep
	if len(toEnqueue) > 0 {
		start := time.Now()
		enq, err = s.funcs.EnqueueReadySteps(tracing.Suppress(ctx), tx, toEnqueue)
		end := time.Now()
		for _, c := range enqCtx {
			s.tr.BatchMember(c, db.Call{Function: "enqueue_steps", Messaging: "send"}, start, end, len(enqCtx), err)
		}
		if err != nil {
			return fmt.Errorf("enqueuing steps: %w", err)
		}
	}
	if len(hops) > 0 {
		start := time.Now()
		err = s.funcs.TransitionTaskPaths(tracing.Suppress(ctx), tx, hops, s.cfg.ProcessorUUID)
		end := time.Now()
		for _, e := range evs {
			if len(e.hops) > 0 {
				s.tr.BatchMember(e.mctx, db.Call{Function: "transition_task_state_path"}, start, end, len(evs), err)
			}
		}
		if err != nil {
			return fmt.Errorf("moving tasks: %w", err)
		}
	}

	byTaskEnq := map[uuid.UUID][]db.EnqueuedStep{}
	for _, x := range enq {
		byTaskEnq[x.TaskUUID] = append(byTaskEnq[x.TaskUUID], x)
	}
	for _, e := range evs {
		from := e.t.state
		if len(e.hops) > 0 {
			e.t.state = e.hops[len(e.hops)-1].To
			s.log.DebugContext(e.mctx, "task transition", "correlation_id", e.t.correlationID, "task_uuid", e.t.uuid,
				"namespace", e.t.namespace, "operation", "task_transition", "from_state", from, "to_state", e.t.state)
		}
		switch e.d.action {
		case actEnqueue:
			s.afterEnqueue(e, byTaskEnq[e.t.uuid], ev)
		case actFinalize:
			s.afterFinalize(e, ev)
		case actMove:
			if e.d.retryAt != nil {
				if d := max(time.Until(*e.d.retryAt), time.Millisecond); ev.retryIn == 0 || d < ev.retryIn {
					ev.retryIn = d
				}
			}
		}
	}
	if ev.notifyInTx && len(ev.wakes) > 0 {
		// Delivered at the transaction's commit.
		if err = s.queues.NotifyAll(ctx, tx, ev.wakes); err != nil {
			return fmt.Errorf("notifying workers: %w", err)
		}
		ev.wakes = nil
	}
	return nil
}

// afterEnqueue records one task's enqueued steps: wake-ups, metrics, lifecycle events.
func (s *Service) afterEnqueue(e *evaluation, enq []db.EnqueuedStep, ev *txEvents) {
	e.enqueued = len(enq)
	for _, x := range enq {
		ev.wakes = append(ev.wakes, queue.MessageWake(e.queue, x.MsgID, e.headers))
	}
	ctx, corr, task, ns, wq := e.mctx, e.t.correlationID, e.t.uuid, e.t.namespace, e.queue
	ev.add(func() {
		for _, x := range enq {
			s.m.StepEnqueued(ctx, ns, x.StepName, wq)
		}
		for _, x := range enq {
			s.log.InfoContext(ctx, "step enqueued", "correlation_id", corr, "task_uuid", task, "step_uuid", x.StepUUID,
				"namespace", ns, "operation", "enqueue_steps_batch", "event", "step.enqueued", "step_name", x.StepName, "queue", wq, "msg_id", x.MsgID)
		}
		s.log.InfoContext(ctx, "task steps enqueued", "correlation_id", corr, "task_uuid", task, "namespace", ns,
			"operation", "enqueue_steps_batch", "event", "task.steps_enqueued", "steps_enqueued", len(enq))
		if s.presence.warnUnserved(ns, time.Now()) {
			s.log.WarnContext(ctx, "steps enqueued in a namespace no live worker serves; they wait until a worker for it starts",
				"correlation_id", corr, "task_uuid", task, "namespace", ns, "queue", wq, "operation", "enqueue_steps_batch")
		}
	})
}

// afterFinalize records one task's finalization: the terminal wake-up,
// metrics and lifecycle events.
func (s *Service) afterFinalize(e *evaluation, ev *txEvents) {
	ctx, corr, task, ns, name, start, status := e.mctx, e.t.correlationID, e.t.uuid, e.t.namespace, e.t.name, e.finalizeStart, e.d.status
	s.afterTerminal(ctx, e.t, ev)
	ev.add(func() {
		s.log.InfoContext(ctx, "task ready for finalization", "correlation_id", corr, "task_uuid", task, "namespace", ns,
			"operation", "finalize_task", "event", "task.finalization_ready", "execution_status", status)
	})
	switch e.t.state {
	case state.TaskComplete:
		ev.add(func() {
			s.m.TaskFinalized(ctx, corr, ns, name, "complete", time.Since(start))
			s.log.InfoContext(ctx, "task completed", "correlation_id", corr, "task_uuid", task, "namespace", ns,
				"operation", "finalize_task", "event", "task.completed", "duration_ms", ms(time.Since(start)))
		})
	case state.TaskError:
		ev.add(func() {
			s.m.TaskFinalized(ctx, corr, ns, name, "error", time.Since(start))
			s.log.ErrorContext(ctx, "task failed", "correlation_id", corr, "task_uuid", task, "namespace", ns,
				"operation", "finalize_task", "event", "task.failed", "duration_ms", ms(time.Since(start)))
		})
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
