package engine_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/stretchr/testify/require"

	"github.com/taskerhq/tasker/client"
	"github.com/taskerhq/tasker/internal/api"
)

// TestRealAnswersMatchTheOpenAPIDocument validates what the API answers over
// the real database (complete, failed, cancelled and delayed tasks, steps,
// history, schedules, queues and workers) against the OpenAPI document.
func TestRealAnswersMatchTheOpenAPIDocument(t *testing.T) {
	t.Parallel()
	b := setup(t)
	srv, c := apiFor(t, b, engineOpts{work: true})
	doc, err := libopenapi.NewDocument(api.OpenAPIYAML)
	require.NoError(t, err)
	v, errs := validator.NewValidator(doc)
	require.Empty(t, errs)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	var ids []string
	for _, ref := range []string{"diamond_workflow/diamond_pattern", "retry_workflow/retry_exhaustion"} {
		task, err := c.CreateTask(ctx, newRequest(t, ref, map[string]any{"even_number": 2}))
		require.NoError(t, err)
		_, err = c.WaitTask(ctx, task.TaskUUID)
		require.NoError(t, err)
		ids = append(ids, task.TaskUUID.String())
	}
	delayed := newRequest(t, "single_workflow/single_step", map[string]any{"even_number": 2})
	delayed.Delay = "1h"
	later, err := c.CreateTask(ctx, delayed)
	require.NoError(t, err)
	_, err = c.CancelTask(ctx, later.TaskUUID, client.CancelRequest{Reason: "not needed", Actor: "test"})
	require.NoError(t, err)
	ids = append(ids, later.TaskUUID.String())
	_, err = c.CreateSchedule(ctx, client.ScheduleRequest{Name: "n", Cron: "0 3 * * *", Task: newRequestNoIDs(t, "single_workflow/single_step", nil)})
	require.NoError(t, err)

	paths := []string{"/v1/tasks", "/v1/tasks?state=error", "/v1/schedules", "/v1/templates", "/health", "/v1/queues", "/v1/workers"}
	for _, id := range ids {
		paths = append(paths, "/v1/tasks/"+id, "/v1/tasks/"+id+"?wait=1s", "/v1/tasks/"+id+"/workflow_steps", "/v1/tasks/"+id+"/events")
	}
	for _, p := range paths {
		resp, err := http.Get(srv.URL + p)
		require.NoError(t, err)
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", p, body)
		resp.Body = io.NopCloser(bytes.NewReader(body))
		req, _ := http.NewRequest(http.MethodGet, srv.URL+p, nil)
		_, verrs := v.ValidateHttpResponse(req, resp)
		for _, e := range verrs {
			var why []string
			for _, se := range e.SchemaValidationErrors {
				why = append(why, se.Reason+" at "+se.FieldPath)
			}
			t.Errorf("GET %s: %s: %s %s", p, e.Message, e.Reason, strings.Join(why, "; "))
		}
	}
}
