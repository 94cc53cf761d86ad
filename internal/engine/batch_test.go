package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/taskerhq/tasker/client"
)

// TestCreateTasksBatch creates tasks through POST /v1/tasks/batch against
// PostgreSQL: they run to completion with the history a single create
// writes, a refused request refuses the whole batch naming it, and a repeated
// batch with idempotency keys creates nothing.
func TestCreateTasksBatch(t *testing.T) {
	t.Parallel()
	b := setup(t)
	srv, c := apiFor(t, b, engineOpts{work: true})
	ctx := context.Background()

	batch := func(n int, key string) []client.TaskRequest {
		reqs := make([]client.TaskRequest, n)
		for i := range reqs {
			ref := "linear_workflow/mathematical_sequence"
			if i%3 == 1 {
				ref = "diamond_workflow/diamond_pattern"
			}
			reqs[i] = newRequest(t, ref, map[string]any{"even_number": 2 * (i + 1)})
			if key != "" {
				reqs[i].IdempotencyKey = fmt.Sprintf("%s-%d", key, i)
			}
		}
		return reqs
	}
	post := func(t *testing.T, body string) (int, client.ErrorBody) {
		t.Helper()
		resp, err := http.Post(srv.URL+"/v1/tasks/batch", "application/json", strings.NewReader(body))
		require.NoError(t, err)
		defer resp.Body.Close()
		var e client.ErrorBody
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&e))
		return resp.StatusCode, e
	}

	t.Run("AllComplete", func(t *testing.T) {
		reqs := batch(12, "")
		given := uuid.Must(uuid.NewV7())
		reqs[5] = reqs[5].WithCorrelationID(given)
		tasks, err := c.CreateTasks(ctx, reqs)
		require.NoError(t, err)
		require.Len(t, tasks, len(reqs))
		seen := map[uuid.UUID]bool{}
		for i, task := range tasks {
			require.Equal(t, reqs[i].Name, task.Name, "request order")
			require.Equal(t, "steps_in_process", task.State)
			require.False(t, seen[task.CorrelationID], "each task has its own correlation id")
			seen[task.CorrelationID] = true
		}
		require.Equal(t, given, tasks[5].CorrelationID)
		single, err := c.CreateTask(ctx, reqs[0])
		require.NoError(t, err)
		for _, task := range append(tasks, *single) {
			final, err := c.WaitForTask(ctx, task.TaskUUID, 10*time.Millisecond)
			require.NoError(t, err)
			require.Equal(t, "complete", final.State, "task %s", task.TaskUUID)
		}
		// The batch writes the same history as the single-task path.
		history := func(id uuid.UUID) (task, steps string) {
			var a, s string
			require.NoError(t, b.pool.QueryRow(ctx, `SELECT
				(SELECT string_agg(coalesce(from_state, '-') || '>' || to_state || ':' || reason, ' ' ORDER BY task_transition_id)
				   FROM tasker.task_transitions WHERE task_uuid = $1),
				(SELECT string_agg(x, ' ' ORDER BY x) FROM (
				   SELECT s.name || '=' || string_agg(coalesce(h.from_state, '-') || '>' || h.to_state, ',' ORDER BY h.workflow_step_transition_id) AS x
				   FROM tasker.workflow_steps s JOIN tasker.workflow_step_transitions h USING (workflow_step_uuid)
				   WHERE s.task_uuid = $1 GROUP BY s.name) y)`, id).Scan(&a, &s))
			return a, s
		}
		wantTask, wantSteps := history(single.TaskUUID)
		gotTask, gotSteps := history(tasks[0].TaskUUID)
		require.Contains(t, gotTask, "->pending:created pending>initializing:initialize")
		require.Contains(t, gotSteps, "enqueued>in_progress")
		require.Equal(t, wantTask, gotTask)
		require.Equal(t, wantSteps, gotSteps)
	})

	t.Run("BadItemWritesNothing", func(t *testing.T) {
		reqs := batch(5, "")
		cases := []struct {
			name   string
			change map[string]any
			field  string
			status int
		}{
			{"invalid", map[string]any{"priority": 1000}, "tasks[3].priority", 422},
			{"unknown template", map[string]any{"name": "nope"}, "tasks[3].name", 404},
			{"unknown field", map[string]any{"colour": "red"}, "tasks[3].colour", 400},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				before := tableCounts(t, b)
				raw, err := json.Marshal(reqs)
				require.NoError(t, err)
				var items []map[string]any
				require.NoError(t, json.Unmarshal(raw, &items))
				for k, v := range tc.change {
					items[3][k] = v
				}
				bad, err := json.Marshal(map[string]any{"tasks": items})
				require.NoError(t, err)
				status, e := post(t, string(bad))
				require.Equal(t, tc.status, status, "%+v", e.Error)
				require.Equal(t, client.CodeInvalidItems, e.Error.Code)
				require.Len(t, e.Error.Items, 1)
				require.Equal(t, 3, e.Error.Items[0].Index)
				require.Equal(t, tc.field, e.Error.Items[0].Field)
				require.Equal(t, before, tableCounts(t, b), "nothing written")
			})
		}
		before := tableCounts(t, b)
		reqs[1].Priority, reqs[4].Priority = 500, -500
		_, err := c.CreateTasks(ctx, reqs)
		var apiErr *client.APIError
		require.True(t, errors.As(err, &apiErr), "%v", err)
		require.Equal(t, http.StatusUnprocessableEntity, apiErr.Status)
		require.Equal(t, []int{1, 4}, []int{apiErr.Items[0].Index, apiErr.Items[1].Index}, "every refused request is named")
		require.Equal(t, before, tableCounts(t, b), "nothing written")
		status, _ := post(t, `{"tasks":[]}`)
		require.Equal(t, http.StatusUnprocessableEntity, status)
		status, _ = post(t, `{"tasks":[`+strings.TrimSuffix(strings.Repeat(`{"namespace":"a","name":"b"},`, client.MaxTaskBatch+1), ",")+`]}`)
		require.Equal(t, http.StatusUnprocessableEntity, status)
		require.Equal(t, before, tableCounts(t, b), "nothing written")
	})

	t.Run("IdempotentRepeat", func(t *testing.T) {
		reqs := batch(6, "repeat")
		reqs = append(reqs, reqs[2]) // the same request twice in one batch is one task
		first, err := c.CreateTasks(ctx, reqs)
		require.NoError(t, err)
		require.Equal(t, first[2].TaskUUID, first[6].TaskUUID)
		for _, task := range first {
			_, err := c.WaitForTask(ctx, task.TaskUUID, 10*time.Millisecond)
			require.NoError(t, err)
		}
		before := tableCounts(t, b)
		body, err := json.Marshal(client.TaskBatchRequest{Tasks: reqs})
		require.NoError(t, err)
		resp, err := http.Post(srv.URL+"/v1/tasks/batch", "application/json", strings.NewReader(string(body)))
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, "nothing new: 200")
		var again client.TaskBatch
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&again))
		require.Equal(t, []int{0, 1, 2, 3, 4, 5, 6}, again.Existing)
		for i := range first {
			require.Equal(t, first[i].TaskUUID, again.Tasks[i].TaskUUID)
		}
		require.Equal(t, before, tableCounts(t, b), "a repeat writes nothing")

		// A key reused for another request refuses the batch (409), and the
		// new request beside it is not created either.
		other := batch(2, "")
		other[1] = reqs[3]
		other[1].Priority = 7
		_, err = c.CreateTasks(ctx, other)
		var apiErr *client.APIError
		require.True(t, errors.As(err, &apiErr), "%v", err)
		require.Equal(t, http.StatusConflict, apiErr.Status)
		require.Equal(t, "tasks[1].idempotency_key", apiErr.Items[0].Field)
		require.Equal(t, before, tableCounts(t, b), "nothing written")
	})

	t.Run("ConcurrentRepeatsCreateOnce", func(t *testing.T) {
		const m = 100
		reqs := batch(m, "concurrent")
		const n = 5
		results := make([][]client.Task, n)
		errs := make([]error, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			// Half of the batches list the requests in reverse: the keys
			// are claimed in one order whatever the request's.
			mine := slices.Clone(reqs)
			if i%2 == 1 {
				slices.Reverse(mine)
			}
			wg.Go(func() {
				<-start
				results[i], errs[i] = c.CreateTasks(ctx, mine)
				if i%2 == 1 {
					slices.Reverse(results[i])
				}
			})
		}
		close(start)
		wg.Wait()
		for i := range n {
			require.NoError(t, errs[i])
			for j := range reqs {
				require.Equal(t, results[0][j].TaskUUID, results[i][j].TaskUUID, "every batch answers with the same tasks")
			}
		}
		var tasks, steps int
		require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*), (SELECT count(*) FROM tasker.workflow_steps s
				JOIN tasker.tasks t USING (task_uuid) WHERE t.idempotency_key LIKE 'concurrent-%')
			FROM tasker.tasks WHERE idempotency_key LIKE 'concurrent-%'`).Scan(&tasks, &steps))
		require.Equal(t, m, tasks, "one task per key")
		require.Equal(t, 4*m, steps, "one set of steps per task (linear and diamond have 4 each)")
		for _, task := range results[0] {
			_, err := c.WaitForTask(ctx, task.TaskUUID, 10*time.Millisecond)
			require.NoError(t, err)
		}
	})

	t.Run("Delayed", func(t *testing.T) {
		reqs := batch(2, "")
		reqs[1].Delay = "300ms"
		tasks, err := c.CreateTasks(ctx, reqs)
		require.NoError(t, err)
		require.Equal(t, "waiting_for_dependencies", tasks[1].State)
		require.Zero(t, tasks[1].EnqueuedSteps)
		// As a single delayed task: run_at keeps it out of the readiness
		// poll's undelayed scan and tells every orchestrator when to wake.
		var runAt, undelayed *time.Time
		var stepsHeld int
		require.NoError(t, b.pool.QueryRow(ctx, `SELECT t.run_at, (SELECT run_at FROM tasker.tasks WHERE task_uuid = $2),
				(SELECT count(*) FROM tasker.workflow_steps s WHERE s.task_uuid = t.task_uuid AND s.next_retry_at = t.run_at)
			FROM tasker.tasks t WHERE t.task_uuid = $1`, tasks[1].TaskUUID, tasks[0].TaskUUID).Scan(&runAt, &undelayed, &stepsHeld))
		require.NotNil(t, runAt)
		require.Nil(t, undelayed)
		require.Equal(t, 4, stepsHeld, "every step held until run_at")
		for _, task := range tasks {
			final, err := c.WaitForTask(ctx, task.TaskUUID, 10*time.Millisecond)
			require.NoError(t, err)
			require.Equal(t, "complete", final.State)
		}
	})
}
