package orchestration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskerhq/tasker/client"
	"github.com/taskerhq/tasker/internal/db"
	"github.com/taskerhq/tasker/internal/messages"
	"github.com/taskerhq/tasker/internal/queue"
	"github.com/taskerhq/tasker/internal/state"
	"github.com/taskerhq/tasker/internal/taskreq"
	"github.com/taskerhq/tasker/internal/templatestore"
	"github.com/taskerhq/tasker/internal/tracing"
)

// Created describes a task the initializer created.
type Created struct {
	TaskUUID      uuid.UUID
	CorrelationID uuid.UUID
	State         state.Task
	// Existing reports an idempotent repeat: the request's key had created
	// this task before, and nothing was written now.
	Existing bool
}

// CreateTask is TaskInitializer.create_and_enqueue_task_from_request: one
// transaction creates the task, its steps, edges and history, and enqueues the
// root steps. Request problems come back as *taskreq.FieldError and write nothing.
func (s *Service) CreateTask(ctx context.Context, req client.TaskRequest) (*Created, error) {
	return s.createTask(ctx, nil, req, nil)
}

// ReadInTx reads what a caller needs about a task it just created, inside the
// creating transaction.
type ReadInTx func(ctx context.Context, tx pgx.Tx, c *Created) error

// CreateTaskAndRead is CreateTask with read run in the creating transaction
// after the task is written and before the commit. A caller that answers from
// what read saw never has to read again after the commit, where a failure
// (a connection cut, a restart) would report a committed task as failed and
// make its client retry into a duplicate. An error from read rolls back.
func (s *Service) CreateTaskAndRead(ctx context.Context, req client.TaskRequest, read ReadInTx) (*Created, error) {
	return s.createTask(ctx, nil, req, read)
}

// CreateTaskTx is CreateTask inside the caller's transaction: the task exists
// if and only if tx commits. Workers are woken by a NOTIFY that PostgreSQL
// delivers at commit. A failure rolls back to a savepoint, so tx stays usable.
// Lifecycle logs and metrics are recorded when the task is written, before
// the caller commits.
func (s *Service) CreateTaskTx(ctx context.Context, tx pgx.Tx, req client.TaskRequest) (*Created, error) {
	if tx == nil {
		return nil, errors.New("creating task: nil transaction")
	}
	return s.createTask(ctx, tx, req, nil)
}

func (s *Service) createTask(ctx context.Context, callerTx pgx.Tx, req client.TaskRequest, read ReadInTx) (_ *Created, err error) {
	start := time.Now()
	if req.CorrelationID == nil || *req.CorrelationID == uuid.Nil {
		id := uuid.Must(uuid.NewV7())
		req.CorrelationID = &id
	}
	corr := *req.CorrelationID
	ctx = tracing.WithCorrelationID(ctx, corr)
	ctx, span := s.tr.Start(ctx, "task_initializer.create_and_enqueue_task_from_request",
		trace.WithAttributes(tracing.IDs(corr, uuid.Nil, uuid.Nil, req.Namespace, "")...),
		trace.WithAttributes(attribute.String("task_name", req.Name)))
	defer func() { tracing.End(span, err) }()
	reg, err := s.resolveTemplate(ctx, req)
	if err != nil {
		return nil, err
	}
	var out *Created
	ev := s.events()
	ev.notifyInTx = callerTx != nil
	create := func(tx pgx.Tx) error {
		var err error
		out, err = s.createTaskTx(ctx, tx, req, reg, ev)
		if err != nil || read == nil {
			return err
		}
		if err := read(ctx, tx, out); err != nil {
			return fmt.Errorf("reading task %s back: %w", out.TaskUUID, err)
		}
		return nil
	}
	if callerTx != nil {
		err = pgx.BeginFunc(ctx, callerTx, create)
	} else {
		err = s.inTx(ctx, create)
	}
	if err != nil {
		return nil, fmt.Errorf("creating task: %w", err)
	}
	span.SetAttributes(tracing.KeyTaskUUID.String(out.TaskUUID.String()))
	if out.Existing {
		span.SetAttributes(attribute.Bool("idempotent_repeat", true))
		s.log.DebugContext(ctx, "idempotent repeat of a task request", "correlation_id", out.CorrelationID,
			"task_uuid", out.TaskUUID, "namespace", req.Namespace, "idempotency_key", req.IdempotencyKey)
		return out, nil
	}
	s.m.TaskRequested(ctx, corr, req.Namespace, req.Name, time.Since(start))
	s.log.InfoContext(ctx, "task initialized", "correlation_id", out.CorrelationID, "task_uuid", out.TaskUUID,
		"namespace", req.Namespace, "operation", "create_and_enqueue_task_from_request", "event", "task.initialized",
		"duration_ms", ms(time.Since(start)), "template", reg.Template.Key())
	ev.flush()
	return out, nil
}

// resolveTemplate validates req and finds its template. Problems with the
// request come back as *taskreq.FieldError.
func (s *Service) resolveTemplate(ctx context.Context, req client.TaskRequest) (*templatestore.Registered, error) {
	if err := taskreq.Validate(&req); err != nil {
		return nil, err
	}
	reg, err := s.lookupTemplate(ctx, req.Namespace, req.Name, req.Version)
	if errors.Is(err, templatestore.ErrNotFound) {
		if req.Version != "" {
			if _, verr := templatestore.Lookup(ctx, s.pool, req.Namespace, req.Name, ""); verr == nil {
				return nil, &taskreq.FieldError{Field: "version", Code: taskreq.CodeUnknownVersion, Kind: taskreq.NotFound,
					Message: fmt.Sprintf("template %s/%s has no version %s", req.Namespace, req.Name, req.Version)}
			}
		}
		return nil, &taskreq.FieldError{Field: "name", Code: taskreq.CodeUnknownTemplate, Kind: taskreq.NotFound,
			Message: fmt.Sprintf("no template %s/%s is registered", req.Namespace, req.Name)}
	}
	if err != nil {
		return nil, fmt.Errorf("creating task: %w", err)
	}
	return reg, nil
}

func (s *Service) createTaskTx(ctx context.Context, tx pgx.Tx, req client.TaskRequest, reg *templatestore.Registered, ev *txEvents) (_ *Created, err error) {
	tpl := reg.Template
	taskUUID := uuid.Must(uuid.NewV7())
	corr := uuid.Nil
	if req.CorrelationID != nil {
		corr = *req.CorrelationID
	}
	if corr == uuid.Nil {
		corr = uuid.Must(uuid.NewV7())
	}
	taskCtx := req.Context
	if len(taskCtx) == 0 {
		taskCtx = json.RawMessage(`{}`)
	}
	tags := req.Tags
	if tags == nil {
		tags = []string{}
	}
	tagsJSON, _ := json.Marshal(tags)

	steps := make([]db.NewStep, len(tpl.Steps))
	byName := make(map[string]uuid.UUID, len(tpl.Steps))
	for i, st := range tpl.Steps {
		id := uuid.Must(uuid.NewV7())
		byName[st.Name] = id
		steps[i] = db.NewStep{StepUUID: id, TaskUUID: taskUUID, NamedStepUUID: reg.NamedSteps[st.Name], Name: st.Name,
			Handler: st.Handler, Retryable: st.Retry.Retryable, MaxAttempts: int32(st.Retry.MaxAttempts),
			BackoffBaseMs: int32(st.Retry.BackoffBase / time.Millisecond), BackoffCapMs: int32(st.Retry.BackoffCap / time.Millisecond),
			TimeoutMs: int32(st.Timeout / time.Millisecond), CorrelationID: corr}
		if len(st.Inputs) > 0 {
			b, err := json.Marshal(st.Inputs)
			if err != nil {
				return nil, fmt.Errorf("encoding inputs of step %s: %w", st.Name, err)
			}
			steps[i].Inputs = b
		}
	}
	var edges []db.NewEdge
	for _, st := range tpl.Steps {
		for _, d := range st.DependsOn {
			edges = append(edges, db.NewEdge{From: byName[d], To: byName[st.Name]})
		}
	}
	for i := range edges {
		edges[i].EdgeUUID = uuid.Must(uuid.NewV7())
	}

	ctx = tracing.WithCorrelationID(ctx, corr)
	vctx, vspan := s.tr.Start(ctx, "task_initializer.validate_and_create_task",
		trace.WithAttributes(tracing.IDs(corr, taskUUID, uuid.Nil, tpl.Namespace, "")...),
		trace.WithAttributes(attribute.Int("steps", len(steps)), attribute.String("template", tpl.Key())))
	traceCtx, _ := json.Marshal(s.tr.Inject(ctx))
	runAt, err := taskreq.RunAt(&req, time.Now())
	if err != nil {
		tracing.End(vspan, err)
		return nil, err
	}
	// A delayed task's run_at keeps it out of the readiness poll until then
	// and tells every orchestrator when to wake for it; its steps are not
	// ready before then.
	delayed := time.Until(runAt) > 0
	if delayed {
		for i := range steps {
			steps[i].NextRetryAt = &runAt
		}
	}
	// The task is written pending; evaluating it below moves it on as
	// orchestration moves any task.
	row := db.NewTask{TaskUUID: taskUUID, NamedTaskUUID: reg.NamedTaskUUID, State: state.TaskPending, Context: taskCtx,
		Initiator: req.Initiator, SourceSystem: req.SourceSystem, Reason: req.Reason, Tags: tagsJSON, Priority: req.Priority,
		CorrelationID: corr, ParentCorrelationID: req.ParentCorrelationID, TraceContext: traceCtx,
		History: []db.Hop{{To: state.TaskPending, Reason: "created"}}}
	if delayed {
		row.RunAt = &runAt
	}
	if req.IdempotencyKey != "" {
		row.IdempotencyKey, row.IdempotencyScope = req.IdempotencyKey, req.Namespace+"/"+req.Name
		row.IdempotencyFingerprint = taskreq.Fingerprint(&req)
	}
	tasks := []db.NewTask{row}
	contents := db.TaskBatch{ProcessorUUID: s.cfg.ProcessorUUID, Steps: steps, Edges: edges}
	if req.IdempotencyKey == "" {
		// Everything in one round trip.
		err = db.CreateTasks(vctx, tx, tasks, contents)
	} else {
		// The task row goes first and alone: whether the key is new decides
		// whether anything else is written.
		var existing *Created
		if existing, err = claimIdempotencyKey(vctx, tx, row); err != nil || existing != nil {
			tracing.End(vspan, err)
			return existing, err
		}
		err = db.CreateTaskBatch(vctx, tx, tasks, contents)
	}
	if err != nil {
		err = fmt.Errorf("inserting task %s: %w", taskUUID, err)
		tracing.End(vspan, err)
		return nil, err
	}
	if delayed {
		ev.add(func() { s.wakeAt(time.Until(runAt)) })
	}
	tracing.End(vspan, nil)
	// pending → initializing is recorded by the same statement that moves the
	// task on once its root steps are enqueued (or it completes with none).
	t := &taskRow{uuid: taskUUID, state: state.TaskPending, correlationID: corr, namespace: tpl.Namespace, name: tpl.Name}
	ectx, espan := s.tr.Start(ctx, "task_initializer.enqueue_initial_steps",
		trace.WithAttributes(tracing.IDs(corr, taskUUID, uuid.Nil, tpl.Namespace, "")...))
	err = s.evaluateTask(ectx, tx, t, ev)
	tracing.End(espan, err)
	if err != nil {
		return nil, err
	}
	return &Created{TaskUUID: taskUUID, CorrelationID: corr, State: t.state}, nil
}

// ProcessTaskRequestMessage creates the task a TaskRequestMessage asks for, in
// the same transaction that acknowledges the message. A request that can never
// succeed (unknown template, bad context) is archived and logged.
func (s *Service) ProcessTaskRequestMessage(ctx context.Context, msgID int64) error {
	ev := s.events()
	var created *Created
	var msg messages.TaskRequestMessage
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		m, err := s.funcs.LockMessage(ctx, tx, queue.TaskRequests, msgID)
		if errors.Is(err, db.ErrNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading task request %d: %w", msgID, err)
		}
		s.m.MessagesRead(ctx, queue.TaskRequests, 1)
		if err := json.Unmarshal(m.Body, &msg); err != nil {
			s.m.MessageFailed(ctx, queue.TaskRequests)
			s.log.ErrorContext(ctx, "discarding malformed task request", "msg_id", msgID, "error", err)
			_, aerr := s.queues.Archive(ctx, tx, queue.TaskRequests, msgID)
			return aerr
		}
		_ = queue.DecodeHeaders(m.Headers, &msg.Headers)
		ctx = s.tr.Extract(ctx, msg.Headers)
		s.m.QueueWait(ctx, queue.TaskRequests, m.Waited)
		req := msg.TaskRequest
		if req.CorrelationID == nil && msg.CorrelationID != uuid.Nil {
			c := msg.CorrelationID
			req.CorrelationID = &c
		}
		reg, err := s.resolveTemplate(ctx, req)
		var fe *taskreq.FieldError
		if errors.As(err, &fe) {
			s.m.MessageFailed(ctx, queue.TaskRequests)
			s.log.WarnContext(ctx, "rejecting task request", "correlation_id", msg.CorrelationID, "msg_id", msgID,
				"request_id", msg.RequestID, "field", fe.Field, "error", fe.Message)
			_, aerr := s.queues.Archive(ctx, tx, queue.TaskRequests, msgID)
			return aerr
		}
		if err != nil {
			return err
		}
		if req.CorrelationID == nil || *req.CorrelationID == uuid.Nil {
			id := uuid.Must(uuid.NewV7())
			req.CorrelationID = &id
		}
		pctx, span := s.tr.Start(tracing.WithCorrelationID(ctx, *req.CorrelationID), "task_initializer.create_and_enqueue_task_from_request",
			trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithAttributes(tracing.IDs(*req.CorrelationID, uuid.Nil, uuid.Nil, req.Namespace, "")...),
			trace.WithAttributes(semconv.MessagingDestinationNameKey.String(queue.TaskRequests)))
		cstart := time.Now()
		created, err = s.createTaskTx(pctx, tx, req, reg, ev)
		tracing.End(span, err)
		if errors.As(err, &fe) {
			// A key reused for another request: as unanswerable as an unknown template.
			s.m.MessageFailed(ctx, queue.TaskRequests)
			s.log.WarnContext(ctx, "rejecting task request", "correlation_id", msg.CorrelationID, "msg_id", msgID,
				"request_id", msg.RequestID, "field", fe.Field, "error", fe.Message)
			created = nil
			_, aerr := s.queues.Archive(ctx, tx, queue.TaskRequests, msgID)
			return aerr
		}
		if err == nil && created.Existing {
			created = nil // a redelivered or repeated request: nothing new to report
		} else if err == nil {
			ev.add(func() { s.m.TaskRequested(pctx, created.CorrelationID, req.Namespace, req.Name, time.Since(cstart)) })
		}
		if err != nil {
			return err
		}
		_, err = s.queues.Archive(ctx, tx, queue.TaskRequests, msgID)
		return err
	})
	if err != nil {
		return err
	}
	if created != nil {
		s.log.InfoContext(ctx, "task initialized", "correlation_id", created.CorrelationID, "task_uuid", created.TaskUUID,
			"namespace", msg.TaskRequest.Namespace, "operation", "create_and_enqueue_task_from_request",
			"event", "task.initialized", "request_id", msg.RequestID)
		ev.flush()
	}
	return nil
}

// claimIdempotencyKey inserts the task row of a request that carries an
// idempotency key. When the key is taken (in its namespace/name scope) it
// returns the task that holds it, or a Conflict FieldError when that task was
// asked for with a different request; nil, nil means the row was inserted.
// The insert waits for a concurrent inserter of the same key to commit or
// roll back, so of any number of simultaneous repeats exactly one inserts.
func claimIdempotencyKey(ctx context.Context, tx pgx.Tx, row db.NewTask) (*Created, error) {
	inserted, err := db.InsertTaskRows(ctx, tx, []db.NewTask{row})
	if err != nil || inserted[row.TaskUUID] {
		return nil, err
	}
	holders, err := db.IdempotencyHolders(ctx, tx, []string{row.IdempotencyScope}, []string{row.IdempotencyKey})
	if err != nil {
		return nil, err
	}
	if len(holders) == 0 {
		// Deleted between the two statements (pruned): rare enough that the
		// caller's retry is the answer.
		return nil, fmt.Errorf("reading task of idempotency key %q: %w", row.IdempotencyKey, db.ErrNotFound)
	}
	h := holders[0]
	if h.Fingerprint != row.IdempotencyFingerprint {
		return nil, idempotencyConflict(row.IdempotencyKey, h.TaskUUID)
	}
	return &Created{TaskUUID: h.TaskUUID, CorrelationID: h.CorrelationID, State: h.State, Existing: true}, nil
}

// idempotencyConflict refuses a request whose idempotency key holder was
// asked for with a different request.
func idempotencyConflict(key string, holder uuid.UUID) *taskreq.FieldError {
	return &taskreq.FieldError{Field: "idempotency_key", Code: taskreq.CodeIdempotencyConflict, Kind: taskreq.Conflict,
		Message: fmt.Sprintf("idempotency_key %q was used for a different request (task %s)", key, holder)}
}

// SubmitTask implements handler.TaskSubmitter: handlers create child tasks
// through the initializer, in any process that can reach the database.
func (s *Service) SubmitTask(ctx context.Context, req client.TaskRequest) (uuid.UUID, error) {
	c, err := s.CreateTask(ctx, req)
	if err != nil {
		return uuid.Nil, err
	}
	return c.TaskUUID, nil
}

// templateTTL bounds how long a template read from the database is reused:
// re-registering a template changes what new tasks get within this time.
const templateTTL = 5 * time.Second

type cachedTemplate struct {
	reg *templatestore.Registered
	at  time.Time
}

// lookupTemplate reads a registered template, caching it briefly: every task
// creation needs it, and it changes only when a template is re-registered.
func (s *Service) lookupTemplate(ctx context.Context, ns, name, version string) (*templatestore.Registered, error) {
	key := ns + "/" + name + "@" + version
	s.tplMu.Lock()
	c, ok := s.tplCache[key]
	s.tplMu.Unlock()
	if ok && time.Since(c.at) < templateTTL {
		return c.reg, nil
	}
	reg, err := templatestore.Lookup(ctx, s.pool, ns, name, version)
	if err != nil {
		return nil, err
	}
	s.tplMu.Lock()
	s.tplCache[key] = cachedTemplate{reg: reg, at: time.Now()}
	s.tplMu.Unlock()
	return reg, nil
}
