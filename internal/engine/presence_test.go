package engine_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestStalledNamespaceIsVisible: a step enqueued in a namespace no live
// worker serves shows as enqueued (not in progress), the live-worker view
// says 0 for it, and orchestration warns once.
func TestStalledNamespaceIsVisible(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	sink := &syncBuffer{}
	logger := slog.New(slog.NewJSONHandler(sink, &slog.HandlerOptions{Level: slog.LevelInfo}))
	orch := b.start(t, engineOpts{orchestrate: true, logger: logger})
	wk := b.start(t, engineOpts{work: true, namespaces: []string{"linear_workflow"}})

	var workers int
	require.Eventually(t, func() bool {
		require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FROM tasker.workers WHERE worker_id = $1
			AND namespaces = ARRAY['linear_workflow']`, wk.Worker.ID()).Scan(&workers))
		return workers == 1
	}, 10*time.Second, 20*time.Millisecond, "a running worker records its presence")
	require.Eventually(t, func() bool {
		live := orch.Orchestrator.LiveWorkers()
		return live["linear_workflow"] == 1 && len(live) == len(allNamespaces(b))
	}, 20*time.Second, 50*time.Millisecond, "the live-worker view covers every namespace")
	require.Zero(t, orch.Orchestrator.LiveWorkers()["diamond_workflow"])

	be := orch.Backend()
	createDiamond := func() string {
		created, err := orch.Orchestrator.CreateTask(ctx, newRequest(t, "diamond_workflow/diamond_pattern", map[string]any{"even_number": 2}))
		require.NoError(t, err)
		task, err := be.GetTask(ctx, created.TaskUUID)
		require.NoError(t, err)
		require.Equal(t, 1, task.EnqueuedSteps)
		require.Zero(t, task.InProgressSteps, "an unclaimed step is not in progress")
		return created.TaskUUID.String()
	}
	warnings := func() []map[string]any {
		var out []map[string]any
		for _, r := range sink.records(t) {
			if r["level"] == "WARN" && r["namespace"] == "diamond_workflow" {
				out = append(out, r)
			}
		}
		return out
	}
	// The warning needs two presence reads that found no worker for the
	// namespace (a worker may be starting at the same moment).
	var taskUUIDs []string
	require.Eventually(t, func() bool {
		taskUUIDs = append(taskUUIDs, createDiamond())
		return len(warnings()) > 0
	}, 30*time.Second, 500*time.Millisecond)
	for range 3 {
		taskUUIDs = append(taskUUIDs, createDiamond())
	}
	w := warnings()
	require.Len(t, w, 1, "one warning per namespace per minute, not one per task")
	require.Contains(t, w[0]["msg"], "no live worker serves")
	require.Contains(t, taskUUIDs, w[0]["task_uuid"])

	// A worker that stops cleanly removes itself.
	require.NoError(t, wk.Stop())
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FROM tasker.workers`).Scan(&workers))
	require.Zero(t, workers)
	require.Eventually(t, func() bool { return orch.Orchestrator.LiveWorkers()["linear_workflow"] == 0 },
		20*time.Second, 50*time.Millisecond)
}
