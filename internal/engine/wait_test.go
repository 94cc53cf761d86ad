package engine_test

import (
	"bufio"
	"context"
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

// TestWaitIsNotified checks that a waiter learns of a finished task from the
// orchestrator's NOTIFY, and that WaitTask and the event stream see it.
func TestWaitIsNotified(t *testing.T) {
	t.Parallel()
	b := setup(t)
	e := b.start(t, engineOpts{orchestrate: true}) // no worker yet: the task waits
	be := e.Backend()
	h, err := api.NewHandler(api.Config{Backend: be, Logger: testLogger(t)})
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c := client.New(srv.URL)
	ctx := context.Background()

	task, err := c.CreateTask(ctx, newRequest(t, "linear_workflow/mathematical_sequence", map[string]any{"even_number": 2}))
	require.NoError(t, err)
	signal, stop := be.WatchTask(task.TaskUUID)
	defer stop()
	stream, err := http.Get(srv.URL + "/v1/tasks/" + task.TaskUUID.String() + "/events")
	require.NoError(t, err)
	defer stream.Body.Close()
	require.Equal(t, http.StatusOK, stream.StatusCode)
	waited := make(chan *client.Task, 1)
	go func() {
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		final, _ := c.WaitTask(wctx, task.TaskUUID)
		waited <- final
	}()

	b.start(t, engineOpts{work: true})
	select {
	case <-signal:
	case <-time.After(20 * time.Second):
		t.Fatal("no task-terminal notification")
	}
	final := <-waited
	require.NotNil(t, final)
	require.Equal(t, "complete", final.State)

	var events []client.TaskEvent
	lines := bufio.NewScanner(stream.Body)
	var kind string
	for lines.Scan() {
		l := lines.Text()
		if strings.HasPrefix(l, "event: ") {
			kind = strings.TrimPrefix(l, "event: ")
		}
		if strings.HasPrefix(l, "data: ") && kind != "end" {
			var ev client.TaskEvent
			require.NoError(t, json.Unmarshal([]byte(strings.TrimPrefix(l, "data: ")), &ev))
			require.Equal(t, kind, ev.Kind)
			events = append(events, ev)
		}
	}
	require.Equal(t, "end", kind, "the stream ends after the terminal transition")
	completed := map[string]bool{}
	for _, ev := range events {
		if ev.Kind == "step" && ev.To == "complete" {
			completed[ev.StepName] = true
		}
	}
	require.Len(t, completed, 4, "every step's completion is streamed")
	last := events[len(events)-1]
	for _, ev := range events {
		if ev.Kind == "task" {
			last = ev
		}
	}
	require.Equal(t, "complete", last.To)
}
