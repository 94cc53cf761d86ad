package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/taskerhq/tasker/client"
	"github.com/taskerhq/tasker/internal/api"
	"github.com/taskerhq/tasker/internal/messages"
)

// apiFor serves the real API over the test database.
func apiFor(t *testing.T, b *testBundle, o engineOpts) (*httptest.Server, *client.Client) {
	t.Helper()
	o.orchestrate = true
	e := b.start(t, o)
	h, err := api.NewHandler(api.Config{Backend: e.Backend(), Logger: testLogger(t)})
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, client.New(srv.URL)
}

func tableCounts(t *testing.T, b *testBundle) string {
	t.Helper()
	var tasks, steps, msgs int
	require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM tasker.tasks),
		(SELECT count(*) FROM tasker.workflow_steps), (SELECT count(*) FROM tasker.queue_messages)`).Scan(&tasks, &steps, &msgs))
	return fmt.Sprintf("%d/%d/%d", tasks, steps, msgs)
}

func TestBadInputWritesNothing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	srv, _ := apiFor(t, b, engineOpts{})
	cases := []struct {
		name, body, field string
		headers           map[string]string
		status            int
	}{
		{"malformed json", `{"namespace": "linear_workflow",`, "", nil, 400},
		{"unknown template", `{"namespace":"linear_workflow","name":"nope","context":{}}`, "name", nil, 404},
		{"unknown namespace", `{"namespace":"no_such_ns","name":"mathematical_sequence","context":{}}`, "name", nil, 404},
		{"unknown version", `{"namespace":"linear_workflow","name":"mathematical_sequence","version":"9.9.9","context":{}}`, "version", nil, 404},
		{"context array", `{"namespace":"linear_workflow","name":"mathematical_sequence","context":[1,2]}`, "context", nil, 422},
		{"context string", `{"namespace":"linear_workflow","name":"mathematical_sequence","context":"x"}`, "context", nil, 422},
		{"bad correlation id", `{"namespace":"linear_workflow","name":"mathematical_sequence","correlation_id":"nope"}`, "correlation_id", nil, 422},
		{"bad parent correlation id", `{"namespace":"linear_workflow","name":"mathematical_sequence","parent_correlation_id":"12"}`, "parent_correlation_id", nil, 422},
		{"bad header", `{"namespace":"linear_workflow","name":"mathematical_sequence"}`, "X-Correlation-ID", map[string]string{"X-Correlation-ID": "zzz"}, 422},
		{"too large", `{"namespace":"linear_workflow","name":"mathematical_sequence","context":{"pad":"` + strings.Repeat("x", 2<<20) + `"}}`, "", nil, 413},
		{"injection namespace", `{"namespace":"x'; DROP TABLE tasker.tasks; --","name":"a"}`, "namespace", nil, 422},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := tableCounts(t, b)
			req, err := http.NewRequest(http.MethodPost, srv.URL+"/v1/tasks", strings.NewReader(c.body))
			require.NoError(t, err)
			req.Header.Set("Content-Type", "application/json")
			for k, v := range c.headers {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			require.Equal(t, c.status, resp.StatusCode)
			var body client.ErrorBody
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
			require.NotNil(t, body.Error)
			require.NotEmpty(t, body.Error.Message)
			if c.field != "" {
				require.Equal(t, c.field, body.Error.Field)
			}
			require.Equal(t, before, tableCounts(t, b), "nothing written")
		})
	}
	for _, path := range []string{"/v1/tasks/not-a-uuid", "/v1/tasks/not-a-uuid/workflow_steps", "/v1/tasks?correlation_id=nope"} {
		resp, err := http.Get(srv.URL + path)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusBadRequest, resp.StatusCode, path)
	}
	resp, err := http.Get(srv.URL + "/v1/tasks/" + uuid.New().String())
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
}

func TestCorrelationIDs(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.recordSent(t)
	srv, c := apiFor(t, b, engineOpts{work: true})
	ctx := context.Background()

	t.Run("given id is kept everywhere", func(t *testing.T) {
		want := uuid.Must(uuid.NewV7())
		req := newRequest(t, "diamond_workflow/diamond_pattern", map[string]any{"even_number": 4}).WithCorrelationID(want)
		task, err := c.CreateTask(ctx, req)
		require.NoError(t, err)
		require.Equal(t, want, task.CorrelationID)
		final, err := c.WaitForTask(ctx, task.TaskUUID, 10*time.Millisecond)
		require.NoError(t, err)
		require.Equal(t, "complete", final.State)
		require.Equal(t, want, final.CorrelationID)
		// Every message that carried this task's steps carries the id.
		rows, err := b.pool.Query(ctx, `SELECT queue_name, message, headers FROM public.sent_messages
			WHERE message->>'task_uuid' = $1`, task.TaskUUID.String())
		require.NoError(t, err)
		var n int
		for rows.Next() {
			var q string
			var body, headers []byte
			require.NoError(t, rows.Scan(&q, &body, &headers))
			var m struct {
				CorrelationID uuid.UUID `json:"correlation_id"`
			}
			require.NoError(t, json.Unmarshal(body, &m))
			require.Equal(t, want, m.CorrelationID, "queue %s", q)
			var h map[string]string
			require.NoError(t, json.Unmarshal(headers, &h), "headers are a JSON object of strings")
			n++
		}
		require.NoError(t, rows.Err())
		require.Equal(t, 8, n, "4 step messages and 4 result messages")
		// Step and task history rows carry it too.
		var missing int
		require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FROM tasker.workflow_step_transitions
			WHERE task_uuid = $1 AND correlation_id IS DISTINCT FROM $2`, task.TaskUUID, want).Scan(&missing))
		require.Zero(t, missing)
		list, err := c.ListTasksByCorrelation(ctx, want)
		require.NoError(t, err)
		require.Len(t, list, 1)
		require.Equal(t, task.TaskUUID, list[0].TaskUUID)
	})

	t.Run("header id is used and echoed", func(t *testing.T) {
		want := uuid.Must(uuid.NewV7())
		body := `{"namespace":"single_workflow","name":"single_step","context":{"even_number":2}}`
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/v1/tasks", strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("X-Correlation-ID", want.String())
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusCreated, resp.StatusCode)
		require.Equal(t, want.String(), resp.Header.Get("X-Correlation-ID"))
		var task client.Task
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&task))
		require.Equal(t, want, task.CorrelationID)
		get, err := http.Get(srv.URL + "/v1/tasks/" + task.TaskUUID.String())
		require.NoError(t, err)
		get.Body.Close()
		require.Equal(t, want.String(), get.Header.Get("X-Correlation-ID"))
	})

	t.Run("generated id is version 7", func(t *testing.T) {
		body := `{"namespace":"single_workflow","name":"single_step","context":{"even_number":2}}`
		resp, err := http.Post(srv.URL+"/v1/tasks", "application/json", strings.NewReader(body))
		require.NoError(t, err)
		defer resp.Body.Close()
		var task client.Task
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&task))
		require.Equal(t, uuid.Version(7), task.CorrelationID.Version())
		require.Equal(t, task.CorrelationID.String(), resp.Header.Get("X-Correlation-ID"))
		// Built by the client library too.
		req, err := client.NewTaskRequest("single_workflow", "single_step", "", nil)
		require.NoError(t, err)
		require.Equal(t, uuid.Version(7), req.CorrelationID.Version())
	})

	t.Run("child task inherits parent correlation id", func(t *testing.T) {
		task, err := c.CreateTask(ctx, newRequest(t, "nested_workflow/parent_with_child", map[string]any{"even_number": 4}))
		require.NoError(t, err)
		final, err := c.WaitForTask(ctx, task.TaskUUID, 10*time.Millisecond)
		require.NoError(t, err)
		require.Equal(t, "complete", final.State, "%+v", final.Error)
		var res struct {
			Child uuid.UUID `json:"child_task_uuid"`
		}
		require.NoError(t, json.Unmarshal(final.Result["spawn_child"], &res))
		child, err := c.WaitForTask(ctx, res.Child, 10*time.Millisecond)
		require.NoError(t, err)
		require.Equal(t, "complete", child.State)
		require.NotNil(t, child.ParentCorrelationID)
		require.Equal(t, task.CorrelationID, *child.ParentCorrelationID)
		require.NotEqual(t, task.CorrelationID, child.CorrelationID)
	})
}

func TestTaskRequestQueue(t *testing.T) {
	t.Parallel()
	b := setup(t)
	e := b.start(t, engineOpts{orchestrate: true, work: true})
	corr := uuid.Must(uuid.NewV7())
	req := newRequest(t, "single_workflow/single_step", map[string]any{"even_number": 8})
	req.CorrelationID = nil
	msg := messages.TaskRequestMessage{RequestID: uuid.New(), CorrelationID: corr, TaskRequest: req, RequestedAt: time.Now()}
	body, err := json.Marshal(msg)
	require.NoError(t, err)
	_, err = b.pool.Exec(context.Background(), `SELECT tasker.queue_send('orchestration_task_requests', $1, '{"traceparent":"x"}')`, body)
	require.NoError(t, err)
	be := e.Backend()
	deadline := time.Now().Add(20 * time.Second)
	for {
		tasks, err := be.ListTasksByCorrelation(context.Background(), corr)
		require.NoError(t, err)
		if len(tasks) == 1 && tasks[0].Terminal() {
			require.Equal(t, "complete", tasks[0].State)
			break
		}
		require.True(t, time.Now().Before(deadline), "task from the request queue did not complete")
		time.Sleep(20 * time.Millisecond)
	}
}

func TestHealthReportsDatabase(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, c := apiFor(t, b, engineOpts{})
	h, err := c.Health(context.Background())
	require.NoError(t, err)
	require.Equal(t, "ok", h.Status)
}
