package tasker_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskerhq/tasker"
	"github.com/taskerhq/tasker/client"
	"github.com/taskerhq/tasker/template"
)

// TestDayTwoOperations drives the embedded runtime's operator API: an
// idempotent create, a listing, a wait, a retry of a failed task and a
// cancel of one nobody runs.
func TestDayTwoOperations(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := startClient(t, b.pool, &tasker.Config{
		Templates: []*template.Template{etlTemplate("1.0.0")}, Handlers: etlHandlers(t),
		Worker: &tasker.WorkerConfig{Concurrency: 4}, Orchestration: &tasker.OrchestrationConfig{},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	req := etlRequest(t, 2)
	req.IdempotencyKey = "nightly-2026-01-01"
	first, err := c.CreateTask(ctx, req)
	require.NoError(t, err)
	require.False(t, first.Existing)
	again, err := c.CreateTask(ctx, req)
	require.NoError(t, err)
	require.True(t, again.Existing)
	require.Equal(t, first.TaskUUID, again.TaskUUID)
	other := req
	other.Context = []byte(`{"count": 5}`)
	_, err = c.CreateTask(ctx, other)
	var apiErr *client.APIError
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, http.StatusConflict, apiErr.Status)

	done, err := c.WaitTask(ctx, first.TaskUUID)
	require.NoError(t, err)
	require.Equal(t, "complete", done.State)

	// count 0 fails permanently; a retry runs the failed step again (and it
	// fails again: the input is still bad).
	bad, err := c.CreateTask(ctx, etlRequest(t, 0))
	require.NoError(t, err)
	failed, err := c.WaitTask(ctx, bad.TaskUUID)
	require.NoError(t, err)
	require.Equal(t, "error", failed.State)
	_, err = c.RetryTask(ctx, bad.TaskUUID, client.RetryRequest{Reason: "try again"})
	require.NoError(t, err)
	failed, err = c.WaitTask(ctx, bad.TaskUUID)
	require.NoError(t, err)
	require.Equal(t, "error", failed.State)

	list, err := c.ListTasks(ctx, client.TaskFilter{States: []string{"error"}, Namespace: "etl"})
	require.NoError(t, err)
	require.Len(t, list.Tasks, 1)
	require.Equal(t, bad.TaskUUID, list.Tasks[0].TaskUUID)
	_, err = c.ListTasks(ctx, client.TaskFilter{States: []string{"bogus"}})
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, "state", apiErr.Field)

	_, err = c.CancelTask(ctx, bad.TaskUUID, client.CancelRequest{})
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, client.CodeStateConflict, apiErr.Code)

	_, err = c.CreateSchedule(ctx, client.ScheduleRequest{Name: "hourly-etl", Cron: "0 * * * *", Task: client.TaskRequest{
		Namespace: "etl", Name: "pipeline", Context: []byte(`{"count": 1}`)}})
	require.NoError(t, err)
	_, err = c.CreateSchedule(ctx, client.ScheduleRequest{Name: "bad", Cron: "0 * * *", Task: client.TaskRequest{Namespace: "etl", Name: "pipeline"}})
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, "cron", apiErr.Field)
	schedules, err := c.ListSchedules(ctx)
	require.NoError(t, err)
	require.Len(t, schedules, 1)
	require.NoError(t, c.DeleteSchedule(ctx, "hourly-etl"))
	require.ErrorIs(t, c.DeleteSchedule(ctx, "hourly-etl"), tasker.ErrNotFound)
}
