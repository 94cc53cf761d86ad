package db_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/taskerhq/tasker/internal/db"
	"github.com/taskerhq/tasker/internal/state"
)

// opMeta is the history metadata an operator action writes.
var opMeta = map[string]any{"reason": "x", "actor": "ops", "message": "because"}

func TestCancelTaskSteps(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	d := e.build(t, taskSpec{},
		stepSpec{Name: "done", State: "complete", Attempts: 1},
		stepSpec{Name: "failed", State: "error", Attempts: 3},
		stepSpec{Name: "resolved", State: "resolved_manually", Attempts: 2},
		stepSpec{Name: "gone", State: "cancelled"},
		stepSpec{Name: "running", State: "in_progress", Attempts: 2, LeaseIn: in(time.Minute)},
		stepSpec{Name: "retrying", State: "waiting_for_retry", Attempts: 1, RetryIn: in(time.Minute)},
		stepSpec{Name: "queued", State: "enqueued"},
		stepSpec{Name: "waiting", State: "pending"},
	)
	other := e.build(t, taskSpec{}, stepSpec{Name: "elsewhere", State: "pending"})
	before := map[string]stepRow{}
	for name, id := range d.Steps {
		before[name] = getStep(t, e.pool, id)
	}

	n, err := e.funcs.CancelTaskSteps(ctx, e.pool, db.TaskStepsChange{TaskUUID: d.Task, CorrelationID: d.Corr, Metadata: opMeta})
	require.NoError(t, err)
	require.EqualValues(t, 4, n)

	for _, name := range []string{"done", "failed", "resolved", "gone"} {
		require.Equal(t, before[name], getStep(t, e.pool, d.Steps[name]), "%s is left alone", name)
		require.Empty(t, stepHistory(t, e.pool, d.Steps[name]), name)
	}
	for name, attempts := range map[string]int32{"running": 2, "retrying": 1, "queued": 0, "waiting": 0} {
		s := getStep(t, e.pool, d.Steps[name])
		require.Equal(t, "cancelled", s.State, name)
		require.False(t, s.InProcess, name)
		require.True(t, s.Processed, name)
		require.NotNil(t, s.ProcessedAt, name)
		require.Nil(t, s.LeaseExpiresAt, name)
		require.Nil(t, s.NextRetryAt, name)
		h := stepHistory(t, e.pool, d.Steps[name])
		require.Len(t, h, 1, name)
		require.Equal(t, ptr(before[name].State), h[0].From, name)
		require.Equal(t, "cancelled", h[0].To, name)
		require.Equal(t, ptr("task_cancelled"), h[0].Reason, name)
		require.Equal(t, &attempts, h[0].Attempt, name)
		require.Equal(t, &d.Corr, h[0].Corr, name)
		require.JSONEq(t, `{"reason": "x", "actor": "ops", "message": "because"}`, string(h[0].Metadata), name)
	}
	require.Equal(t, "pending", getStep(t, e.pool, other.id(t, "elsewhere")).State, "another task's steps are untouched")

	n, err = e.funcs.CancelTaskSteps(ctx, e.pool, db.TaskStepsChange{TaskUUID: d.Task, CorrelationID: d.Corr})
	require.NoError(t, err)
	require.Zero(t, n, "cancelling again changes nothing")
}

func TestUnfinishedChildTasks(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	parent := e.build(t, taskSpec{})
	var want []uuid.UUID
	for _, st := range []state.Task{state.TaskPending, state.TaskStepsInProcess, state.TaskBlockedByFailures,
		state.TaskComplete, state.TaskError, state.TaskCancelled, state.TaskResolvedManually} {
		child := e.build(t, taskSpec{State: string(st)})
		_, err := e.pool.Exec(ctx, `UPDATE tasker.tasks SET parent_correlation_id = $2 WHERE task_uuid = $1`, child.Task, parent.Corr)
		require.NoError(t, err)
		if !st.Terminal() {
			want = append(want, child.Task)
		}
	}
	unrelated := e.build(t, taskSpec{})
	_, err := e.pool.Exec(ctx, `UPDATE tasker.tasks SET parent_correlation_id = $2 WHERE task_uuid = $1`, unrelated.Task, unrelated.Corr)
	require.NoError(t, err)

	got, err := e.funcs.UnfinishedChildTasks(ctx, e.pool, parent.Corr)
	require.NoError(t, err)
	require.Len(t, want, 3)
	require.ElementsMatch(t, want, got)
	require.IsNonDecreasing(t, uuidStrings(got), "in task order, the order they are locked in")

	got, err = e.funcs.UnfinishedChildTasks(ctx, e.pool, uuid.Must(uuid.NewV7()))
	require.NoError(t, err)
	require.Empty(t, got)
}

func uuidStrings(ids []uuid.UUID) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id.String()
	}
	return out
}

func TestResetFailedSteps(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	d := e.build(t, taskSpec{State: "error"},
		stepSpec{Name: "done", State: "complete", Attempts: 1, Results: `{"ok": true}`},
		stepSpec{Name: "failed", State: "error", Attempts: 3, MaxAttempts: 3, Results: `{"error": "boom"}`, Processed: true},
		stepSpec{Name: "failed_early", State: "error", Attempts: 1, MaxAttempts: 1, NotRetryable: true},
		stepSpec{Name: "after", State: "pending", Parents: []string{"failed"}},
	)
	_, err := e.pool.Exec(ctx, `UPDATE tasker.workflow_steps SET backoff_request_ms = 500 WHERE workflow_step_uuid = $1`, d.id(t, "failed"))
	require.NoError(t, err)
	done, after := getStep(t, e.pool, d.id(t, "done")), getStep(t, e.pool, d.id(t, "after"))

	n, err := e.funcs.ResetFailedSteps(ctx, e.pool, db.TaskStepsChange{TaskUUID: d.Task, CorrelationID: d.Corr, Metadata: opMeta})
	require.NoError(t, err)
	require.EqualValues(t, 2, n)

	require.Equal(t, done, getStep(t, e.pool, d.id(t, "done")), "completed steps keep their results")
	require.Equal(t, after, getStep(t, e.pool, d.id(t, "after")))
	for name, want := range map[string]struct{ attempts, max int }{"failed": {3, 6}, "failed_early": {1, 2}} {
		s := getStep(t, e.pool, d.id(t, name))
		require.Equal(t, "pending", s.State, name)
		require.Equal(t, want.attempts, s.Attempts, "%s keeps counting attempts", name)
		var maxAttempts int
		require.NoError(t, e.pool.QueryRow(ctx, `SELECT max_attempts FROM tasker.workflow_steps WHERE workflow_step_uuid = $1`,
			d.id(t, name)).Scan(&maxAttempts))
		require.Equal(t, want.max, maxAttempts, "%s gets a fresh budget of attempts", name)
		require.Nil(t, s.Results, name)
		require.False(t, s.InProcess, name)
		require.False(t, s.Processed, name)
		require.Nil(t, s.NextRetryAt, name)
		require.Nil(t, s.BackoffMs, name)
		require.Nil(t, s.LeaseExpiresAt, name)
		h := stepHistory(t, e.pool, d.id(t, name))
		require.Len(t, h, 1, name)
		require.Equal(t, ptr("error"), h[0].From)
		require.Equal(t, "pending", h[0].To)
		require.Equal(t, ptr("operator_retry"), h[0].Reason)
		require.Equal(t, ptr(int32(want.attempts)), h[0].Attempt)
		require.Equal(t, &d.Corr, h[0].Corr)
		require.JSONEq(t, `{"reason": "x", "actor": "ops", "message": "because"}`, string(h[0].Metadata))
	}
}

func TestLockStep(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	d := e.build(t, taskSpec{}, stepSpec{Name: "charge", State: "error", Attempts: 2})
	other := e.build(t, taskSpec{}, stepSpec{Name: "refund", State: "pending"})
	id := d.id(t, "charge")

	for _, ref := range []string{"charge", id.String()} {
		st, err := e.funcs.LockStep(ctx, e.pool, db.StepLookup{TaskUUID: d.Task, Step: ref})
		require.NoError(t, err, ref)
		require.Equal(t, db.LockedStep{UUID: id, Name: "charge", State: state.StepError, Attempts: 2}, st, ref)
	}
	for _, ref := range []string{"refund", other.id(t, "refund").String(), "nope", ""} {
		_, err := e.funcs.LockStep(ctx, e.pool, db.StepLookup{TaskUUID: d.Task, Step: ref})
		require.ErrorIs(t, err, db.ErrNotFound, "%q is not a step of this task", ref)
	}

	// The step stays locked until the transaction ends: a resolve by
	// another orchestrator waits, so two cannot act on one step at once.
	tx, err := e.pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	_, err = e.funcs.LockStep(ctx, tx, db.StepLookup{TaskUUID: d.Task, Step: "charge"})
	require.NoError(t, err)
	var locked bool
	require.NoError(t, e.pool.QueryRow(ctx, `SELECT NOT EXISTS (SELECT 1 FROM tasker.workflow_steps
		WHERE workflow_step_uuid = $1 FOR UPDATE SKIP LOCKED)`, id).Scan(&locked))
	require.True(t, locked)
}

func TestResolveStep(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	d := e.build(t, taskSpec{State: "error"},
		stepSpec{Name: "failed", State: "error", Attempts: 3, RetryIn: in(time.Minute)},
		stepSpec{Name: "done", State: "complete", Attempts: 1, Results: `{"v": 1}`},
	)
	p := db.ResolveStepParams{TaskUUID: d.Task, StepUUID: d.id(t, "failed"), CorrelationID: d.Corr, Attempt: 3,
		Results: []byte(`{"result": {"v": 2}, "status": "resolved_manually"}`), Metadata: opMeta}
	ok, err := e.funcs.ResolveStep(ctx, e.pool, p)
	require.NoError(t, err)
	require.True(t, ok)
	s := getStep(t, e.pool, p.StepUUID)
	require.Equal(t, "resolved_manually", s.State)
	require.JSONEq(t, string(p.Results), string(s.Results))
	require.True(t, s.Processed)
	require.NotNil(t, s.ProcessedAt)
	require.False(t, s.InProcess)
	require.Nil(t, s.NextRetryAt)
	h := stepHistory(t, e.pool, p.StepUUID)
	require.Len(t, h, 1)
	require.Equal(t, ptr("error"), h[0].From)
	require.Equal(t, "resolved_manually", h[0].To)
	require.Equal(t, ptr("resolved_manually"), h[0].Reason)
	require.Equal(t, ptr(int32(3)), h[0].Attempt)
	require.Equal(t, &d.Corr, h[0].Corr)
	require.JSONEq(t, `{"reason": "x", "actor": "ops", "message": "because"}`, string(h[0].Metadata))

	// A step not in error (resolved already, or never failed) is left
	// alone and gets no history row.
	for _, name := range []string{"failed", "done"} {
		before := getStep(t, e.pool, d.id(t, name))
		hist := stepHistory(t, e.pool, d.id(t, name))
		p.StepUUID = d.id(t, name)
		ok, err := e.funcs.ResolveStep(ctx, e.pool, p)
		require.NoError(t, err, name)
		require.False(t, ok, name)
		require.Equal(t, before, getStep(t, e.pool, d.id(t, name)), name)
		require.Equal(t, hist, stepHistory(t, e.pool, d.id(t, name)), name)
	}
}
