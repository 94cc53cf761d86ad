package api_test

import (
	"bufio"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskerhq/tasker/client"
	"github.com/taskerhq/tasker/internal/api"
)

func TestLongPoll(t *testing.T) {
	t.Parallel()

	t.Run("AnswersWhenTheTaskFinishes", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		task := decodeTask(t, b.do(t, http.MethodPost, "/v1/tasks", validBody))
		done := make(chan client.Task, 1)
		go func() {
			rec := b.do(t, http.MethodGet, "/v1/tasks/"+task.TaskUUID.String()+"?wait=30s", "")
			var got client.Task
			_ = json.Unmarshal(rec.Body.Bytes(), &got)
			done <- got
		}()
		b.backend.Update(task.TaskUUID, func(tk *client.Task) { tk.State = "complete" })
		select {
		case got := <-done:
			require.Equal(t, "complete", got.State)
		case <-time.After(20 * time.Second):
			t.Fatal("the long-poll did not answer when the task finished")
		}
	})

	t.Run("AnswersTheCurrentStateWhenTheWaitEnds", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		task := decodeTask(t, b.do(t, http.MethodPost, "/v1/tasks", validBody))
		rec := b.do(t, http.MethodGet, "/v1/tasks/"+task.TaskUUID.String()+"?wait=10ms", "")
		require.Equal(t, http.StatusOK, rec.Code)
		require.Equal(t, "pending", decodeTask(t, rec).State)
	})

	t.Run("BadWait", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		task := decodeTask(t, b.do(t, http.MethodPost, "/v1/tasks", validBody))
		for _, w := range []string{"soon", "2m", "-1s"} {
			requireAPIError(t, b.do(t, http.MethodGet, "/v1/tasks/"+task.TaskUUID.String()+"?wait="+w, ""),
				http.StatusBadRequest, client.CodeInvalidField, "wait")
		}
	})

	t.Run("TooManyWaitersIs503WithRetryAfter", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(c *api.Config) { c.MaxWaiters = 1 })
		task := decodeTask(t, b.do(t, http.MethodPost, "/v1/tasks", validBody))
		path := "/v1/tasks/" + task.TaskUUID.String() + "?wait=30s"
		first := make(chan int, 1)
		go func() { first <- b.do(t, http.MethodGet, path, "").Code }()
		deadline := time.Now().Add(20 * time.Second)
		for {
			rec := b.do(t, http.MethodGet, path[:strings.Index(path, "?")]+"?wait=0s", "")
			if rec.Code == http.StatusServiceUnavailable {
				requireAPIError(t, rec, http.StatusServiceUnavailable, client.CodeTooManyWaiters, "")
				require.Equal(t, "1", rec.Header().Get("Retry-After"))
				break
			}
			select {
			case code := <-first:
				// The probe held the slot when the first waiter came: send it again.
				require.Equal(t, http.StatusServiceUnavailable, code)
				go func() { first <- b.do(t, http.MethodGet, path, "").Code }()
			default:
			}
			require.True(t, time.Now().Before(deadline), "the first waiter never took the only slot: %d %s", rec.Code, rec.Body.String())
		}
		// Plain reads are not waiters.
		require.Equal(t, http.StatusOK, b.do(t, http.MethodGet, "/v1/tasks/"+task.TaskUUID.String(), "").Code)
		b.backend.Update(task.TaskUUID, func(tk *client.Task) { tk.State = "error" })
		require.Equal(t, http.StatusOK, <-first)
	})
}

func TestEventStream(t *testing.T) {
	t.Parallel()
	b := setup(t)
	srv := httptestServer(t, b)
	task := decodeTask(t, b.do(t, http.MethodPost, "/v1/tasks", validBody))

	resp, err := http.Get(srv + "/v1/tasks/" + task.TaskUUID.String() + "/events")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	lines := bufio.NewScanner(resp.Body)
	next := func() (event, data string) {
		for lines.Scan() {
			l := lines.Text()
			switch {
			case strings.HasPrefix(l, "event: "):
				event = strings.TrimPrefix(l, "event: ")
			case strings.HasPrefix(l, "data: "):
				data = strings.TrimPrefix(l, "data: ")
			case l == "" && event != "":
				return event, data
			}
		}
		t.Fatalf("stream ended: %v", lines.Err())
		return "", ""
	}
	ev, data := next()
	require.Equal(t, "task", ev)
	var te client.TaskEvent
	require.NoError(t, json.Unmarshal([]byte(data), &te))
	require.Equal(t, "pending", te.To)
	// The creation of the three steps of version 1.1.0.
	for range 3 {
		ev, _ = next()
		require.Equal(t, "step", ev)
	}
	b.backend.Update(task.TaskUUID, func(tk *client.Task) {
		tk.Transitions = append(tk.Transitions, client.Transition{From: "pending", To: "complete", At: time.Now()})
		tk.State = "complete"
	})
	ev, data = next()
	require.Equal(t, "task", ev)
	require.NoError(t, json.Unmarshal([]byte(data), &te))
	require.Equal(t, "complete", te.To)
	ev, data = next()
	require.Equal(t, "end", ev)
	require.JSONEq(t, `{"state":"complete"}`, data)
}

// httptestServer serves b's handler over a real connection (streams need one).
func httptestServer(t *testing.T, b *testBundle) string {
	t.Helper()
	srv := httptest.NewServer(b.handler)
	t.Cleanup(srv.Close)
	return srv.URL
}
