package worker

import (
	"context"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/internal/db"
	"github.com/taskerhq/tasker/internal/queue"
	"github.com/taskerhq/tasker/internal/tracing"
	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.27.0"
	"go.opentelemetry.io/otel/trace"
)

func (w *Worker) acquire(ctx context.Context) bool {
	select {
	case w.slots <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

func (w *Worker) release() { <-w.slots }

func (w *Worker) eventLoop(ctx, execCtx context.Context, sub *queue.Subscription, execs *sync.WaitGroup) {
	for {
		select {
		case <-ctx.Done():
			return
		case n := <-sub.C:
			if !w.acquire(ctx) {
				return
			}
			// Claim in the goroutine that runs the step, so sibling steps
			// woken together are claimed in parallel.
			execs.Go(func() {
				defer w.release()
				w.claimAndRun(ctx, execCtx, sub.Queue, n)
			})
		}
	}
}

func (w *Worker) claimAndRun(ctx, execCtx context.Context, q string, n queue.Notification) {
	// The notification carries the enqueue's trace context, so the step span
	// and its claim nest under it from the start.
	sctx, span := w.startStepSpan(w.tr.Extract(ctx, n.Headers), q, n.ID, ClaimEvent, time.Now())
	start := time.Now()
	cctx, cspan := w.tr.Start(sctx, "worker.claim_step", trace.WithAttributes(tracing.KeyClaimMethod.String(ClaimEvent)))
	claims, err := w.funcs.ClaimStep(cctx, w.pool, q, n.ID, w.cfg.Lease, w.cfg.ID)
	tracing.End(cspan, err)
	if err != nil {
		tracing.End(span, err)
		if ctx.Err() == nil {
			w.log.WarnContext(sctx, "claiming step failed", "queue", q, "msg_id", n.ID, "error", err)
		}
		return
	}
	if len(claims) == 0 {
		// Another worker (or this one's poller) took the message first.
		span.SetAttributes(attribute.String("claim_outcome", "not_visible"))
		span.End()
		return
	}
	if run := w.prepareClaim(q, claimed{c: claims[0], ctx: sctx, span: span}, ClaimEvent, time.Since(start)); run != nil {
		run(execCtx)
	}
}

// claimed is a claim with the span of its step execution.
type claimed struct {
	c    db.ClaimedStep
	ctx  context.Context
	span trace.Span
}

func (w *Worker) startStepSpan(ctx context.Context, q string, msgID int64, method string, at time.Time) (context.Context, trace.Span) {
	return w.tr.Start(ctx, "worker.execute_step_with_context", trace.WithSpanKind(trace.SpanKindConsumer), trace.WithTimestamp(at),
		trace.WithAttributes(semconv.MessagingSystemKey.String("tasker_pgmq"), semconv.MessagingDestinationNameKey.String(q),
			semconv.MessagingOperationTypeProcess, semconv.MessagingMessageIDKey.String(strconv.FormatInt(msgID, 10)),
			tracing.KeyClaimMethod.String(method), tracing.KeyWorkerID.String(w.cfg.ID)))
}

func (w *Worker) pollLoop(ctx, execCtx context.Context, execs *sync.WaitGroup) {
	tick := time.NewTicker(w.cfg.PollInterval)
	defer tick.Stop()
	resync := make(chan struct{}, 1)
	for _, sub := range w.subs {
		go func() {
			select {
			case <-sub.Resync:
				select {
				case resync <- struct{}{}:
				default:
				}
			case <-ctx.Done():
			}
		}()
	}
	for {
		minAge := w.cfg.PollMinAge
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-resync:
			minAge = 0
		}
		for _, q := range w.queues {
			// A full batch means a backlog (wake-ups dropped while every slot
			// was busy): keep claiming as slots free up instead of waiting a
			// whole interval per batch.
			backlog := false
			for ctx.Err() == nil {
				claimed, asked := w.pollQueue(ctx, execCtx, q, minAge, execs, backlog)
				if asked == 0 && !backlog || claimed < asked {
					break
				}
				backlog = true
			}
		}
	}
}

// pollQueue claims as many steps as there are free slots (waiting for one
// first when wait is set) and reports how many it claimed and asked for.
func (w *Worker) pollQueue(ctx, execCtx context.Context, q string, minAge time.Duration, execs *sync.WaitGroup, wait bool) (got, asked int) {
	// Take every free slot, claim that many, give back the rest.
	held := 0
	if wait {
		if !w.acquire(ctx) {
			return 0, 0
		}
		held = 1
	}
	for held < cap(w.slots) {
		select {
		case w.slots <- struct{}{}:
			held++
			continue
		default:
		}
		break
	}
	if held == 0 {
		return 0, 0
	}
	start := time.Now()
	// The batch claim has no parent; each claimed step gets its spans below,
	// under its own message's trace context.
	claims, err := w.funcs.ClaimSteps(tracing.Suppress(ctx), w.pool, q, held, w.cfg.Lease, w.cfg.ID, minAge)
	end := time.Now()
	if err != nil {
		for range held {
			w.release()
		}
		if ctx.Err() == nil {
			w.log.WarnContext(ctx, "polling queue failed", "queue", q, "error", err)
		}
		return 0, 0
	}
	used := 0
	for _, c := range claims {
		if used == held {
			break
		}
		var headers map[string]string
		_ = queue.DecodeHeaders(c.Headers, &headers)
		sctx, span := w.startStepSpan(w.tr.Extract(ctx, headers), q, c.MsgID, ClaimPoll, start)
		_, cspan := w.tr.Start(sctx, "worker.claim_step", trace.WithTimestamp(start),
			trace.WithAttributes(tracing.KeyClaimMethod.String(ClaimPoll)))
		cspan.End(trace.WithTimestamp(end))
		if run := w.prepareClaim(q, claimed{c: c, ctx: sctx, span: span}, ClaimPoll, end.Sub(start)); run != nil {
			used++
			execs.Go(func() {
				defer w.release()
				run(execCtx)
			})
		}
	}
	for range held - used {
		w.release()
	}
	return len(claims), held
}

// heartbeatLoop keeps the leases of running steps alive. It stops with the
// handlers (execCtx), not with intake, so draining steps keep their leases.
func (w *Worker) heartbeatLoop(ctx, execCtx context.Context) {
	tick := time.NewTicker(w.cfg.Lease / 3)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		w.mu.Lock()
		refs := make([]db.LeaseRef, 0, len(w.active))
		for _, r := range w.active {
			refs = append(refs, r.LeaseRef)
		}
		w.mu.Unlock()
		if len(refs) == 0 {
			continue
		}
		n, err := w.funcs.ExtendStepLeases(tracing.Suppress(execCtx), w.pool, refs, w.cfg.Lease)
		if err != nil && execCtx.Err() == nil {
			w.log.WarnContext(ctx, "extending step leases failed", "steps", len(refs), "error", err)
		}
		if err == nil && n < len(refs) {
			// Some lease was not extended: lost, or its step cancelled.
			// Only the latter stops the handler; this read happens only then.
			w.stopCancelled(tracing.Suppress(execCtx), refs)
		}
	}
}

// presenceLoop records this worker in tasker.workers until ctx ends, then
// removes it, so orchestration can tell a namespace nobody serves.
func (w *Worker) presenceLoop(ctx context.Context) {
	host, _ := os.Hostname()
	p := db.WorkerHeartbeatParams{WorkerID: w.cfg.ID, Namespaces: w.cfg.Namespaces, Hostname: host, PID: os.Getpid()}
	tick := time.NewTicker(db.WorkerPresenceInterval)
	defer tick.Stop()
	for {
		if err := db.WorkerHeartbeat(tracing.Suppress(ctx), w.pool, p); err != nil && ctx.Err() == nil {
			w.log.WarnContext(ctx, "recording worker presence failed", "error", err)
		}
		select {
		case <-ctx.Done():
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			defer cancel()
			if err := db.WorkerGone(tracing.Suppress(dctx), w.pool, w.cfg.ID); err != nil {
				w.log.WarnContext(ctx, "removing worker presence failed; it expires by itself", "error", err)
			}
			return
		case <-tick.C:
		}
	}
}

// stopCancelled cancels the contexts of the handlers among refs whose step
// was cancelled with its task.
func (w *Worker) stopCancelled(ctx context.Context, refs []db.LeaseRef) {
	ids := make([]uuid.UUID, len(refs))
	for i, r := range refs {
		ids[i] = r.StepUUID
	}
	cancelled, err := db.CancelledSteps(ctx, w.pool, ids)
	if err != nil {
		if ctx.Err() == nil {
			w.log.WarnContext(ctx, "reading cancelled steps failed", "error", err)
		}
		return
	}
	w.cancelSteps(cancelled)
}
