package orchestration

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskerhq/tasker/client"
	"github.com/taskerhq/tasker/internal/db"
	"github.com/taskerhq/tasker/internal/queue"
	"github.com/taskerhq/tasker/internal/state"
	"github.com/taskerhq/tasker/internal/taskreq"
	"github.com/taskerhq/tasker/internal/templatestore"
	"github.com/taskerhq/tasker/internal/tracing"
)

// ReadBatchInTx reads what a caller needs about the tasks of a batch, inside
// the creating transaction; created is in request order.
type ReadBatchInTx func(ctx context.Context, tx pgx.Tx, created []*Created) error

// CreateTasks creates the tasks of reqs in one transaction: all of them or,
// when any request can never succeed, none. Each table is written with one
// multi-row statement for the whole batch, and the root steps of every task
// are enqueued in the same transaction; the workers' wake-ups for the whole
// batch go out in one statement after the commit. The result is in request
// order.
//
// Requests are checked as CreateTask checks one. Every refused request is
// named in a *taskreq.BatchError; too many requests, or none, is a
// *taskreq.FieldError on "tasks". Idempotency keys work as with CreateTask:
// a key that created a task before answers with that task (Existing) and a
// key used for a different request refuses the batch; two requests of one
// batch with the same key are one task when they ask for the same thing.
func (s *Service) CreateTasks(ctx context.Context, reqs []client.TaskRequest) ([]*Created, error) {
	return s.createTasks(ctx, reqs, nil)
}

// CreateTasksAndRead is CreateTasks with read run in the creating
// transaction before its commit, as CreateTaskAndRead does for one task.
func (s *Service) CreateTasksAndRead(ctx context.Context, reqs []client.TaskRequest, read ReadBatchInTx) ([]*Created, error) {
	return s.createTasks(ctx, reqs, read)
}

// batchItem is one request of a batch on its way to the database.
type batchItem struct {
	req   client.TaskRequest
	reg   *templatestore.Registered
	runAt time.Time
	queue string
	dupOf int // index of an earlier request with the same idempotency key, or -1
	row   db.NewTask
	steps []db.NewStep
	edges []db.NewEdge
	// roots are the steps enqueued at creation, with headers (the trace
	// context their workers continue).
	roots   []uuid.UUID
	headers map[string]string
	ctx     context.Context // inside the task's own trace
	span    trace.Span
	enqCtx  context.Context
	enqSpan trace.Span
	created *Created
}

func (s *Service) createTasks(ctx context.Context, reqs []client.TaskRequest, read ReadBatchInTx) (_ []*Created, err error) {
	start := time.Now()
	switch {
	case len(reqs) == 0:
		return nil, taskreq.Invalidf("tasks", "tasks must hold at least one task request")
	case len(reqs) > taskreq.MaxBatch:
		return nil, taskreq.Invalidf("tasks", "at most %d task requests fit in one batch, got %d", taskreq.MaxBatch, len(reqs))
	}
	ctx, span := s.tr.Start(ctx, "task_initializer.create_tasks_batch", trace.WithAttributes(attribute.Int("tasks", len(reqs))))
	defer func() { tracing.End(span, err) }()

	items, err := s.prepareBatch(ctx, reqs)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, it := range items {
			if it.enqSpan != nil {
				tracing.End(it.enqSpan, err)
			}
			if it.span != nil {
				tracing.End(it.span, err)
			}
		}
	}()
	var msgs []db.EnqueuedStep
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		msgs, err = s.writeBatch(ctx, tx, items)
		if err != nil || read == nil {
			return err
		}
		out := make([]*Created, len(items))
		for i, it := range items {
			out[i] = it.created
		}
		if err := read(ctx, tx, out); err != nil {
			return fmt.Errorf("reading %d tasks back: %w", len(items), err)
		}
		return nil
	})
	if taskreq.IsFieldError(err) || isBatchError(err) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("creating %d tasks: %w", len(items), err)
	}
	s.afterBatch(ctx, items, msgs, start)
	out := make([]*Created, len(items))
	created := 0
	for i, it := range items {
		out[i] = it.created
		if !it.created.Existing {
			created++
		}
	}
	span.SetAttributes(attribute.Int("tasks_created", created))
	return out, nil
}

func isBatchError(err error) bool {
	var be *taskreq.BatchError
	return errors.As(err, &be)
}

// prepareBatch checks every request, finds its template and builds its rows;
// nothing is written. All refused requests come back in one BatchError.
func (s *Service) prepareBatch(ctx context.Context, reqs []client.TaskRequest) ([]*batchItem, error) {
	items := make([]*batchItem, len(reqs))
	var refused []taskreq.ItemError
	keys := map[string]int{}
	for i, req := range reqs {
		if req.CorrelationID == nil || *req.CorrelationID == uuid.Nil {
			id := uuid.Must(uuid.NewV7())
			req.CorrelationID = &id
		}
		it := &batchItem{req: req, dupOf: -1}
		items[i] = it
		var err error
		it.reg, err = s.resolveTemplate(ctx, req)
		var fe *taskreq.FieldError
		if errors.As(err, &fe) {
			refused = append(refused, taskreq.ItemError{Index: i, FieldError: fe})
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("creating task %d of %d: %w", i, len(reqs), err)
		}
		if it.runAt, err = taskreq.RunAt(&it.req, time.Now()); err != nil {
			return nil, err // Validate (in resolveTemplate) checked it
		}
		if it.queue, err = queue.WorkerQueue(it.reg.Template.Namespace); err != nil {
			return nil, err
		}
		if req.IdempotencyKey != "" {
			k := req.Namespace + "/" + req.Name + "\x00" + req.IdempotencyKey
			first, seen := keys[k]
			switch {
			case !seen:
				keys[k] = i
			case taskreq.Fingerprint(&reqs[first]) == taskreq.Fingerprint(&req):
				it.dupOf = first
			default:
				refused = append(refused, taskreq.ItemError{Index: i, FieldError: &taskreq.FieldError{
					Field: "idempotency_key", Code: taskreq.CodeIdempotencyConflict, Kind: taskreq.Conflict,
					Message: fmt.Sprintf("idempotency_key %q is used by request %d for a different request", req.IdempotencyKey, first)}})
			}
		}
	}
	if len(refused) > 0 {
		return nil, &taskreq.BatchError{Total: len(reqs), Items: refused}
	}
	batchSpan := trace.SpanContextFromContext(ctx)
	for _, it := range items {
		if it.dupOf < 0 {
			if err := s.buildTask(ctx, batchSpan, it); err != nil {
				return nil, err
			}
		}
	}
	return items, nil
}

// buildTask lays out one new task's rows: the task in the state its initial
// evaluation would leave it in, its steps (roots enqueued unless the task is
// delayed) and edges. A new task's readiness needs no query: its roots are
// the steps without dependencies. Each task is a trace of its own, linked to
// the batch's.
func (s *Service) buildTask(ctx context.Context, batch trace.SpanContext, it *batchItem) error {
	req, tpl := &it.req, it.reg.Template
	taskUUID, corr := uuid.Must(uuid.NewV7()), *req.CorrelationID
	tctx := tracing.WithCorrelationID(context.WithoutCancel(ctx), corr)
	it.ctx, it.span = s.tr.Start(tctx, "task_initializer.create_and_enqueue_task_from_request",
		trace.WithNewRoot(), trace.WithLinks(trace.Link{SpanContext: batch}),
		trace.WithAttributes(tracing.IDs(corr, taskUUID, uuid.Nil, tpl.Namespace, "")...),
		trace.WithAttributes(attribute.String("task_name", req.Name)))
	traceCtx, _ := json.Marshal(s.tr.Inject(it.ctx))
	taskCtx := req.Context
	if len(taskCtx) == 0 {
		taskCtx = json.RawMessage(`{}`)
	}
	tags := req.Tags
	if tags == nil {
		tags = []string{}
	}
	tagsJSON, _ := json.Marshal(tags)
	delayed := time.Until(it.runAt) > 0
	hops, err := initialHops(taskUUID, delayed)
	if err != nil {
		return err
	}
	history := []db.Hop{{To: state.TaskPending, Reason: "created"}}
	for _, h := range hops {
		history = append(history, db.Hop{To: h.To, Reason: h.Reason})
	}
	it.row = db.NewTask{TaskUUID: taskUUID, NamedTaskUUID: it.reg.NamedTaskUUID, State: hops[len(hops)-1].To,
		Context: taskCtx, Initiator: req.Initiator, SourceSystem: req.SourceSystem, Reason: req.Reason, Tags: tagsJSON,
		Priority: req.Priority, CorrelationID: corr, ParentCorrelationID: req.ParentCorrelationID, TraceContext: traceCtx,
		History: history}
	if req.IdempotencyKey != "" {
		it.row.IdempotencyKey, it.row.IdempotencyScope = req.IdempotencyKey, req.Namespace+"/"+req.Name
		it.row.IdempotencyFingerprint = taskreq.Fingerprint(req)
	}
	if !delayed {
		it.enqCtx, it.enqSpan = s.tr.Start(it.ctx, "step_enqueuer.enqueue_steps_batch", trace.WithSpanKind(trace.SpanKindProducer),
			trace.WithAttributes(tracing.IDs(corr, taskUUID, uuid.Nil, tpl.Namespace, "")...),
			trace.WithAttributes(semconv.MessagingDestinationNameKey.String(it.queue)))
		it.headers = s.tr.Inject(it.enqCtx)
	}
	byName := make(map[string]uuid.UUID, len(tpl.Steps))
	for _, st := range tpl.Steps {
		byName[st.Name] = uuid.Must(uuid.NewV7())
	}
	var retryAt *time.Time
	if delayed {
		retryAt = &it.runAt
		it.row.RunAt = &it.runAt
	}
	for _, st := range tpl.Steps {
		var inputs []byte
		if len(st.Inputs) > 0 {
			b, err := json.Marshal(st.Inputs)
			if err != nil {
				return fmt.Errorf("encoding inputs of step %s: %w", st.Name, err)
			}
			inputs = b
		}
		if !delayed && len(st.DependsOn) == 0 {
			it.roots = append(it.roots, byName[st.Name])
		}
		it.steps = append(it.steps, db.NewStep{StepUUID: byName[st.Name], TaskUUID: taskUUID,
			NamedStepUUID: it.reg.NamedSteps[st.Name], Name: st.Name, Handler: st.Handler,
			Retryable: st.Retry.Retryable, MaxAttempts: int32(st.Retry.MaxAttempts),
			BackoffBaseMs: int32(st.Retry.BackoffBase / time.Millisecond), BackoffCapMs: int32(st.Retry.BackoffCap / time.Millisecond),
			TimeoutMs: int32(st.Timeout / time.Millisecond), Inputs: inputs, NextRetryAt: retryAt, CorrelationID: corr})
		for _, d := range st.DependsOn {
			it.edges = append(it.edges, db.NewEdge{EdgeUUID: uuid.Must(uuid.NewV7()), From: byName[d], To: byName[st.Name]})
		}
	}
	if it.enqSpan != nil {
		it.enqSpan.SetAttributes(attribute.Int("steps", len(it.roots)))
	}
	it.created = &Created{TaskUUID: taskUUID, CorrelationID: corr, State: it.row.State}
	return nil
}

// writeBatch writes the batch in tx: the task rows first (whether an
// idempotency key is new decides what else is written), then everything
// else of the tasks that were inserted.
func (s *Service) writeBatch(ctx context.Context, tx pgx.Tx, items []*batchItem) ([]db.EnqueuedStep, error) {
	var rows []db.NewTask
	for _, it := range items {
		if it.dupOf < 0 {
			rows = append(rows, it.row)
		}
	}
	// Keys are claimed in one order by every batch, so two batches sharing
	// keys wait for each other instead of deadlocking.
	slices.SortStableFunc(rows, func(a, b db.NewTask) int {
		return cmp.Or(cmp.Compare(a.IdempotencyScope, b.IdempotencyScope), cmp.Compare(a.IdempotencyKey, b.IdempotencyKey))
	})
	inserted, err := db.InsertTaskRows(ctx, tx, rows)
	if err != nil {
		return nil, err
	}
	var scopes, keys []string
	for _, it := range items {
		if it.dupOf < 0 && !inserted[it.row.TaskUUID] {
			scopes, keys = append(scopes, it.row.IdempotencyScope), append(keys, it.row.IdempotencyKey)
		}
	}
	if len(keys) > 0 {
		holders, err := db.IdempotencyHolders(ctx, tx, scopes, keys)
		if err != nil {
			return nil, err
		}
		byKey := make(map[string]db.IdempotencyHolder, len(holders))
		for _, h := range holders {
			byKey[h.Scope+"\x00"+h.Key] = h
		}
		var refused []taskreq.ItemError
		for i, it := range items {
			if it.dupOf >= 0 || inserted[it.row.TaskUUID] {
				continue
			}
			h, ok := byKey[it.row.IdempotencyScope+"\x00"+it.row.IdempotencyKey]
			switch {
			case !ok:
				// Deleted between the two statements (pruned): rare enough
				// that the caller's retry is the answer.
				return nil, fmt.Errorf("reading task of idempotency key %q: %w", it.row.IdempotencyKey, db.ErrNotFound)
			case h.Fingerprint != it.row.IdempotencyFingerprint:
				refused = append(refused, taskreq.ItemError{Index: i, FieldError: idempotencyConflict(it.row.IdempotencyKey, h.TaskUUID)})
			default:
				it.created = &Created{TaskUUID: h.TaskUUID, CorrelationID: h.CorrelationID, State: h.State, Existing: true}
			}
		}
		if len(refused) > 0 {
			return nil, &taskreq.BatchError{Total: len(items), Items: refused}
		}
	}
	var tasks []db.NewTask
	var ready []db.StepToEnqueue
	b := db.TaskBatch{ProcessorUUID: s.cfg.ProcessorUUID}
	for _, it := range items {
		if it.dupOf >= 0 {
			c := *items[it.dupOf].created
			c.Existing = true
			it.created = &c
			continue
		}
		if inserted[it.row.TaskUUID] {
			tasks = append(tasks, it.row)
			b.Steps = append(b.Steps, it.steps...)
			b.Edges = append(b.Edges, it.edges...)
			for _, id := range it.roots {
				ready = append(ready, db.StepToEnqueue{TaskUUID: it.row.TaskUUID, StepUUID: id, Queue: it.queue, Headers: it.headers})
			}
		}
	}
	if len(tasks) == 0 {
		return nil, nil
	}
	if err := db.CreateTaskBatch(ctx, tx, tasks, b); err != nil {
		return nil, err
	}
	if len(ready) == 0 {
		return nil, nil
	}
	// The roots are enqueued as orchestration enqueues any ready step, so
	// their messages and history are the same as on every other path.
	enq, err := s.funcs.EnqueueReadySteps(ctx, tx, ready)
	if err != nil {
		return nil, err
	}
	if len(enq) != len(ready) {
		return nil, fmt.Errorf("enqueuing the first steps of %d tasks: %d of %d steps enqueued", len(tasks), len(enq), len(ready))
	}
	return enq, nil
}

// initialHops is the path a new task takes in its creating transaction: on
// to its root steps, enqueued there, or (delayed) to wait for its start
// time, with the reasons the single-task path's evaluation records.
func initialHops(task uuid.UUID, delayed bool) ([]db.TaskHop, error) {
	var hops []db.TaskHop
	if delayed {
		hops = taskHops(task, state.TaskPending, "no_ready_steps",
			state.TaskPath(state.TaskPending, state.TaskWaitingForDependencies))
	} else {
		hops = taskHops(task, state.TaskPending, "ready_steps_found",
			append(state.TaskPath(state.TaskPending, state.TaskEnqueuingSteps), state.TaskStepsInProcess))
	}
	if err := checkHops(hops); err != nil || len(hops) == 0 {
		return nil, fmt.Errorf("initial path of task %s: %w", task, errors.Join(err, errors.New("no hops")))
	}
	return hops, nil
}

// afterBatch records what a committed batch did, as the single-task path
// does per task, and wakes the workers: one notifying statement for the
// whole batch.
func (s *Service) afterBatch(ctx context.Context, items []*batchItem, enq []db.EnqueuedStep, start time.Time) {
	msgOf := make(map[uuid.UUID]int64, len(enq))
	for _, e := range enq {
		msgOf[e.StepUUID] = e.MsgID
	}
	var wakes []queue.Wake
	unserved := map[string]bool{}
	for _, it := range items {
		c := it.created
		if c.Existing {
			if it.span != nil {
				it.span.SetAttributes(attribute.Bool("idempotent_repeat", true))
			}
			s.log.DebugContext(ctx, "idempotent repeat of a task request", "correlation_id", c.CorrelationID,
				"task_uuid", c.TaskUUID, "namespace", it.req.Namespace, "idempotency_key", it.req.IdempotencyKey)
			continue
		}
		tctx, tpl := it.ctx, it.reg.Template
		ns := tpl.Namespace
		s.m.TaskRequested(tctx, c.CorrelationID, ns, it.req.Name, time.Since(start))
		s.log.InfoContext(tctx, "task initialized", "correlation_id", c.CorrelationID, "task_uuid", c.TaskUUID,
			"namespace", ns, "operation", "create_and_enqueue_task_from_request", "event", "task.initialized",
			"duration_ms", ms(time.Since(start)), "template", tpl.Key(), "batch_size", len(items))
		if it.enqSpan == nil {
			// Not ready before its start: the readiness poller (and this
			// process's timer) take the delayed task on then.
			s.wakeAt(time.Until(it.runAt))
			continue
		}
		enqueued := 0
		for _, st := range it.steps {
			id, ok := msgOf[st.StepUUID]
			if !ok {
				continue
			}
			enqueued++
			wakes = append(wakes, queue.MessageWake(it.queue, id, it.headers))
			s.m.StepEnqueued(it.enqCtx, ns, st.Name, it.queue)
			s.log.InfoContext(it.enqCtx, "step enqueued", "correlation_id", c.CorrelationID, "task_uuid", c.TaskUUID,
				"step_uuid", st.StepUUID, "namespace", ns, "operation", "enqueue_steps_batch", "event", "step.enqueued",
				"step_name", st.Name, "queue", it.queue, "msg_id", id)
		}
		s.log.InfoContext(it.enqCtx, "task steps enqueued", "correlation_id", c.CorrelationID, "task_uuid", c.TaskUUID,
			"namespace", ns, "operation", "enqueue_steps_batch", "event", "task.steps_enqueued", "steps_enqueued", enqueued)
		if !unserved[ns] && s.presence.warnUnserved(ns, time.Now()) {
			unserved[ns] = true
			s.log.WarnContext(ctx, "steps enqueued in a namespace no live worker serves; they wait until a worker for it starts",
				"namespace", ns, "queue", it.queue, "operation", "enqueue_steps_batch")
		}
	}
	// Outside the creating transaction's commit, so it does not hold the
	// notification lock through a WAL flush; a lost wake-up is found by the
	// workers' fallback poller.
	if err := s.queues.NotifyAll(tracing.Suppress(context.WithoutCancel(ctx)), s.pool, wakes); err != nil {
		s.log.WarnContext(ctx, "notifying workers failed; their poller will find the steps", "wakes", len(wakes), "error", err)
	}
}
