package engine_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/taskerhq/tasker/client"
	"github.com/taskerhq/tasker/internal/messages"
)

func TestIdempotentCreate(t *testing.T) {
	t.Parallel()
	b := setup(t)
	srv, _ := apiFor(t, b, engineOpts{})
	ctx := context.Background()

	post := func(body []byte) (int, []byte) {
		resp, err := http.Post(srv.URL+"/v1/tasks", "application/json", bytes.NewReader(body))
		require.NoError(t, err)
		defer resp.Body.Close()
		out, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, out
	}
	tasksWithKey := func(key string) int {
		var n int
		require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FROM tasker.tasks WHERE idempotency_key = $1`, key).Scan(&n))
		return n
	}

	t.Run("TwentyAtOnceCreateOne", func(t *testing.T) {
		req := newRequest(t, "diamond_workflow/diamond_pattern", map[string]any{"even_number": 4})
		req.IdempotencyKey = "twenty-at-once"
		body, err := json.Marshal(req)
		require.NoError(t, err)
		const n = 20
		statuses := make([]int, n)
		bodies := make([][]byte, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				statuses[i], bodies[i] = post(body)
			})
		}
		close(start)
		wg.Wait()
		created := 0
		var ids []uuid.UUID
		for i := range n {
			switch statuses[i] {
			case http.StatusCreated:
				created++
			case http.StatusOK:
			default:
				t.Fatalf("request %d: status %d: %s", i, statuses[i], bodies[i])
			}
			var task client.Task
			require.NoError(t, json.Unmarshal(bodies[i], &task))
			ids = append(ids, task.TaskUUID)
		}
		require.Equal(t, 1, created, "exactly one request creates")
		for _, id := range ids {
			require.Equal(t, ids[0], id)
		}
		require.Equal(t, 1, tasksWithKey("twenty-at-once"))
		var steps int
		require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FROM tasker.workflow_steps WHERE task_uuid = $1`, ids[0]).Scan(&steps))
		require.Equal(t, 4, steps, "one set of steps")
	})

	t.Run("RepeatWithAnotherBodyIs409AndWritesNothing", func(t *testing.T) {
		req := newRequest(t, "single_workflow/single_step", map[string]any{"even_number": 2})
		req.IdempotencyKey = "conflicting"
		body, _ := json.Marshal(req)
		status, _ := post(body)
		require.Equal(t, http.StatusCreated, status)
		before := tableCounts(t, b)
		req.Context = json.RawMessage(`{"even_number": 4}`)
		body, _ = json.Marshal(req)
		status, out := post(body)
		require.Equal(t, http.StatusConflict, status, string(out))
		var e client.ErrorBody
		require.NoError(t, json.Unmarshal(out, &e))
		require.Equal(t, client.CodeIdempotencyConflict, e.Error.Code)
		require.Equal(t, "idempotency_key", e.Error.Field)
		require.Equal(t, before, tableCounts(t, b))
	})

	t.Run("RepeatOfAnotherTemplateIsAnotherTask", func(t *testing.T) {
		for _, ref := range []string{"single_workflow/single_step", "linear_workflow/mathematical_sequence"} {
			req := newRequest(t, ref, map[string]any{"even_number": 2})
			req.IdempotencyKey = "per-template"
			body, _ := json.Marshal(req)
			status, out := post(body)
			require.Equal(t, http.StatusCreated, status, string(out))
		}
		require.Equal(t, 2, tasksWithKey("per-template"))
	})
}

// TestIdempotentTaskRequestQueue sends one keyed request through the queue
// three times (as a producer retrying would) and once with another body: one
// task is created and the odd one is archived unanswered.
func TestIdempotentTaskRequestQueue(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.start(t, engineOpts{orchestrate: true})
	ctx := context.Background()
	send := func(req client.TaskRequest) {
		msg := messages.TaskRequestMessage{RequestID: uuid.New(), CorrelationID: uuid.Must(uuid.NewV7()), TaskRequest: req, RequestedAt: time.Now()}
		body, err := json.Marshal(msg)
		require.NoError(t, err)
		_, err = b.pool.Exec(ctx, `SELECT tasker.queue_send('orchestration_task_requests', $1, '{}')`, body)
		require.NoError(t, err)
	}
	req := newRequest(t, "single_workflow/single_step", map[string]any{"even_number": 8})
	req.CorrelationID = nil
	req.IdempotencyKey = "queued-once"
	for range 3 {
		send(req)
	}
	other := req
	other.Context = json.RawMessage(`{"even_number": 10}`)
	send(other)

	deadline := time.Now().Add(20 * time.Second)
	for {
		var pending, archived int
		require.NoError(t, b.pool.QueryRow(ctx, `SELECT
			(SELECT count(*) FROM tasker.queue_messages WHERE queue_name = 'orchestration_task_requests'),
			(SELECT count(*) FROM tasker.queue_archive WHERE queue_name = 'orchestration_task_requests')`).Scan(&pending, &archived))
		if pending == 0 && archived == 4 {
			break
		}
		require.True(t, time.Now().Before(deadline), "task requests not consumed: %d pending, %d archived", pending, archived)
		time.Sleep(20 * time.Millisecond)
	}
	var n int
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FROM tasker.tasks WHERE idempotency_key = 'queued-once'`).Scan(&n))
	require.Equal(t, 1, n)
}
