package ui_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/stretchr/testify/require"

	"github.com/taskerhq/tasker/client"
	"github.com/taskerhq/tasker/internal/api"
)

// TestConsoleReadsMatchTheOpenAPIDocument validates the console's reads over
// the real stack (PostgreSQL, a worker, Jaeger) against the API's OpenAPI
// document: the queues, the workers, and a task's trace proxied from Jaeger,
// with Jaeger's own 404 and the proxy's 400.
func TestConsoleReadsMatchTheOpenAPIDocument(t *testing.T) {
	s := startStack(t, "")
	ctx := context.Background()
	task := s.terminal(t, s.create(t, "diamond_workflow/diamond_pattern"))
	require.Equal(t, "complete", task.State)
	s.flush()
	_, err := s.jaeger.WaitForSpans(ctx, task.TraceID, 1)
	require.NoError(t, err)

	doc, err := libopenapi.NewDocument(api.OpenAPIYAML)
	require.NoError(t, err)
	v, errs := validator.NewValidator(doc)
	require.Empty(t, errs)
	bodies := map[string][]byte{}
	for _, c := range []struct {
		path   string
		status int
	}{
		{"/v1/queues", http.StatusOK},
		{"/v1/workers", http.StatusOK},
		{"/v1/traces/" + task.TraceID, http.StatusOK},
		{"/v1/traces/0af7651916cd43dd8448eb211c80319c", http.StatusNotFound},
		{"/v1/traces/not-a-trace", http.StatusBadRequest},
	} {
		resp, err := http.Get(s.url + c.path)
		require.NoError(t, err)
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		require.Equal(t, c.status, resp.StatusCode, "%s: %s", c.path, body)
		bodies[c.path] = body
		resp.Body = io.NopCloser(bytes.NewReader(body))
		req, _ := http.NewRequest(http.MethodGet, s.url+c.path, nil)
		_, verrs := v.ValidateHttpResponse(req, resp)
		for _, e := range verrs {
			var why []string
			for _, se := range e.SchemaValidationErrors {
				why = append(why, se.Reason+" at "+se.FieldPath)
			}
			t.Errorf("GET %s → %d: %s: %s %s", c.path, c.status, e.Message, e.Reason, strings.Join(why, "; "))
		}
	}

	require.Contains(t, string(bodies["/v1/traces/0af7651916cd43dd8448eb211c80319c"]), "Jaeger has no trace 0af7651916cd43dd8448eb211c80319c")
	var workers client.WorkerList
	require.NoError(t, json.Unmarshal(bodies["/v1/workers"], &workers))
	require.NotEmpty(t, workers.Workers)
	live := map[string]int{}
	for _, n := range workers.Namespaces {
		live[n.Namespace] = n.LiveWorkers
	}
	require.Zero(t, live[unserved], "no worker serves %s", unserved)
	require.Positive(t, live["diamond_workflow"])
	var queues client.QueueList
	require.NoError(t, json.Unmarshal(bodies["/v1/queues"], &queues))
	require.NotEmpty(t, queues.Queues)
	var trace struct {
		Data []struct {
			TraceID string `json:"traceID"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal(bodies["/v1/traces/"+task.TraceID], &trace))
	require.Len(t, trace.Data, 1)
	require.Equal(t, task.TraceID, trace.Data[0].TraceID)
}
