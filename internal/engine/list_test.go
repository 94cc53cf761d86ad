package engine_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/taskerhq/tasker/client"
)

func TestListTasksREST(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, c := apiFor(t, b, engineOpts{})
	ctx := context.Background()
	before := time.Now().Add(-time.Second)
	var linear []uuid.UUID
	for range 3 {
		task, err := c.CreateTask(ctx, newRequest(t, "linear_workflow/mathematical_sequence", map[string]any{"even_number": 2}))
		require.NoError(t, err)
		linear = append(linear, task.TaskUUID)
	}
	_, err := c.CreateTask(ctx, newRequest(t, "single_workflow/single_step", map[string]any{"even_number": 2}))
	require.NoError(t, err)

	var got []uuid.UUID
	f := client.TaskFilter{Namespace: "linear_workflow", Limit: 2, CreatedAfter: &before}
	for {
		page, err := c.ListTasks(ctx, f)
		require.NoError(t, err)
		for _, task := range page.Tasks {
			require.Equal(t, "linear_workflow", task.Namespace)
			require.Equal(t, 4, task.TotalSteps, "listed tasks carry their step counts")
			got = append(got, task.TaskUUID)
		}
		if page.NextCursor == "" {
			break
		}
		f.Cursor = page.NextCursor
	}
	require.Equal(t, []uuid.UUID{linear[2], linear[1], linear[0]}, got)

	all, err := c.ListTasks(ctx, client.TaskFilter{})
	require.NoError(t, err)
	require.Len(t, all.Tasks, 4)
	none, err := c.ListTasks(ctx, client.TaskFilter{States: []string{"complete", "error"}})
	require.NoError(t, err)
	require.Empty(t, none.Tasks)
	unknown, err := c.ListTasks(ctx, client.TaskFilter{Namespace: "no_such_namespace"})
	require.NoError(t, err)
	require.Empty(t, unknown.Tasks)
}
