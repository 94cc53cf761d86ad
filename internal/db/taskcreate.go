package db

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/taskerhq/tasker/internal/state"
)

// NewTask is one task row of a batch insert, written in State with one
// history row per hop of History (the first hop's from state is NULL).
type NewTask struct {
	TaskUUID            uuid.UUID
	NamedTaskUUID       uuid.UUID
	State               state.Task
	Context             []byte
	Initiator           string
	SourceSystem        string
	Reason              string
	Tags                []byte
	Priority            int
	CorrelationID       uuid.UUID
	ParentCorrelationID *uuid.UUID
	TraceContext        []byte
	// RunAt is a delayed task's start time: it keeps the task out of the
	// readiness poll's undelayed scan and tells orchestrators when to wake.
	RunAt *time.Time
	// IdempotencyKey, when set, makes the row conditional: a task holding
	// the key in IdempotencyScope already wins and this row is not written.
	IdempotencyKey         string
	IdempotencyScope       string
	IdempotencyFingerprint string
	History                []Hop
}

// Hop is one history row: the state entered and why.
type Hop struct {
	To     state.Task
	Reason string
}

// NewStep is one workflow step of a batch insert, written pending.
type NewStep struct {
	StepUUID      uuid.UUID
	TaskUUID      uuid.UUID
	NamedStepUUID uuid.UUID
	Name          string
	Handler       string
	Retryable     bool
	MaxAttempts   int32
	BackoffBaseMs int32
	BackoffCapMs  int32
	TimeoutMs     int32
	Inputs        []byte
	// NextRetryAt holds back a step of a delayed task until then.
	NextRetryAt   *time.Time
	CorrelationID uuid.UUID
}

// NewEdge is one dependency: To runs after From.
type NewEdge struct {
	EdgeUUID, From, To uuid.UUID
}

// TaskBatch is what CreateTaskBatch writes besides the task rows.
type TaskBatch struct {
	ProcessorUUID uuid.UUID
	Steps         []NewStep
	Edges         []NewEdge
}

// IdempotencyHolder is the task that holds an idempotency key.
type IdempotencyHolder struct {
	Scope, Key    string
	TaskUUID      uuid.UUID
	CorrelationID uuid.UUID
	State         state.Task
	Fingerprint   string
}

// insertTaskRowsSQL writes task rows, skipping those whose idempotency key
// is taken; it returns the task_uuid of each row written.
const insertTaskRowsSQL = `INSERT INTO tasker.tasks (task_uuid, named_task_uuid, state, context, initiator, source_system,
		reason, tags, priority, correlation_id, parent_correlation_id, trace_context, run_at,
		idempotency_key, idempotency_scope, idempotency_fingerprint)
	SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::jsonb[], $5::text[], $6::text[], $7::text[], $8::jsonb[],
		$9::int[], $10::uuid[], $11::uuid[], $12::jsonb[], $13::timestamptz[], $14::text[], $15::text[], $16::text[])
	ON CONFLICT (idempotency_scope, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
	RETURNING task_uuid`

// taskRowsArgs lays tasks out as insertTaskRowsSQL's column arrays.
func taskRowsArgs(tasks []NewTask) []any {
	n := len(tasks)
	ids, named, corr := make([]uuid.UUID, n), make([]uuid.UUID, n), make([]uuid.UUID, n)
	parents := make([]*uuid.UUID, n)
	states := make([]string, n)
	ctxs, tags, traces := make([][]byte, n), make([][]byte, n), make([][]byte, n)
	initiators, sources, reasons := make([]*string, n), make([]*string, n), make([]*string, n)
	prio := make([]int32, n)
	runAt := make([]*time.Time, n)
	keys, scopes, fps := make([]*string, n), make([]*string, n), make([]*string, n)
	for i, t := range tasks {
		ids[i], named[i], corr[i], parents[i], states[i] = t.TaskUUID, t.NamedTaskUUID, t.CorrelationID, t.ParentCorrelationID, string(t.State)
		ctxs[i], tags[i], traces[i], prio[i], runAt[i] = t.Context, t.Tags, t.TraceContext, int32(t.Priority), t.RunAt
		initiators[i], sources[i], reasons[i] = nullText(t.Initiator), nullText(t.SourceSystem), nullText(t.Reason)
		if t.IdempotencyKey != "" {
			keys[i], scopes[i], fps[i] = &t.IdempotencyKey, &t.IdempotencyScope, &t.IdempotencyFingerprint
		}
	}
	return []any{ids, named, states, ctxs, initiators, sources, reasons, tags, prio, corr, parents, traces, runAt, keys, scopes, fps}
}

// InsertTaskRows writes the task rows of a batch in one statement and
// reports which were written: a row whose idempotency key another task holds
// (or an earlier row of the batch took) is skipped, and the caller decides
// what the key's holder means (IdempotencyHolders). ON CONFLICT waits for a
// concurrent transaction inserting the same key, so of simultaneous batches
// exactly one writes a key.
func InsertTaskRows(ctx context.Context, q Querier, tasks []NewTask) (map[uuid.UUID]bool, error) {
	rows, err := q.Query(ctx, insertTaskRowsSQL, taskRowsArgs(tasks)...)
	if err != nil {
		return nil, fmt.Errorf("inserting %d tasks: %w", len(tasks), err)
	}
	inserted, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return nil, fmt.Errorf("inserting %d tasks: %w", len(tasks), err)
	}
	out := make(map[uuid.UUID]bool, len(inserted))
	for _, id := range inserted {
		out[id] = true
	}
	return out, nil
}

// IdempotencyHolders reads the tasks holding the given (scope, key) pairs
// (parallel slices); pairs nobody holds are left out.
func IdempotencyHolders(ctx context.Context, q Querier, scopes, keys []string) ([]IdempotencyHolder, error) {
	rows, err := q.Query(ctx, `SELECT t.idempotency_scope, t.idempotency_key, t.task_uuid, t.correlation_id, t.state,
			t.idempotency_fingerprint
		FROM unnest($1::text[], $2::text[]) AS k(scope, key)
		JOIN tasker.tasks t ON t.idempotency_scope = k.scope AND t.idempotency_key = k.key`, scopes, keys)
	if err != nil {
		return nil, fmt.Errorf("reading holders of %d idempotency keys: %w", len(keys), err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (IdempotencyHolder, error) {
		var h IdempotencyHolder
		var st string
		err := r.Scan(&h.Scope, &h.Key, &h.TaskUUID, &h.CorrelationID, &st, &h.Fingerprint)
		h.State = state.Task(st)
		return h, err
	})
	if err != nil {
		return nil, fmt.Errorf("reading holders of %d idempotency keys: %w", len(keys), err)
	}
	return out, nil
}

// BatchQuerier is a Querier that can pipeline statements (a pgx.Tx).
type BatchQuerier interface {
	Querier
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// CreateTaskBatch writes everything of a batch of new tasks but their rows:
// the tasks' history, their steps (pending) with theirs, and the edges. Each
// table gets one multi-row statement, all sent in one round trip. Enqueuing
// the ready steps is the caller's (EnqueueReadySteps).
func CreateTaskBatch(ctx context.Context, q BatchQuerier, tasks []NewTask, b TaskBatch) error {
	batch := &pgx.Batch{}
	queueTaskContents(batch, tasks, b)
	if err := q.SendBatch(ctx, batch).Close(); err != nil {
		return fmt.Errorf("writing steps, edges and history of %d tasks: %w", len(tasks), err)
	}
	return nil
}

// CreateTasks writes new tasks whole, rows included, in one round trip:
// what InsertTaskRows and CreateTaskBatch write, for tasks whose rows are
// unconditional. A task with an idempotency key is refused: whether its row
// is written decides whether anything else is, so it goes through
// InsertTaskRows first.
func CreateTasks(ctx context.Context, q BatchQuerier, tasks []NewTask, b TaskBatch) error {
	for _, t := range tasks {
		if t.IdempotencyKey != "" {
			return fmt.Errorf("creating task %s: it has an idempotency key; insert its row with InsertTaskRows", t.TaskUUID)
		}
	}
	batch := &pgx.Batch{}
	batch.Queue(insertTaskRowsSQL, taskRowsArgs(tasks)...)
	queueTaskContents(batch, tasks, b)
	if err := q.SendBatch(ctx, batch).Close(); err != nil {
		return fmt.Errorf("writing %d tasks: %w", len(tasks), err)
	}
	return nil
}

// queueTaskContents queues the statements of CreateTaskBatch.
func queueTaskContents(batch *pgx.Batch, tasks []NewTask, b TaskBatch) {
	var hTask []uuid.UUID
	var hCorr []uuid.UUID
	var hFrom []*string
	var hTo, hReason []string
	for _, t := range tasks {
		var from *string
		for _, h := range t.History {
			hTask, hCorr, hFrom = append(hTask, t.TaskUUID), append(hCorr, t.CorrelationID), append(hFrom, from)
			hTo, hReason = append(hTo, string(h.To)), append(hReason, h.Reason)
			to := string(h.To)
			from = &to
		}
	}
	n := len(b.Steps)
	ids, taskIDs, named, corr := make([]uuid.UUID, n), make([]uuid.UUID, n), make([]uuid.UUID, n), make([]uuid.UUID, n)
	names, handlers := make([]string, n), make([]string, n)
	retryable := make([]bool, n)
	maxAttempts, base, capMs, timeout := make([]int32, n), make([]int32, n), make([]int32, n), make([]int32, n)
	inputs := make([][]byte, n)
	retryAt := make([]*time.Time, n)
	for i, s := range b.Steps {
		ids[i], taskIDs[i], named[i], corr[i] = s.StepUUID, s.TaskUUID, s.NamedStepUUID, s.CorrelationID
		names[i], handlers[i], retryable[i] = s.Name, s.Handler, s.Retryable
		maxAttempts[i], base[i], capMs[i], timeout[i] = s.MaxAttempts, s.BackoffBaseMs, s.BackoffCapMs, s.TimeoutMs
		inputs[i], retryAt[i] = s.Inputs, s.NextRetryAt
	}
	var from, to, edgeIDs []uuid.UUID
	for _, e := range b.Edges {
		edgeIDs, from, to = append(edgeIDs, e.EdgeUUID), append(from, e.From), append(to, e.To)
	}

	batch.Queue(`INSERT INTO tasker.task_transitions (task_uuid, from_state, to_state, reason, processor_uuid, metadata, correlation_id)
		SELECT t, f, s, r, $6, CASE WHEN f IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('reason', r) END, c
		FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::uuid[]) WITH ORDINALITY AS x(t, f, s, r, c, i)
		ORDER BY i`, hTask, hFrom, hTo, hReason, hCorr, b.ProcessorUUID)
	batch.Queue(`INSERT INTO tasker.workflow_steps (workflow_step_uuid, task_uuid, named_step_uuid, name, handler, retryable,
			max_attempts, backoff_base_ms, backoff_cap_ms, timeout_ms, inputs, next_retry_at)
		SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::bool[], $7::int[], $8::int[],
			$9::int[], $10::int[], $11::jsonb[], $12::timestamptz[])`,
		ids, taskIDs, named, names, handlers, retryable, maxAttempts, base, capMs, timeout, inputs, retryAt)
	batch.Queue(`INSERT INTO tasker.workflow_step_transitions (workflow_step_uuid, task_uuid, from_state, to_state, reason, attempt, correlation_id)
		SELECT u, t, NULL, 'pending', 'created', 0, c FROM unnest($1::uuid[], $2::uuid[], $3::uuid[]) WITH ORDINALITY AS x(u, t, c, i)
		ORDER BY i`, ids, taskIDs, corr)
	if len(edgeIDs) > 0 {
		batch.Queue(`INSERT INTO tasker.workflow_step_edges (workflow_step_edge_uuid, from_step_uuid, to_step_uuid)
			SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[])`, edgeIDs, from, to)
	}
}

func nullText(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
