package engine_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskerhq/tasker/internal/config"
	"github.com/taskerhq/tasker/internal/jaegertest"
)

// Reading a task through the API is traced to that task: the request's
// server span and the SQL spans that follow the load carry the task's
// correlation_id and task_uuid, so a search by correlation ID in Jaeger finds
// the reads as well as the execution.
func TestAPIReadsCarryCorrelationID(t *testing.T) {
	t.Parallel()
	jg := jaegertest.Start(t)
	b := setup(t)
	st := startTraced(t, b, telemetryConfig("http://"+jg.OTLPGRPCEndpoint(), config.ProtocolGRPC), "reads")
	task := st.run(t, "linear_workflow/mathematical_sequence", nil)
	require.Equal(t, "complete", task.State)
	corr, id := task.CorrelationID.String(), task.TaskUUID.String()

	// Each read in a trace of its own, named by the caller's traceparent.
	get := func(path string) string {
		t.Helper()
		traceID := trace.TraceID(uuid.New())
		req, err := http.NewRequest(http.MethodGet, st.url+path, nil)
		require.NoError(t, err)
		req.Header.Set("traceparent", "00-"+traceID.String()+"-00f067aa0ba902b7-01")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, path)
		return traceID.String()
	}
	taskTrace := get("/v1/tasks/" + id)
	stepsTrace := get("/v1/tasks/" + id + "/workflow_steps")
	listTrace := get("/v1/tasks?correlation_id=" + corr)
	st.flush(t)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tr, err := jg.WaitForSpans(ctx, taskTrace, 2)
	require.NoError(t, err)
	// The test server names every GET span "GET /v1/tasks/{uuid}".
	server := tr.Span("GET /v1/tasks/{uuid}")
	require.NotNil(t, server)
	require.Equal(t, corr, server.Tags["correlation_id"])
	require.Equal(t, id, server.Tags["task_uuid"])
	sql := tr.Span("sql.get_task_execution_context")
	require.NotNil(t, sql, "the read's SQL function call is traced")
	require.Equal(t, corr, sql.Tags["correlation_id"])
	require.Equal(t, id, sql.Tags["task_uuid"])

	tr, err = jg.WaitForSpans(ctx, stepsTrace, 1)
	require.NoError(t, err)
	require.Equal(t, corr, tr.Spans[0].Tags["correlation_id"])
	require.Equal(t, id, tr.Spans[0].Tags["task_uuid"])

	tr, err = jg.WaitForSpans(ctx, listTrace, 2)
	require.NoError(t, err)
	for _, s := range tr.Spans {
		require.Equal(t, corr, s.Tags["correlation_id"], "list by correlation ID: span %s", s.OperationName)
	}
}
