package engine_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) records(t *testing.T) []map[string]any {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, line := range bytes.Split(b.buf.Bytes(), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal(line, &m), string(line))
		out = append(out, m)
	}
	return out
}

// The twelve lifecycle events (docs/observability/logging.md) and the fields each must carry.
var lifecycleFields = map[string][]string{
	"task.initialized":        {"correlation_id", "task_uuid", "namespace", "operation", "duration_ms"},
	"task.steps_enqueued":     {"correlation_id", "task_uuid", "namespace", "operation"},
	"task.evaluation_started": {"correlation_id", "task_uuid", "namespace", "operation"},
	"task.finalization_ready": {"correlation_id", "task_uuid", "namespace", "operation"},
	"task.completed":          {"correlation_id", "task_uuid", "namespace", "operation", "duration_ms"},
	"task.failed":             {"correlation_id", "task_uuid", "namespace", "operation", "duration_ms"},
	"step.enqueued":           {"correlation_id", "task_uuid", "step_uuid", "namespace", "operation"},
	"step.claimed":            {"correlation_id", "task_uuid", "step_uuid", "namespace", "operation", "duration_ms"},
	"step.executing":          {"correlation_id", "task_uuid", "step_uuid", "namespace", "operation"},
	"step.completed":          {"correlation_id", "task_uuid", "step_uuid", "namespace", "operation", "duration_ms"},
	"step.failed":             {"correlation_id", "task_uuid", "step_uuid", "namespace", "operation"},
	"step.retry_scheduled":    {"correlation_id", "task_uuid", "step_uuid", "namespace", "operation"},
}

func TestLifecycleEvents(t *testing.T) {
	t.Parallel()
	cases := []struct {
		ref   string
		state string
		want  map[string]int
	}{
		{"retry_workflow/retry_mechanics", "complete", map[string]int{
			"task.initialized": 1, "task.steps_enqueued": 3, "step.enqueued": 3, "step.claimed": 3, "step.executing": 3,
			"step.retry_scheduled": 2, "step.completed": 1, "step.failed": 0,
			// one per processed result (3) and one per resume after a backoff (2)
			"task.evaluation_started": 5,
			"task.finalization_ready": 1, "task.completed": 1, "task.failed": 0,
		}},
		{"retry_workflow/retry_exhaustion", "error", map[string]int{
			"task.initialized": 1, "task.steps_enqueued": 3, "step.enqueued": 3, "step.claimed": 3, "step.executing": 3,
			"step.retry_scheduled": 2, "step.completed": 0, "step.failed": 1,
			"task.evaluation_started": 5,
			"task.finalization_ready": 1, "task.completed": 0, "task.failed": 1,
		}},
	}
	for _, c := range cases {
		t.Run(c.ref, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			sink := &syncBuffer{}
			logger := slog.New(slog.NewJSONHandler(sink, &slog.HandlerOptions{Level: slog.LevelDebug}))
			e := b.start(t, engineOpts{orchestrate: true, work: true, logger: logger})
			created, err := e.Orchestrator.CreateTask(context.Background(), newRequest(t, c.ref, map[string]any{"even_number": 6}))
			require.NoError(t, err)
			task := waitTerminal(t, e.Backend(), created.TaskUUID, 30*time.Second)
			require.Equal(t, c.state, task.State)
			// Records are written after commit; give the last ones a moment to land.
			require.Eventually(t, func() bool {
				for _, r := range sink.records(t) {
					if r["event"] == "task.completed" || r["event"] == "task.failed" {
						return true
					}
				}
				return false
			}, 5*time.Second, 10*time.Millisecond)
			got := map[string]int{}
			for _, r := range sink.records(t) {
				ev, ok := r["event"].(string)
				if !ok {
					continue
				}
				fields, known := lifecycleFields[ev]
				require.True(t, known, "unknown lifecycle event %q", ev)
				require.Equal(t, created.TaskUUID.String(), r["task_uuid"], "event %s", ev)
				require.Equal(t, created.CorrelationID.String(), r["correlation_id"], "event %s", ev)
				for _, f := range fields {
					require.Contains(t, r, f, "event %s lacks %s: %v", ev, f, r)
				}
				got[ev]++
			}
			for ev, n := range c.want {
				require.Equal(t, n, got[ev], "occurrences of %s (all: %v)", ev, got)
			}
			require.Len(t, c.want, 12)
		})
	}
}
