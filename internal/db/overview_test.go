package db_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskerhq/tasker/internal/db"
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
