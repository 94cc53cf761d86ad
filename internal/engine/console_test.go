package engine_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskerhq/tasker/client"
	"github.com/taskerhq/tasker/internal/api"
	"github.com/taskerhq/tasker/internal/base"
	"github.com/taskerhq/tasker/internal/db"
	"github.com/taskerhq/tasker/internal/dbtest"
	"github.com/taskerhq/tasker/internal/orchestration"
)

// TestQueuesAndWorkers reads the console's views of the queues and of worker
// presence through the Store: every queue with its depth, and every
// registered namespace with its live workers, 0 where none serves it.
func TestQueuesAndWorkers(t *testing.T) {
	t.Parallel()
	pool := dbtest.NewPool(t)
	ctx := context.Background()
	for _, ns := range []string{"billing", "shipping"} {
		_, err := pool.Exec(ctx, `INSERT INTO tasker.task_namespaces (task_namespace_uuid, name) VALUES (gen_random_uuid(), $1)`, ns)
		require.NoError(t, err)
		_, err = pool.Exec(ctx, `SELECT tasker.queue_create($1)`, "worker_"+ns+"_queue")
		require.NoError(t, err)
	}
	_, err := pool.Exec(ctx, `SELECT tasker.queue_send('worker_shipping_queue', '{}'::jsonb)`)
	require.NoError(t, err)
	require.NoError(t, db.WorkerHeartbeat(ctx, pool, db.WorkerHeartbeatParams{WorkerID: "w1", Namespaces: []string{"billing"}, Hostname: "h", PID: 7}))
	svc, err := orchestration.New(pool, orchestration.Config{Telemetry: base.Telemetry{Logger: testLogger(t)}})
	require.NoError(t, err)
	store := api.NewStore(pool, svc, nil)

	qs, err := store.Queues(ctx)
	require.NoError(t, err)
	depth := map[string]int64{}
	for _, q := range qs.Queues {
		depth[q.Queue] = q.Depth
	}
	require.Equal(t, map[string]int64{"worker_billing_queue": 0, "worker_shipping_queue": 1}, depth)

	ws, err := store.Workers(ctx)
	require.NoError(t, err)
	require.Len(t, ws.Workers, 1)
	require.Equal(t, "w1", ws.Workers[0].WorkerID)
	require.Equal(t, 7, ws.Workers[0].PID)
	require.Equal(t, []client.NamespaceWorkers{{Namespace: "billing", LiveWorkers: 1}, {Namespace: "shipping", LiveWorkers: 0}}, ws.Namespaces)
}
