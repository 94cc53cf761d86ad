package engine_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskerhq/tasker/internal/examples"
)

func TestExampleTemplatesComplete(t *testing.T) {
	t.Parallel()
	b := setup(t)
	e := b.start(t, engineOpts{orchestrate: true, work: true})
	be := e.Backend()
	for _, ref := range []string{
		"linear_workflow/mathematical_sequence", "diamond_workflow/diamond_pattern",
		"tree_workflow/hierarchical_tree", "mixed_dag_workflow/complex_dag", "single_workflow/single_step",
	} {
		t.Run(ref, func(t *testing.T) {
			req := newRequest(t, ref, map[string]any{"even_number": 6})
			created, err := e.Orchestrator.CreateTask(context.Background(), req)
			require.NoError(t, err)
			require.Equal(t, *req.CorrelationID, created.CorrelationID)
			task := waitTerminal(t, be, created.TaskUUID, 20*time.Second)
			require.Equal(t, "complete", task.State, "error: %+v", task.Error)
			want, ok := examples.ExpectedResult(b.templates[ref], 6)
			require.True(t, ok)
			got := map[string]string{}
			for k, v := range task.Result {
				var s string
				require.NoError(t, json.Unmarshal(v, &s))
				got[k] = s
			}
			require.Equal(t, want, got)
		})
	}
}
