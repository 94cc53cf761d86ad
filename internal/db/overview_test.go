package db_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskerhq/tasker/internal/db"
	"github.com/taskerhq/tasker/internal/state"
)

func TestQueueStats(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	busy := e.workerQueue(t)
	e.createQueue(t, "aaa_empty_queue")
	sendRaw(t, e.pool, busy, map[string]any{"n": 1})
	sendRaw(t, e.pool, busy, map[string]any{"n": 2})
	// A message hidden by a visibility timeout counts in depth, not as claimable.
	_, err := e.pool.Exec(ctx, "SELECT tasker.queue_send($1, '{}'::jsonb, '{}'::jsonb, 60000)", busy)
	require.NoError(t, err)
	// Age the claimable messages on the database clock instead of sleeping.
	_, err = e.pool.Exec(ctx, `UPDATE tasker.queue_messages SET enqueued_at = enqueued_at - interval '90 seconds'
		WHERE queue_name = $1 AND vt <= clock_timestamp()`, busy)
	require.NoError(t, err)

	stats, err := db.QueueStats(ctx, e.pool)
	require.NoError(t, err)
	byName := map[string]db.QueueStat{}
	var names []string
	for _, s := range stats {
		byName[s.Queue] = s
		names = append(names, s.Queue)
	}
	require.IsIncreasing(t, names)
	require.Equal(t, db.QueueStat{Queue: "aaa_empty_queue"}, byName["aaa_empty_queue"])
	got := byName[busy]
	require.EqualValues(t, 3, got.Depth)
	require.EqualValues(t, 2, got.Claimable)
	require.GreaterOrEqual(t, got.OldestClaimableAge, 90*time.Second)
	require.Less(t, got.OldestClaimableAge, time.Hour)
}

func TestLiveWorkers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	require.NoError(t, db.WorkerHeartbeat(ctx, e.pool, db.WorkerHeartbeatParams{WorkerID: "w-live", Namespaces: []string{"billing"}, Hostname: "h1", PID: 42}))
	require.NoError(t, db.WorkerHeartbeat(ctx, e.pool, db.WorkerHeartbeatParams{WorkerID: "w-stale", Namespaces: []string{"billing"}}))
	_, err := e.pool.Exec(ctx, `UPDATE tasker.workers SET last_heartbeat_at = now() - interval '1 hour' WHERE worker_id = 'w-stale'`)
	require.NoError(t, err)

	ws, err := db.LiveWorkers(ctx, e.pool, db.WorkerLiveWindow)
	require.NoError(t, err)
	require.Len(t, ws, 1)
	require.Equal(t, "w-live", ws[0].WorkerID)
	require.Equal(t, []string{"billing"}, ws[0].Namespaces)
	require.Equal(t, "h1", ws[0].Hostname)
	require.Equal(t, 42, ws[0].PID)

	// Reading leaves the stale row for the orchestrator's sweep.
	var n int
	require.NoError(t, e.pool.QueryRow(ctx, `SELECT count(*) FROM tasker.workers`).Scan(&n))
	require.Equal(t, 2, n)

	ns, err := db.Namespaces(ctx, e.pool)
	require.NoError(t, err)
	require.Equal(t, []string{"billing"}, ns)
}

func TestUnfinishedTasksByState(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	for _, st := range []state.Task{state.TaskPending, state.TaskPending, state.TaskBlockedByFailures,
		state.TaskComplete, state.TaskError, state.TaskCancelled, state.TaskResolvedManually} {
		e.build(t, taskSpec{State: string(st)})
	}
	counts, err := db.UnfinishedTasksByState(ctx, e.pool)
	require.NoError(t, err)
	var want []db.TaskStateCount
	for _, st := range state.TaskStates {
		if st.Terminal() {
			continue
		}
		n := map[state.Task]int64{state.TaskPending: 2, state.TaskBlockedByFailures: 1}[st]
		want = append(want, db.TaskStateCount{State: st, Tasks: n})
	}
	require.ElementsMatch(t, want, counts, "every unfinished state, none of the finished ones")
}

func TestEnqueuedStepsByNamespace(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	e.build(t, taskSpec{}, stepSpec{Name: "a", State: "enqueued"}, stepSpec{Name: "b", State: "enqueued"},
		stepSpec{Name: "c", State: "pending"}, stepSpec{Name: "d", State: "in_progress"})
	e.build(t, taskSpec{}, stepSpec{Name: "e", State: "enqueued"})
	e.build(t, taskSpec{State: "complete"}, stepSpec{Name: "f", State: "enqueued"})
	_, err := db.RegisterTemplate(ctx, e.pool, db.TemplateRow{Namespace: "idle", Name: "t", Version: "1", Configuration: []byte(`{}`)})
	require.NoError(t, err)

	got, err := db.EnqueuedStepsByNamespace(ctx, e.pool)
	require.NoError(t, err)
	require.Equal(t, map[string]int64{"billing": 3, "idle": 0}, got, "a complete task's steps do not count")

	e.createQueue(t, "b_queue")
	e.createQueue(t, "a_queue")
	queues, err := db.QueueNames(ctx, e.pool)
	require.NoError(t, err)
	require.Equal(t, []string{"a_queue", "b_queue"}, queues)
}
