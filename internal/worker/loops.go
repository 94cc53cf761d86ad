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

// tryAcquire takes a free slot if there is one.
func (w *Worker) tryAcquire() bool {
	select {
	case w.slots <- struct{}{}:
		return true
	default:
		return false
	}
}

// maxClaimsInFlight bounds the claim statements one queue's wake-ups have
// running at once.
const maxClaimsInFlight = 4

// eventLoop claims the steps of one queue's wake-ups, group-commit style:
// it never waits to gather a batch. Each claim statement takes every
// wake-up pending when it starts (as many as there are free slots), and up
// to maxClaimsInFlight statements run at once, so wake-ups arriving one at a
// time are claimed at once and in parallel, while a burst (one NOTIFY
// statement for a batch of steps, or wake-ups queued while the claims in
// flight ran) is claimed in one statement.
func (w *Worker) eventLoop(ctx, execCtx context.Context, sub *queue.Subscription, execs *sync.WaitGroup) {
	inflight := make(chan struct{}, maxClaimsInFlight)
	var next *queue.Notification // taken from the channel but not yet given a slot
	for {
		var first queue.Notification
		if next != nil {
			first, next = *next, nil
		} else {
			select {
			case <-ctx.Done():
				return
			case first = <-sub.C:
			}
		}
		if !w.acquire(ctx) {
			return
		}
		select {
		case inflight <- struct{}{}:
		case <-ctx.Done():
			w.release()
			return
		}
		batch := []queue.Notification{first}
	gather:
		for {
			select {
			case n := <-sub.C:
				if !w.tryAcquire() {
					next = &n
					break gather
				}
				batch = append(batch, n)
			default:
				break gather
			}
		}
		if next != nil {
			batch, next = w.gatherSaturated(ctx, sub, batch, next)
		}
		execs.Go(func() { w.claimAndRun(ctx, execCtx, sub.Queue, batch, inflight, execs) })
	}
}

// saturatedGather bounds how long a saturated worker holds a claim to let
// more slots free up: about one claim statement under load.
const saturatedGather = 2 * time.Millisecond

// gatherSaturated grows batch while more wake-ups wait than there are free
// slots (next is the first of them). Slots then free one at a time as
// handlers finish, and claiming each alone costs a statement per step: a
// saturated worker claimed one step per statement and fell behind its
// backlog. It waits up to saturatedGather for further slots, taking a
// waiting wake-up for each, and returns the batch and the wake-up left
// without a slot, if any. An idle worker never gets here.
func (w *Worker) gatherSaturated(ctx context.Context, sub *queue.Subscription, batch []queue.Notification,
	next *queue.Notification) ([]queue.Notification, *queue.Notification) {
	timer := time.NewTimer(saturatedGather)
	defer timer.Stop()
	for next != nil {
		select {
		case w.slots <- struct{}{}:
			batch = append(batch, *next)
			next = nil
			select {
			case n := <-sub.C:
				next = &n
			default:
			}
		case <-timer.C:
			return batch, next
		case <-ctx.Done():
			return batch, next
		}
	}
	return batch, next
}

// gatherSlots takes up to n slots that free within saturatedGather and
// returns how many it took.
func (w *Worker) gatherSlots(ctx context.Context, n int) int {
	timer := time.NewTimer(saturatedGather)
	defer timer.Stop()
	got := 0
	for got < n {
		select {
		case w.slots <- struct{}{}:
			got++
		case <-timer.C:
			return got
		case <-ctx.Done():
			return got
		}
	}
	return got
}

// claimAndRun claims the steps of a batch of wake-ups, each holding a slot,
// in one statement, then runs each claimed step in its slot (the first in
// this goroutine). It frees its place in inflight once the claim returns.
func (w *Worker) claimAndRun(ctx, execCtx context.Context, q string, batch []queue.Notification, inflight <-chan struct{}, execs *sync.WaitGroup) {
	// Each notification carries its enqueue's trace context, so every step
	// span and its claim nest under their own producer from the start.
	start := time.Now()
	type member struct {
		ctx, cctx   context.Context
		span, claim trace.Span
	}
	members := make([]member, len(batch))
	ids := make([]int64, len(batch))
	for i, n := range batch {
		sctx, span := w.startStepSpan(w.tr.Extract(ctx, n.Headers), q, n.ID, ClaimEvent, start)
		cctx, cspan := w.tr.Start(sctx, "worker.claim_step", trace.WithTimestamp(start),
			trace.WithAttributes(tracing.KeyClaimMethod.String(ClaimEvent), tracing.KeyClaimBatchSize.Int(len(batch))))
		members[i] = member{ctx: sctx, cctx: cctx, span: span, claim: cspan}
		ids[i] = n.ID
	}
	// The statement has no trace of its own: each step records its part in
	// its own trace, as sql.claim_step under its worker.claim_step.
	claims, err := w.funcs.ClaimStepMessages(tracing.Suppress(ctx), w.pool, q, ids, w.cfg.Lease, w.cfg.ID)
	end := time.Now()
	<-inflight
	call := db.Call{Function: "claim_step", Queue: q, Messaging: "receive"}
	byID := make(map[int64]db.ClaimedStep, len(claims))
	for _, c := range claims {
		byID[c.MsgID] = c
	}
	var runs []func(context.Context)
	for i, n := range batch {
		m := members[i]
		w.tr.BatchMember(m.cctx, call, start, end, len(batch), err)
		tracing.End(m.claim, err)
		c, ok := byID[n.ID]
		delete(byID, n.ID) // a repeated wake-up finds its message taken
		switch {
		case err != nil:
			tracing.End(m.span, err)
			if ctx.Err() == nil {
				w.log.WarnContext(m.ctx, "claiming step failed", "queue", q, "msg_id", n.ID, "error", err)
			}
		case !ok:
			// Another worker (or this one's poller) took the message first.
			m.span.SetAttributes(attribute.String("claim_outcome", "not_visible"))
			m.span.End()
		default:
			if run := w.prepareClaim(q, claimed{c: c, ctx: m.ctx, span: m.span}, ClaimEvent, end.Sub(start)); run != nil {
				runs = append(runs, run)
				continue
			}
		}
		w.release()
	}
	for i, run := range runs {
		if i == 0 {
			continue
		}
		execs.Go(func() {
			defer w.release()
			run(execCtx)
		})
	}
	if len(runs) > 0 {
		defer w.release()
		runs[0](execCtx)
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
			// Every reconnect asks for a poll at once, not only the first.
			for {
				select {
				case <-sub.Resync:
					select {
					case resync <- struct{}{}:
					default:
					}
				case <-ctx.Done():
					return
				}
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
	if wait && held < cap(w.slots) {
		// A backlog and no slot to spare: slots free one at a time as
		// handlers finish; gather them a moment, as the event path does,
		// rather than claim one step per statement.
		held += w.gatherSlots(ctx, cap(w.slots)-held)
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
			trace.WithAttributes(tracing.KeyClaimMethod.String(ClaimPoll), tracing.KeyClaimBatchSize.Int(len(claims))))
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
