package db_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/taskerhq/tasker/internal/db"
	"github.com/taskerhq/tasker/internal/state"
)

// newTask lays out a pending task of e's named task with steps a -> b and
// a -> c, as single-task creation writes one; runAt delays it.
func (e *env) newTask(t *testing.T, runAt *time.Time) (db.NewTask, db.TaskBatch) {
	t.Helper()
	ctx := context.Background()
	task, corr, parent := uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())
	row := db.NewTask{TaskUUID: task, NamedTaskUUID: e.namedTask, State: state.TaskPending, Context: []byte(`{"n": 1}`),
		Initiator: "me", Reason: "because", Tags: []byte(`["x"]`), Priority: 4, CorrelationID: corr,
		ParentCorrelationID: &parent, TraceContext: []byte(`{"baggage": "b"}`), RunAt: runAt,
		History: []db.Hop{{To: state.TaskPending, Reason: "created"}}}
	b := db.TaskBatch{ProcessorUUID: uuid.Must(uuid.NewV7())}
	ids := map[string]uuid.UUID{}
	for i, name := range []string{"a", "b", "c"} {
		var named uuid.UUID
		require.NoError(t, e.pool.QueryRow(ctx, `INSERT INTO tasker.named_steps (named_step_uuid, name) VALUES ($1, $2)
			ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING named_step_uuid`, uuid.Must(uuid.NewV7()), name).Scan(&named))
		ids[name] = uuid.Must(uuid.NewV7())
		s := db.NewStep{StepUUID: ids[name], TaskUUID: task, NamedStepUUID: named, Name: name, Handler: name + ".h",
			Retryable: i != 2, MaxAttempts: int32(i + 1), BackoffBaseMs: 100, BackoffCapMs: 1000, TimeoutMs: 5000,
			NextRetryAt: runAt, CorrelationID: corr}
		if name == "b" {
			s.Inputs = []byte(`{"k": "v"}`)
		}
		b.Steps = append(b.Steps, s)
	}
	b.Edges = []db.NewEdge{{EdgeUUID: uuid.Must(uuid.NewV7()), From: ids["a"], To: ids["b"]},
		{EdgeUUID: uuid.Must(uuid.NewV7()), From: ids["a"], To: ids["c"]}}
	return row, b
}

func inTx(t *testing.T, e *env, f func(tx pgx.Tx) error) error {
	t.Helper()
	return pgx.BeginFunc(context.Background(), e.pool, f)
}

func tableCount(t *testing.T, e *env, table string) int {
	t.Helper()
	var n int
	require.NoError(t, e.pool.QueryRow(context.Background(), "SELECT count(*) FROM tasker."+table).Scan(&n))
	return n
}

// CreateTasks writes a task whole: its row, one history row, its steps
// (pending) each with one history row, and its edges.
func TestCreateTasks(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	runAt := dbNow(t, e.pool).Add(time.Hour).Truncate(time.Microsecond)
	delayed, b := e.newTask(t, &runAt)
	now, b2 := e.newTask(t, nil)
	b.Steps, b.Edges = append(b.Steps, b2.Steps...), append(b.Edges, b2.Edges...)
	require.NoError(t, inTx(t, e, func(tx pgx.Tx) error {
		return db.CreateTasks(ctx, tx, []db.NewTask{delayed, now}, b)
	}))

	for _, task := range []db.NewTask{delayed, now} {
		var st, initiator, reason string
		var source, key *string
		var taskCtx, tags, trace []byte
		var prio int
		var corr uuid.UUID
		var parent *uuid.UUID
		var gotRunAt *time.Time
		require.NoError(t, e.pool.QueryRow(ctx, `SELECT state, context, initiator, source_system, reason, tags, priority,
				correlation_id, parent_correlation_id, trace_context, run_at, idempotency_key
			FROM tasker.tasks WHERE task_uuid = $1`, task.TaskUUID).Scan(&st, &taskCtx, &initiator, &source, &reason, &tags, &prio,
			&corr, &parent, &trace, &gotRunAt, &key))
		require.Equal(t, "pending", st)
		require.JSONEq(t, `{"n": 1}`, string(taskCtx))
		require.Equal(t, "me", initiator)
		require.Nil(t, source, "an empty source system is NULL")
		require.Equal(t, "because", reason)
		require.JSONEq(t, `["x"]`, string(tags))
		require.Equal(t, 4, prio)
		require.Equal(t, task.CorrelationID, corr)
		require.Equal(t, task.ParentCorrelationID, parent)
		require.JSONEq(t, `{"baggage": "b"}`, string(trace))
		require.Nil(t, key)
		if task.RunAt == nil {
			require.Nil(t, gotRunAt)
		} else {
			require.NotNil(t, gotRunAt)
			require.True(t, runAt.Equal(*gotRunAt), "run_at %s, want %s", gotRunAt, runAt)
		}

		h := taskHistory(t, e.pool, task.TaskUUID)
		require.Len(t, h, 1)
		require.Nil(t, h[0].From)
		require.Equal(t, "pending", h[0].To)
		require.Equal(t, ptr("created"), h[0].Reason)
		require.Equal(t, &b.ProcessorUUID, h[0].Processor)
		require.Equal(t, &task.CorrelationID, h[0].Corr)
		require.JSONEq(t, `{}`, string(h[0].Metadata))
	}
	for _, s := range b.Steps {
		got := getStep(t, e.pool, s.StepUUID)
		require.Equal(t, "pending", got.State, s.Name)
		require.Zero(t, got.Attempts)
		if s.NextRetryAt == nil {
			require.Nil(t, got.NextRetryAt, s.Name)
		} else {
			require.True(t, runAt.Equal(*got.NextRetryAt), "a delayed task's step %s waits for its run_at", s.Name)
		}
		var handler string
		var retryable bool
		var maxAttempts, base, capMs, timeout int32
		var inputs []byte
		var named uuid.UUID
		require.NoError(t, e.pool.QueryRow(ctx, `SELECT named_step_uuid, handler, retryable, max_attempts, backoff_base_ms, backoff_cap_ms,
				timeout_ms, inputs FROM tasker.workflow_steps WHERE workflow_step_uuid = $1`, s.StepUUID).
			Scan(&named, &handler, &retryable, &maxAttempts, &base, &capMs, &timeout, &inputs))
		require.Equal(t, []any{s.NamedStepUUID, s.Handler, s.Retryable, s.MaxAttempts, s.BackoffBaseMs, s.BackoffCapMs, s.TimeoutMs},
			[]any{named, handler, retryable, maxAttempts, base, capMs, timeout}, s.Name)
		if s.Inputs == nil {
			require.Nil(t, inputs, s.Name)
		} else {
			require.JSONEq(t, string(s.Inputs), string(inputs), s.Name)
		}
		h := stepHistory(t, e.pool, s.StepUUID)
		require.Len(t, h, 1, s.Name)
		require.Nil(t, h[0].From)
		require.Equal(t, "pending", h[0].To)
		require.Equal(t, ptr("created"), h[0].Reason)
		require.Equal(t, ptr(int32(0)), h[0].Attempt)
		require.Equal(t, &s.CorrelationID, h[0].Corr)
	}
	for _, edge := range b.Edges {
		var from, to uuid.UUID
		require.NoError(t, e.pool.QueryRow(ctx, `SELECT from_step_uuid, to_step_uuid FROM tasker.workflow_step_edges
			WHERE workflow_step_edge_uuid = $1`, edge.EdgeUUID).Scan(&from, &to))
		require.Equal(t, [2]uuid.UUID{edge.From, edge.To}, [2]uuid.UUID{from, to})
	}
	require.Equal(t, 4, tableCount(t, e, "workflow_step_edges"))

	// A task with an idempotency key is refused whole: its row is conditional.
	keyed, kb := e.newTask(t, nil)
	keyed.IdempotencyKey, keyed.IdempotencyScope, keyed.IdempotencyFingerprint = "k", "billing/charge", "fp"
	err := inTx(t, e, func(tx pgx.Tx) error { return db.CreateTasks(ctx, tx, []db.NewTask{keyed}, kb) })
	require.ErrorContains(t, err, "idempotency key")
	require.Equal(t, 2, tableCount(t, e, "tasks"), "nothing written")
	require.Equal(t, 6, tableCount(t, e, "workflow_steps"))
}

// A keyed task row is written once per key and scope; the holder of a key
// is read back with its state.
func TestInsertTaskRowsIdempotency(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	runAt := dbNow(t, e.pool).Add(time.Hour).Truncate(time.Microsecond)
	first, _ := e.newTask(t, &runAt)
	first.IdempotencyKey, first.IdempotencyScope, first.IdempotencyFingerprint = "k", "billing/charge", "fp1"
	other, _ := e.newTask(t, nil)
	other.IdempotencyKey, other.IdempotencyScope, other.IdempotencyFingerprint = "k", "billing/refund", "fp2"
	inserted, err := db.InsertTaskRows(ctx, e.pool, []db.NewTask{first, other})
	require.NoError(t, err)
	require.Equal(t, map[uuid.UUID]bool{first.TaskUUID: true, other.TaskUUID: true}, inserted, "one key in two scopes is two keys")

	again, _ := e.newTask(t, nil)
	again.IdempotencyKey, again.IdempotencyScope, again.IdempotencyFingerprint = "k", "billing/charge", "fp3"
	inserted, err = db.InsertTaskRows(ctx, e.pool, []db.NewTask{again})
	require.NoError(t, err)
	require.Empty(t, inserted)

	holders, err := db.IdempotencyHolders(ctx, e.pool, []string{"billing/charge", "billing/nobody"}, []string{"k", "k"})
	require.NoError(t, err)
	require.Equal(t, []db.IdempotencyHolder{{Scope: "billing/charge", Key: "k", TaskUUID: first.TaskUUID,
		CorrelationID: first.CorrelationID, State: state.TaskPending, Fingerprint: "fp1"}}, holders)
	var got time.Time
	require.NoError(t, e.pool.QueryRow(ctx, `SELECT run_at FROM tasker.tasks WHERE task_uuid = $1`, first.TaskUUID).Scan(&got))
	require.True(t, runAt.Equal(got))
}

// LockMessage reads a message and holds it: another transaction skips it.
func TestLockMessage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	q := e.workerQueue(t)
	e.createQueue(t, "other_queue")
	id := sendRaw(t, e.pool, q, map[string]any{"n": 1})
	_, err := e.pool.Exec(ctx, `UPDATE tasker.queue_messages SET enqueued_at = enqueued_at - interval '90 seconds',
		headers = '{"traceparent": "t"}' WHERE msg_id = $1`, id)
	require.NoError(t, err)

	tx, err := e.pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	m, err := e.funcs.LockMessage(ctx, tx, q, id)
	require.NoError(t, err)
	require.Equal(t, id, m.MsgID)
	require.JSONEq(t, `{"n": 1}`, string(m.Body))
	require.JSONEq(t, `{"traceparent": "t"}`, string(m.Headers))
	require.GreaterOrEqual(t, m.Waited, 90*time.Second)
	require.Less(t, m.Waited, time.Hour)

	_, err = e.funcs.LockMessage(ctx, e.pool, q, id)
	require.ErrorIs(t, err, db.ErrNotFound, "held by tx: skipped")
	_, err = e.funcs.LockMessage(ctx, e.pool, "other_queue", id)
	require.ErrorIs(t, err, db.ErrNotFound, "another queue's message")
	_, err = e.funcs.LockMessage(ctx, e.pool, q, id+1000)
	require.ErrorIs(t, err, db.ErrNotFound, "no such message")

	require.NoError(t, tx.Rollback(ctx))
	m, err = e.funcs.LockMessage(ctx, e.pool, q, id)
	require.NoError(t, err, "free again once tx ends")
	require.Equal(t, id, m.MsgID)
}
