package engine_test

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskerhq/tasker/client"
	"github.com/taskerhq/tasker/internal/orchestration"
)

// TestScheduleFiresOnceAcrossOrchestrators makes a schedule due while two
// orchestrators (their loops, and more callers besides) race to fire it:
// each due time creates exactly one task.
func TestScheduleFiresOnceAcrossOrchestrators(t *testing.T) {
	t.Parallel()
	b := setup(t)
	e1 := b.start(t, engineOpts{orchestrate: true})
	e2 := b.start(t, engineOpts{orchestrate: true})
	ctx := context.Background()
	sc, err := e1.Orchestrator.CreateSchedule(ctx, client.ScheduleRequest{Name: "every-minute", Cron: "* * * * *",
		TimeZone: "Europe/Paris", Task: newRequestNoIDs(t, "single_workflow/single_step", map[string]any{"even_number": 2})})
	require.NoError(t, err)
	require.True(t, sc.NextRunAt.After(time.Now()))

	for round := 1; round <= 3; round++ {
		// Due a little while ago, at a distinct time each round.
		_, err := b.pool.Exec(ctx, `UPDATE tasker.schedules SET next_run_at = now() - make_interval(mins => $1)`, round)
		require.NoError(t, err)
		var wg sync.WaitGroup
		for _, svc := range []*orchestration.Service{e1.Orchestrator, e2.Orchestrator, e1.Orchestrator, e2.Orchestrator} {
			wg.Go(func() {
				if _, err := svc.RunDueSchedules(ctx); err != nil {
					t.Errorf("running schedules: %v", err)
				}
			})
		}
		wg.Wait()
		var tasks int
		var next time.Time
		require.NoError(t, b.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM tasker.tasks WHERE idempotency_key LIKE 'schedule/%'),
			(SELECT next_run_at FROM tasker.schedules)`).Scan(&tasks, &next))
		require.Equal(t, round, tasks, "one task per due time")
		require.True(t, next.After(time.Now()), "the next firing is in the future")
		require.Zero(t, next.Second(), "on a minute boundary")
	}
	list, err := e2.Orchestrator.ListSchedules(ctx)
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.NotNil(t, list[0].LastTaskUUID)
	require.NoError(t, e2.Orchestrator.DeleteSchedule(ctx, "every-minute"))
}

func newRequestNoIDs(t *testing.T, ref string, taskCtx any) client.TaskRequest {
	req := newRequest(t, ref, taskCtx)
	req.CorrelationID = nil
	return req
}

func TestSchedulesREST(t *testing.T) {
	t.Parallel()
	b := setup(t)
	srv, c := apiFor(t, b, engineOpts{})
	ctx := context.Background()
	task := newRequestNoIDs(t, "single_workflow/single_step", map[string]any{"even_number": 2})
	_, err := c.CreateSchedule(ctx, client.ScheduleRequest{Name: "hourly", Cron: "0 * * * *", Task: task})
	require.NoError(t, err)
	for _, bad := range []struct {
		req    client.ScheduleRequest
		status int
		field  string
	}{
		{client.ScheduleRequest{Name: "hourly", Cron: "0 * * * *", Task: task}, http.StatusConflict, "name"},
		{client.ScheduleRequest{Name: "x", Cron: "every hour", Task: task}, http.StatusUnprocessableEntity, "cron"},
		{client.ScheduleRequest{Name: "x", Cron: "0 * * * *", TimeZone: "Mars/Olympus", Task: task}, http.StatusUnprocessableEntity, "time_zone"},
		{client.ScheduleRequest{Name: "x", Cron: "0 * * * *", Task: client.TaskRequest{Namespace: "single_workflow", Name: "nope"}}, http.StatusNotFound, "task.name"},
		{client.ScheduleRequest{Name: "bad name!", Cron: "0 * * * *", Task: task}, http.StatusUnprocessableEntity, "name"},
	} {
		_, err := c.CreateSchedule(ctx, bad.req)
		var apiErr *client.APIError
		require.ErrorAs(t, err, &apiErr, "%+v", bad.req)
		require.Equal(t, bad.status, apiErr.Status, apiErr.Message)
		require.Equal(t, bad.field, apiErr.Field, apiErr.Message)
	}
	list, err := c.ListSchedules(ctx)
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.NoError(t, c.DeleteSchedule(ctx, "hourly"))
	err = c.DeleteSchedule(ctx, "hourly")
	var apiErr *client.APIError
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, http.StatusNotFound, apiErr.Status)
	_ = srv
}

// TestDelayedTask creates a task an hour ahead: it exists but nothing runs;
// once its time has come (moved here to now) it runs to completion.
func TestDelayedTask(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, c := apiFor(t, b, engineOpts{work: true})
	ctx := context.Background()
	req := newRequest(t, "linear_workflow/mathematical_sequence", map[string]any{"even_number": 2})
	req.Delay = "1h"
	task, err := c.CreateTask(ctx, req)
	require.NoError(t, err)
	require.Equal(t, "waiting_for_dependencies", task.State)
	require.Zero(t, task.EnqueuedSteps)
	steps, err := c.ListSteps(ctx, task.TaskUUID)
	require.NoError(t, err)
	for _, s := range steps {
		require.Equal(t, "pending", s.State)
		require.Zero(t, s.Attempts)
	}
	_, err = b.pool.Exec(ctx, `UPDATE tasker.workflow_steps SET next_retry_at = now() WHERE task_uuid = $1`, task.TaskUUID)
	require.NoError(t, err)
	_, err = b.pool.Exec(ctx, `UPDATE tasker.tasks SET run_at = now() WHERE task_uuid = $1`, task.TaskUUID)
	require.NoError(t, err)
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	final, err := c.WaitTask(wctx, task.TaskUUID)
	require.NoError(t, err)
	require.Equal(t, "complete", final.State)

	bad := newRequest(t, "single_workflow/single_step", nil)
	at := time.Now().Add(time.Hour)
	bad.RunAt, bad.Delay = &at, "1h"
	_, err = c.CreateTask(ctx, bad)
	var apiErr *client.APIError
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, "delay", apiErr.Field)
	raw, _ := json.Marshal(apiErr)
	require.Contains(t, string(raw), "not both")
}
