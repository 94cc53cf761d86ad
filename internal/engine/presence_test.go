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
	w := b.start(t, engineOpts{work: true, namespaces: []string{"linear_workflow"}})

	var workers int
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FROM tasker.workers WHERE worker_id = $1
		AND namespaces = ARRAY['linear_workflow']`, w.Worker.ID()).Scan(&workers))
	require.Equal(t, 1, workers, "a running worker records its presence")
	require.Eventually(t, func() bool {
		live := orch.Orchestrator.LiveWorkers()
		return live["linear_workflow"] == 1 && len(live) == len(allNamespaces(b))
	}, 20*time.Second, 50*time.Millisecond, "the live-worker view covers every namespace")
	require.Zero(t, orch.Orchestrator.LiveWorkers()["diamond_workflow"])

	be := orch.Backend()
	var taskUUIDs []string
	for range 2 {
		created, err := orch.Orchestrator.CreateTask(ctx, newRequest(t, "diamond_workflow/diamond_pattern", map[string]any{"even_number": 2}))
		require.NoError(t, err)
		taskUUIDs = append(taskUUIDs, created.TaskUUID.String())
		task, err := be.GetTask(ctx, created.TaskUUID)
		require.NoError(t, err)
		require.Equal(t, 1, task.EnqueuedSteps)
		require.Zero(t, task.InProgressSteps, "an unclaimed step is not in progress")
	}
	var warnings []map[string]any
	require.Eventually(t, func() bool {
		warnings = warnings[:0]
		for _, r := range sink.records(t) {
			if r["level"] == "WARN" && r["namespace"] == "diamond_workflow" {
				warnings = append(warnings, r)
			}
		}
		return len(warnings) > 0
	}, 5*time.Second, 10*time.Millisecond)
	require.Len(t, warnings, 1, "one warning per namespace per minute, not one per task")
	require.Contains(t, warnings[0]["msg"], "no live worker serves")
	require.Contains(t, taskUUIDs, warnings[0]["task_uuid"])

	// A worker that stops cleanly removes itself.
	require.NoError(t, w.Stop())
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FROM tasker.workers`).Scan(&workers))
	require.Zero(t, workers)
	require.Eventually(t, func() bool { return orch.Orchestrator.LiveWorkers()["linear_workflow"] == 0 },
		20*time.Second, 50*time.Millisecond)
}
