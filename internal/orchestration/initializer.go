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

	n := len(tpl.Steps)
	ids := make([]uuid.UUID, n)
	named := make([]uuid.UUID, n)
	names := make([]string, n)
	handlers := make([]string, n)
	retryable := make([]bool, n)
	maxAttempts := make([]int32, n)
	base := make([]int32, n)
	capMs := make([]int32, n)
	timeout := make([]int32, n)
	inputs := make([][]byte, n)
	byName := make(map[string]uuid.UUID, n)
	for i, st := range tpl.Steps {
		ids[i] = uuid.Must(uuid.NewV7())
		byName[st.Name] = ids[i]
		named[i] = reg.NamedSteps[st.Name]
		names[i], handlers[i] = st.Name, st.Handler
		retryable[i], maxAttempts[i] = st.Retry.Retryable, int32(st.Retry.MaxAttempts)
		base[i], capMs[i] = int32(st.Retry.BackoffBase/time.Millisecond), int32(st.Retry.BackoffCap/time.Millisecond)
		timeout[i] = int32(st.Timeout / time.Millisecond)
		if len(st.Inputs) > 0 {
			b, err := json.Marshal(st.Inputs)
			if err != nil {
				return nil, fmt.Errorf("encoding inputs of step %s: %w", st.Name, err)
			}
			inputs[i] = b
		}
	}
	var from, to []uuid.UUID
	for _, st := range tpl.Steps {
		for _, d := range st.DependsOn {
			from = append(from, byName[d])
			to = append(to, byName[st.Name])
		}
	}
	edgeIDs := make([]uuid.UUID, len(from))
	for i := range edgeIDs {
		edgeIDs[i] = uuid.Must(uuid.NewV7())
	}

	ctx = tracing.WithCorrelationID(ctx, corr)
	vctx, vspan := s.tr.Start(ctx, "task_initializer.validate_and_create_task",
		trace.WithAttributes(tracing.IDs(corr, taskUUID, uuid.Nil, tpl.Namespace, "")...),
		trace.WithAttributes(attribute.Int("steps", n), attribute.String("template", tpl.Key())))
	traceCtx, _ := json.Marshal(s.tr.Inject(ctx))
	runAt, err := taskreq.RunAt(&req, time.Now())
	if err != nil {
		tracing.End(vspan, err)
		return nil, err
	}
	// A delayed task's run_at keeps it out of the readiness poll until then
	// and tells every orchestrator when to wake for it.
	delayed := time.Until(runAt) > 0
	var runAtCol *time.Time
	if delayed {
		runAtCol = &runAt
	}
	taskArgs := []any{taskUUID, reg.NamedTaskUUID, []byte(taskCtx), nullIfEmpty(req.Initiator), nullIfEmpty(req.SourceSystem),
		nullIfEmpty(req.Reason), tagsJSON, req.Priority, corr, req.ParentCorrelationID, traceCtx, runAtCol}
	b := &pgx.Batch{}
	if req.IdempotencyKey == "" {
		b.Queue(insertTaskSQL, taskArgs...)
	} else {
		// The task row goes first and alone: whether the key is new decides
		// whether anything else is written.
		existing, err := s.insertIdempotentTask(vctx, tx, req, taskArgs)
		if err != nil || existing != nil {
			tracing.End(vspan, err)
			return existing, err
		}
	}
	b.Queue(`INSERT INTO tasker.task_transitions (task_uuid, from_state, to_state, reason, processor_uuid, correlation_id)
		VALUES ($1, NULL, 'pending', 'created', $2, $3)`, taskUUID, s.cfg.ProcessorUUID, corr)
	b.Queue(`INSERT INTO tasker.workflow_steps (workflow_step_uuid, task_uuid, named_step_uuid, name, handler, retryable,
			max_attempts, backoff_base_ms, backoff_cap_ms, timeout_ms, inputs)
		SELECT u, $2, ns, nm, h, r, ma, bb, bc, tm, inp
		FROM unnest($1::uuid[], $3::uuid[], $4::text[], $5::text[], $6::bool[], $7::int[], $8::int[], $9::int[], $10::int[], $11::jsonb[])
			AS x(u, ns, nm, h, r, ma, bb, bc, tm, inp)`,
		ids, taskUUID, named, names, handlers, retryable, maxAttempts, base, capMs, timeout, inputs)
	b.Queue(`INSERT INTO tasker.workflow_step_transitions (workflow_step_uuid, task_uuid, from_state, to_state, reason, attempt, correlation_id)
		SELECT u, $2, NULL, 'pending', 'created', 0, $3 FROM unnest($1::uuid[]) AS u`, ids, taskUUID, corr)
	if len(from) > 0 {
		b.Queue(`INSERT INTO tasker.workflow_step_edges (workflow_step_edge_uuid, from_step_uuid, to_step_uuid)
			SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[])`, edgeIDs, from, to)
	}
	if delayed {
		// Not ready before runAt: the readiness poller (and this process's
		// timer) take the task on then.
		b.Queue(`UPDATE tasker.workflow_steps SET next_retry_at = $2 WHERE task_uuid = $1`, taskUUID, runAt)
	}
	if err := tx.SendBatch(vctx, b).Close(); err != nil {
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
		var body, headers []byte
		var waitedSec float64
		err := tx.QueryRow(ctx, `SELECT message, headers, extract(epoch FROM clock_timestamp() - enqueued_at)::float8 FROM tasker.queue_messages
			WHERE msg_id = $1 AND queue_name = $2 FOR UPDATE SKIP LOCKED`, msgID, queue.TaskRequests).Scan(&body, &headers, &waitedSec)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading task request %d: %w", msgID, err)
		}
		s.m.MessagesRead(ctx, queue.TaskRequests, 1)
		if err := json.Unmarshal(body, &msg); err != nil {
			s.m.MessageFailed(ctx, queue.TaskRequests)
			s.log.ErrorContext(ctx, "discarding malformed task request", "msg_id", msgID, "error", err)
			_, aerr := s.queues.Archive(ctx, tx, queue.TaskRequests, msgID)
			return aerr
		}
		_ = queue.DecodeHeaders(headers, &msg.Headers)
		ctx = s.tr.Extract(ctx, msg.Headers)
		s.m.QueueWait(ctx, queue.TaskRequests, time.Duration(waitedSec*float64(time.Second)))
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

const insertTaskSQL = `INSERT INTO tasker.tasks (task_uuid, named_task_uuid, state, context, initiator, source_system, reason, tags,
		priority, correlation_id, parent_correlation_id, trace_context, run_at)
	VALUES ($1, $2, 'pending', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`

// insertIdempotentTask inserts the task row of a request that carries an
// idempotency key. When the key is taken (in its namespace/name scope) it
// returns the task that holds it, or a Conflict FieldError when that task was
// asked for with a different request; nil, nil means the row was inserted.
// ON CONFLICT waits for a concurrent inserter of the same key to commit or
// roll back, so of any number of simultaneous repeats exactly one inserts.
func (s *Service) insertIdempotentTask(ctx context.Context, tx pgx.Tx, req client.TaskRequest, taskArgs []any) (*Created, error) {
	scope := req.Namespace + "/" + req.Name
	fp := taskreq.Fingerprint(&req)
	args := append(taskArgs, req.IdempotencyKey, scope, fp)
	var inserted uuid.UUID
	err := tx.QueryRow(ctx, `INSERT INTO tasker.tasks (task_uuid, named_task_uuid, state, context, initiator, source_system,
			reason, tags, priority, correlation_id, parent_correlation_id, trace_context, run_at,
			idempotency_key, idempotency_scope, idempotency_fingerprint)
		VALUES ($1, $2, 'pending', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
		ON CONFLICT (idempotency_scope, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
		RETURNING task_uuid`, args...).Scan(&inserted)
	if err == nil {
		return nil, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("inserting task: %w", err)
	}
	var c Created
	var st, storedFP string
	err = tx.QueryRow(ctx, `SELECT task_uuid, correlation_id, state, idempotency_fingerprint FROM tasker.tasks
		WHERE idempotency_scope = $1 AND idempotency_key = $2`, scope, req.IdempotencyKey).
		Scan(&c.TaskUUID, &c.CorrelationID, &st, &storedFP)
	if err != nil {
		// Deleted between the two statements (pruned): rare enough that the
		// caller's retry is the answer.
		return nil, fmt.Errorf("reading task of idempotency key %q: %w", req.IdempotencyKey, err)
	}
	if storedFP != fp {
		return nil, &taskreq.FieldError{Field: "idempotency_key", Code: taskreq.CodeIdempotencyConflict, Kind: taskreq.Conflict,
			Message: fmt.Sprintf("idempotency_key %q was used for a different request (task %s)", req.IdempotencyKey, c.TaskUUID)}
	}
	c.State, c.Existing = state.Task(st), true
	return &c, nil
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
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
