package db_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/taskerhq/tasker/internal/db"
)

func insertSchedule(t *testing.T, e *env, name string, next time.Time) db.InsertScheduleParams {
	t.Helper()
	p := db.InsertScheduleParams{ScheduleUUID: uuid.Must(uuid.NewV7()), Name: name, Cron: "*/5 * * * *",
		TimeZone: "Europe/Paris", TaskRequest: []byte(`{"namespace": "billing", "name": "charge"}`), NextRunAt: next}
	created, err := e.funcs.InsertSchedule(context.Background(), e.pool, p)
	require.NoError(t, err)
	require.WithinDuration(t, dbNow(t, e.pool), created, time.Minute)
	return p
}

func TestScheduleRows(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	next := time.Date(2030, 1, 2, 3, 5, 0, 0, time.UTC)
	b := insertSchedule(t, e, "nightly-b", next)
	a := insertSchedule(t, e, "hourly-a", next.Add(time.Hour))

	dup := b
	dup.ScheduleUUID = uuid.Must(uuid.NewV7())
	_, err := e.funcs.InsertSchedule(ctx, e.pool, dup)
	require.ErrorIs(t, err, db.ErrAlreadyExists, "a name is unique")
	_, err = e.funcs.InsertSchedule(ctx, e.pool, db.InsertScheduleParams{ScheduleUUID: uuid.Must(uuid.NewV7()), Name: "bad",
		Cron: "* * * * *", TimeZone: "UTC", TaskRequest: []byte(`[]`), NextRunAt: next})
	require.Error(t, err, "the stored request must be an object")
	require.NotErrorIs(t, err, db.ErrAlreadyExists)

	list, err := e.funcs.ListSchedules(ctx, e.pool)
	require.NoError(t, err)
	require.Len(t, list, 2)
	for i, want := range []db.InsertScheduleParams{a, b} { // by name
		got := list[i]
		require.Equal(t, want.ScheduleUUID, got.ScheduleUUID)
		require.Equal(t, want.Name, got.Name)
		require.Equal(t, want.Cron, got.Cron)
		require.Equal(t, want.TimeZone, got.TimeZone)
		require.JSONEq(t, string(want.TaskRequest), string(got.TaskRequest))
		require.True(t, want.NextRunAt.Equal(got.NextRunAt))
		require.Nil(t, got.LastRunAt)
		require.Nil(t, got.LastTaskUUID)
	}

	require.NoError(t, e.funcs.DeleteSchedule(ctx, e.pool, "hourly-a"))
	require.ErrorIs(t, e.funcs.DeleteSchedule(ctx, e.pool, "hourly-a"), db.ErrNotFound)
	list, err = e.funcs.ListSchedules(ctx, e.pool)
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, "nightly-b", list[0].Name)
}

// Due schedules are taken oldest first, each by one transaction only; a
// firing that created no task keeps the last task recorded.
func TestLockDueScheduleAndAdvance(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	now := dbNow(t, e.pool)
	_, err := e.funcs.LockDueSchedule(ctx, e.pool)
	require.ErrorIs(t, err, db.ErrNotFound, "no schedules")
	later := insertSchedule(t, e, "later", now.Add(time.Hour))
	_, err = e.funcs.LockDueSchedule(ctx, e.pool)
	require.ErrorIs(t, err, db.ErrNotFound, "nothing due")
	older := insertSchedule(t, e, "older", now.Add(-2*time.Minute))
	newer := insertSchedule(t, e, "newer", now.Add(-time.Minute))

	tx1, err := e.pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx1.Rollback(ctx) }()
	got1, err := e.funcs.LockDueSchedule(ctx, tx1)
	require.NoError(t, err)
	require.Equal(t, older.ScheduleUUID, got1.ScheduleUUID, "the one due longest first")
	require.True(t, older.NextRunAt.Equal(got1.NextRunAt))
	require.JSONEq(t, string(older.TaskRequest), string(got1.TaskRequest))

	tx2, err := e.pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx2.Rollback(ctx) }()
	got2, err := e.funcs.LockDueSchedule(ctx, tx2)
	require.NoError(t, err)
	require.Equal(t, newer.ScheduleUUID, got2.ScheduleUUID, "another transaction skips the locked one")
	_, err = e.funcs.LockDueSchedule(ctx, e.pool)
	require.ErrorIs(t, err, db.ErrNotFound, "both due schedules are held")

	task := uuid.Must(uuid.NewV7())
	require.NoError(t, e.funcs.AdvanceSchedule(ctx, tx1, db.AdvanceScheduleParams{ScheduleUUID: older.ScheduleUUID,
		NextRunAt: now.Add(2 * time.Hour), RanAt: older.NextRunAt, TaskUUID: &task}))
	require.NoError(t, tx1.Commit(ctx))
	require.NoError(t, tx2.Rollback(ctx))

	// The next firing of "older" cannot create its task.
	require.NoError(t, e.funcs.AdvanceSchedule(ctx, e.pool, db.AdvanceScheduleParams{ScheduleUUID: older.ScheduleUUID,
		NextRunAt: now.Add(3 * time.Hour), RanAt: now.Add(2 * time.Hour)}))

	got, err := e.funcs.LockDueSchedule(ctx, e.pool)
	require.NoError(t, err)
	require.Equal(t, newer.ScheduleUUID, got.ScheduleUUID, "older is no longer due; newer was never advanced")
	list, err := e.funcs.ListSchedules(ctx, e.pool)
	require.NoError(t, err)
	byName := map[string]db.Schedule{}
	for _, s := range list {
		byName[s.Name] = s
	}
	o := byName["older"]
	require.True(t, now.Add(3*time.Hour).Equal(o.NextRunAt))
	require.NotNil(t, o.LastRunAt)
	require.True(t, now.Add(2*time.Hour).Equal(*o.LastRunAt))
	require.Equal(t, &task, o.LastTaskUUID, "a firing without a task keeps the last task")
	require.True(t, later.NextRunAt.Equal(byName["later"].NextRunAt))
}
