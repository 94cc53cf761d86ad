package worker

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskerhq/tasker/handler"
	"github.com/taskerhq/tasker/internal/db"
	"github.com/taskerhq/tasker/internal/messages"
	"github.com/taskerhq/tasker/internal/metrics"
	"github.com/taskerhq/tasker/internal/queue"
	"github.com/taskerhq/tasker/internal/templatestore"
	"github.com/taskerhq/tasker/internal/tracing"
)

// Config configures a Worker. Zero values mean the documented default.
type Config struct {
	// Namespaces the worker serves (required). Each must have a registered template.
	Namespaces []string
	// ID names the worker in step history. Default: "worker_" + a UUIDv7.
	ID string
	// Concurrency is how many handlers run at once. Default 10.
	Concurrency int
	// Lease is how long a claimed step stays ours without a heartbeat; a crashed
	// worker's steps are retried this long after its last heartbeat. Default 10s.
	Lease time.Duration
	// PollInterval is how often queues are read for steps whose notification
	// was missed and for expired leases. Default 1s.
	PollInterval time.Duration
	// PollMinAge keeps the poller off messages a notification is about to deliver. Default 200ms.
	PollMinAge time.Duration
	// ShutdownGrace is how long running handlers may finish after Run's context
	// ends; steps still running then are abandoned to lease expiry. Default 10s;
	// negative means none.
	ShutdownGrace time.Duration
	// Dispatcher runs handlers (required).
	Dispatcher Dispatcher
	// Submitter lets handlers create child tasks. Optional.
	Submitter handler.TaskSubmitter
	Logger    *slog.Logger
	Observer  db.Observer
	// Tracer makes spans and carries trace context through message headers.
	Tracer *tracing.Tracer
	// Metrics records worker metrics. Default: none.
	Metrics *metrics.Metrics
}

func (c Config) withDefaults() Config {
	if c.ID == "" {
		c.ID = "worker_" + uuid.Must(uuid.NewV7()).String()
	}
	c.Concurrency = cmp.Or(c.Concurrency, 10)
	c.Lease = cmp.Or(c.Lease, 10*time.Second)
	c.PollInterval = cmp.Or(c.PollInterval, time.Second)
	c.PollMinAge = cmp.Or(c.PollMinAge, 200*time.Millisecond)
	if c.ShutdownGrace == 0 {
		c.ShutdownGrace = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Tracer == nil {
		c.Tracer = tracing.Noop()
	}
	if c.Observer == nil {
		c.Observer = db.Observers{c.Tracer, c.Metrics}
	}
	return c
}

func (c Config) validate() error {
	if len(c.Namespaces) == 0 {
		return errors.New("worker.namespaces: at least one namespace is required")
	}
	for _, ns := range c.Namespaces {
		if err := queue.ValidateNamespace(ns); err != nil {
			return fmt.Errorf("worker.namespaces: %w", err)
		}
	}
	switch {
	case c.Dispatcher == nil:
		return errors.New("worker.dispatcher: required")
	case c.Concurrency < 1:
		return fmt.Errorf("worker.concurrency: must be ≥ 1, got %d", c.Concurrency)
	case c.Lease < 100*time.Millisecond:
		return fmt.Errorf("worker.lease: must be ≥ 100ms, got %s", c.Lease)
	case c.PollInterval < 10*time.Millisecond:
		return fmt.Errorf("worker.poll_interval: must be ≥ 10ms, got %s", c.PollInterval)
	}
	return nil
}

// Claim methods: how a step was found.
const (
	ClaimEvent = "event"
	ClaimPoll  = "poll"
)

// Worker serves the steps of its namespaces.
type Worker struct {
	cfg    Config
	pool   *pgxpool.Pool
	funcs  *db.Funcs
	qc     *queue.Client
	log    *slog.Logger
	tr     *tracing.Tracer
	m      *metrics.Metrics
	queues []string
	subs   []*queue.Subscription

	slots chan struct{}

	mu     sync.Mutex
	active map[uuid.UUID]activeStep
}

type activeStep struct {
	db.LeaseRef
	Namespace string
}

// ErrUnknownNamespace is returned by Run for a namespace with no registered template.
var ErrUnknownNamespace = errors.New("unknown namespace")

// New returns a worker over pool.
func New(pool *pgxpool.Pool, cfg Config) (*Worker, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	w := &Worker{
		cfg:    cfg,
		pool:   pool,
		funcs:  db.NewFuncs(cfg.Observer),
		qc:     queue.NewClient(cfg.Observer),
		log:    cfg.Logger.With("component", "worker", "worker_id", cfg.ID),
		tr:     cfg.Tracer,
		m:      cfg.Metrics,
		slots:  make(chan struct{}, cfg.Concurrency),
		active: map[uuid.UUID]activeStep{},
	}
	for _, ns := range cfg.Namespaces {
		q, _ := queue.WorkerQueue(ns)
		w.queues = append(w.queues, q)
	}
	return w, nil
}

// ID is the worker's identity in step history.
func (w *Worker) ID() string { return w.cfg.ID }

// Subscribe registers the worker's queues with listener (before it runs).
func (w *Worker) Subscribe(l *queue.Listener) error {
	for _, q := range w.queues {
		sub, err := l.Subscribe(q, 1024)
		if err != nil {
			return err
		}
		w.subs = append(w.subs, sub)
	}
	return nil
}

// CheckNamespaces returns ErrUnknownNamespace (wrapped, naming it) for a
// namespace with no registered template.
func (w *Worker) CheckNamespaces(ctx context.Context) error {
	for _, ns := range w.cfg.Namespaces {
		ok, err := templatestore.NamespaceExists(ctx, w.pool, ns)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%w %q: no template of that namespace is registered", ErrUnknownNamespace, ns)
		}
	}
	return nil
}

// Run serves steps until ctx is done, then lets running handlers finish for
// ShutdownGrace. Every goroutine it starts has stopped when it returns.
func (w *Worker) Run(ctx context.Context) error {
	if err := w.CheckNamespaces(ctx); err != nil {
		return err
	}
	if len(w.subs) != len(w.queues) {
		return errors.New("worker: Subscribe must be called before Run")
	}
	// Handlers run under execCtx so shutdown can give them a grace period.
	execCtx, cancelExec := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelExec()
	var loops, execs sync.WaitGroup
	for _, sub := range w.subs {
		loops.Go(func() { w.eventLoop(ctx, execCtx, sub, &execs) })
	}
	loops.Go(func() { w.pollLoop(ctx, execCtx, &execs) })
	loops.Go(func() { w.heartbeatLoop(ctx, execCtx) })
	w.log.InfoContext(ctx, "worker started", "namespaces", w.cfg.Namespaces, "concurrency", w.cfg.Concurrency,
		"lease_ms", w.cfg.Lease.Milliseconds())
	<-ctx.Done()
	loops.Wait()

	finished := make(chan struct{})
	go func() { execs.Wait(); close(finished) }()
	if w.cfg.ShutdownGrace > 0 {
		select {
		case <-finished:
		case <-time.After(w.cfg.ShutdownGrace):
			w.log.Warn("shutdown grace elapsed; abandoning running steps to lease expiry")
		}
	}
	cancelExec()
	<-finished
	return nil
}

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

// prepareClaim records a claim and returns the function that runs its step
// (under execCtx), or nil when the claim yielded nothing to run.
func (w *Worker) prepareClaim(q string, cl claimed, method string, claimDur time.Duration) func(execCtx context.Context) {
	c := cl.c
	cl.span.SetAttributes(tracing.IDs(c.CorrelationID, c.TaskUUID, c.StepUUID, c.Namespace, c.StepName)...)
	cl.span.SetAttributes(attribute.String("claim_outcome", c.Outcome), tracing.KeyAttempt.Int(c.Attempt))
	switch c.Outcome {
	case db.ClaimClaimed, db.ClaimReclaimed, db.ClaimExhausted:
	default:
		w.log.DebugContext(cl.ctx, "step message not claimed", "correlation_id", c.CorrelationID, "task_uuid", c.TaskUUID,
			"step_uuid", c.StepUUID, "queue", q, "msg_id", c.MsgID, "outcome", c.Outcome)
		cl.span.End()
		return nil
	}
	if link, ok := tracing.LinkTo(c.PriorTraceparent); ok {
		cl.span.AddLink(link)
	}
	w.m.StepClaimed(cl.ctx, c.Namespace, method, q, claimDur)
	if method == ClaimPoll {
		w.m.FallbackPollHits(cl.ctx, q, 1)
	}
	w.track(c)
	w.log.InfoContext(cl.ctx, "step claimed", "correlation_id", c.CorrelationID, "task_uuid", c.TaskUUID,
		"step_uuid", c.StepUUID, "namespace", c.Namespace, "operation", "claim_step", "event", "step.claimed",
		"duration_ms", float64(claimDur.Microseconds())/1000, "step_name", c.StepName, "attempt", c.Attempt,
		"claim_method", method, "outcome", c.Outcome)
	return func(execCtx context.Context) {
		defer w.untrack(c.StepUUID)
		rctx := tracing.WithCorrelationID(tracing.Rebase(execCtx, cl.ctx), c.CorrelationID)
		err := w.execute(rctx, q, c)
		tracing.End(cl.span, err)
	}
}

func (w *Worker) track(c db.ClaimedStep) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.active[c.StepUUID] = activeStep{LeaseRef: db.LeaseRef{StepUUID: c.StepUUID, Attempt: c.Attempt, MsgID: c.MsgID}, Namespace: c.Namespace}
}

func (w *Worker) untrack(id uuid.UUID) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.active, id)
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
		if _, err := w.funcs.ExtendStepLeases(tracing.Suppress(execCtx), w.pool, refs, w.cfg.Lease); err != nil && execCtx.Err() == nil {
			w.log.WarnContext(ctx, "extending step leases failed", "steps", len(refs), "error", err)
		}
	}
}

// execute runs one claimed step and submits its result. ctx carries the
// step's span; the error it returns is only for that span.
func (w *Worker) execute(ctx context.Context, q string, c db.ClaimedStep) error {
	logAttrs := []any{"correlation_id", c.CorrelationID, "task_uuid", c.TaskUUID, "step_uuid", c.StepUUID,
		"namespace", c.Namespace, "step_name", c.StepName, "attempt", c.Attempt}
	stepSpan := trace.SpanFromContext(ctx)
	started := time.Now()
	var res handler.Result
	if c.Outcome == db.ClaimExhausted {
		res = handler.Failure(handler.ErrorTypeLeaseExpired, "",
			fmt.Sprintf("the worker running attempt %d stopped responding and no attempts remain", c.Attempt), false)
	} else {
		sc := &handler.StepContext{
			TaskUUID: c.TaskUUID, StepUUID: c.StepUUID, StepName: c.StepName, Namespace: c.Namespace,
			TaskName: c.TaskName, TaskVersion: c.TaskVersion, CorrelationID: c.CorrelationID,
			ParentCorrelationID: c.ParentCorrelationID, Context: c.TaskContext, Inputs: orEmptyObject(c.Inputs),
			Attempt: c.Attempt, MaxAttempts: c.MaxAttempts, Submitter: w.cfg.Submitter,
			DependencyResults: map[string]json.RawMessage{},
		}
		if len(c.DependencyResults) > 0 {
			if err := json.Unmarshal(c.DependencyResults, &sc.DependencyResults); err != nil {
				w.log.ErrorContext(ctx, "decoding dependency results", append(logAttrs, "error", err)...)
			}
		}
		w.log.InfoContext(ctx, "step executing", append(logAttrs, "operation", "execute_step_with_context",
			"event", "step.executing", "handler", c.Handler)...)
		hctx, hspan := w.tr.Start(ctx, "worker.invoke_handler",
			trace.WithAttributes(tracing.IDs(c.CorrelationID, c.TaskUUID, c.StepUUID, c.Namespace, c.StepName)...),
			trace.WithAttributes(tracing.KeyHandler.String(c.Handler), tracing.KeyAttempt.Int(c.Attempt)))
		var aborted bool
		hstart := time.Now()
		res, aborted = w.invoke(hctx, sc, c.Handler, c.Timeout)
		if !aborted {
			errType := ""
			if res.Error != nil || !res.Success {
				errType = handler.ErrorTypePermanent
				if res.Error != nil && res.Error.Type != "" {
					errType = res.Error.Type
				}
			}
			w.m.StepExecuted(hctx, c.CorrelationID, c.Namespace, c.StepName, errType, time.Since(hstart))
		}
		if aborted {
			hspan.SetAttributes(attribute.Bool("abandoned", true))
			hspan.End()
			// Shutdown took the handler away: leave the step to lease expiry so
			// another worker retries it, as if this process had crashed.
			w.log.WarnContext(ctx, "step abandoned at shutdown", logAttrs...)
			return errors.New("abandoned at shutdown")
		}
		if res.Error != nil || !res.Success {
			errType, msg := handler.ErrorTypePermanent, "handler failed"
			if res.Error != nil {
				errType, msg = res.Error.Type, res.Error.Message
			}
			tracing.Fail(hspan, errType, msg)
			tracing.Fail(stepSpan, errType, msg)
		}
		hspan.End()
	}
	finished := time.Now()
	traceparent := w.tr.Traceparent(ctx)
	results, err := encodeResult(c, res, w.cfg.ID, traceparent, started, finished)
	if err != nil {
		res = handler.Failure("result_encoding_error", "", err.Error(), false)
		results, _ = encodeResult(c, res, w.cfg.ID, traceparent, started, finished)
	}
	sctx, sspan := w.tr.Start(ctx, "worker.submit_step_result", trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(tracing.IDs(c.CorrelationID, c.TaskUUID, c.StepUUID, c.Namespace, c.StepName)...),
		trace.WithAttributes(semconv.MessagingDestinationNameKey.String(queue.StepResults)))
	sub := db.StepResultSubmission{
		StepUUID: c.StepUUID, Attempt: c.Attempt, Success: res.Success && res.Error == nil, Results: results,
		WorkerID: w.cfg.ID, Queue: q, MsgID: c.MsgID, ResultQueue: queue.StepResults, Headers: w.tr.Inject(sctx),
		DeferNotify: true,
	}
	substart := time.Now()
	err = w.submit(sctx, sub)
	tracing.End(sspan, err)
	if err == nil {
		w.m.ResultSubmitted(sctx, c.Namespace, q, time.Since(substart))
	}
	if err != nil {
		w.log.ErrorContext(ctx, "submitting step result failed; the step will be retried after its lease expires",
			append(logAttrs, "operation", "submit_step_result", "error", err)...)
		return err
	}
	w.log.DebugContext(ctx, "step result submitted", append(logAttrs, "operation", "submit_step_result",
		"success", sub.Success, "duration_ms", float64(finished.Sub(started).Microseconds())/1000)...)
	return nil
}

func (w *Worker) submit(ctx context.Context, sub db.StepResultSubmission) error {
	var err error
	for attempt := range 5 {
		var ok bool
		var id int64
		id, ok, err = w.funcs.SubmitStepResult(ctx, w.pool, sub)
		if err == nil {
			if !ok {
				w.log.WarnContext(ctx, "step result discarded: the lease was lost to another worker",
					"step_uuid", sub.StepUUID, "attempt", sub.Attempt)
				return nil
			}
			if sub.DeferNotify {
				// After the commit, so notifying commits do not serialise;
				// a lost wake-up is found by orchestration's fallback poller.
				if nerr := w.qc.Notify(ctx, w.pool, sub.ResultQueue, []int64{id}, sub.Headers); nerr != nil {
					w.log.WarnContext(ctx, "notifying orchestration failed; its poller will find the result", "error", nerr)
				}
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(50<<attempt) * time.Millisecond):
		}
	}
	return err
}

// invoke runs the handler with the step's timeout and turns a panic or a
// timeout into a failed result. aborted is true when ctx (shutdown) ended it.
func (w *Worker) invoke(ctx context.Context, sc *handler.StepContext, name string, timeout time.Duration) (res handler.Result, aborted bool) {
	if !w.cfg.Dispatcher.Has(name) {
		return handler.Failure(handler.ErrorTypeUnknownHandler, "", fmt.Sprintf("no handler named %q is registered on worker %s", name, w.cfg.ID), false), false
	}
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	hctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	done := make(chan handler.Result, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				w.log.ErrorContext(ctx, "handler panicked", "correlation_id", sc.CorrelationID, "task_uuid", sc.TaskUUID,
					"step_uuid", sc.StepUUID, "handler", name, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
				done <- handler.Failure(handler.ErrorTypePanic, "", fmt.Sprintf("handler panicked: %v", p), true)
			}
		}()
		done <- w.cfg.Dispatcher.Dispatch(hctx, sc, name)
	}()
	select {
	case r := <-done:
		if hctx.Err() != nil && ctx.Err() != nil {
			return r, true
		}
		return r, false
	case <-hctx.Done():
		if ctx.Err() != nil {
			return handler.Result{}, true
		}
		return handler.Failure(handler.ErrorTypeTimeout, "", fmt.Sprintf("handler did not finish within %s", timeout), true), false
	}
}

func encodeResult(c db.ClaimedStep, r handler.Result, workerID, traceparent string, started, finished time.Time) (json.RawMessage, error) {
	success := r.Success && r.Error == nil
	out := messages.StepExecutionResult{
		StepUUID: c.StepUUID,
		Success:  success,
		Status:   "completed",
		Result:   r.Value,
		Metadata: messages.ResultMetadata{
			ExecutionTimeMs: float64(finished.Sub(started).Microseconds()) / 1000,
			Attempt:         c.Attempt, WorkerID: workerID, StartedAt: started.UTC(), CompletedAt: finished.UTC(),
			CorrelationID: c.CorrelationID, Traceparent: traceparent, Custom: r.Metadata,
		},
	}
	if !success {
		out.Status = "failed"
		out.Result = map[string]any{}
		e := r.Error
		if e == nil {
			e = &handler.StepError{Message: "handler reported failure without an error", Type: handler.ErrorTypePermanent}
		}
		out.Error = &messages.ResultError{Message: e.Message, ErrorType: e.Type, ErrorCode: e.Code, Retryable: e.Retryable}
		out.Metadata.Retryable = e.Retryable
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("encoding result of step %s: %w", c.StepName, err)
	}
	return b, nil
}

func orEmptyObject(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 || string(raw) == "null" {
		return json.RawMessage(`{}`)
	}
	return raw
}

// ActiveByNamespace counts running handlers per namespace (for the active executions gauge).
func (w *Worker) ActiveByNamespace() map[string]int64 {
	out := make(map[string]int64, len(w.cfg.Namespaces))
	for _, ns := range w.cfg.Namespaces {
		out[ns] = 0
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, r := range w.active {
		out[r.Namespace]++
	}
	return out
}
