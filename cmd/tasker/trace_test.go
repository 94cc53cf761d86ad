package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/taskerhq/tasker/client"
	"github.com/taskerhq/tasker/internal/api"
	"github.com/taskerhq/tasker/internal/base"
	"github.com/taskerhq/tasker/internal/dbtest"
	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/orchestration"
	"github.com/taskerhq/tasker/internal/tracing"
	"github.com/taskerhq/tasker/internal/worker"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// TestTraceCommand follows a nested workflow from its correlation ID down to
// the child task, with trace IDs, through the real API and database.
func TestTraceCommand(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.NewPool(t)
	work, err := loadWorkload(nil, true)
	require.NoError(t, err)
	require.NoError(t, work.register(ctx, pool, work.namespaces()))
	tp := sdktrace.NewTracerProvider()
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	tr := tracing.New(tp, nil)
	sub, err := orchestration.New(pool, orchestration.Config{Telemetry: base.Telemetry{Tracer: tr}})
	require.NoError(t, err)
	e, err := engine.Start(ctx, engine.Config{Pool: pool,
		Orchestration: &orchestration.Config{Telemetry: base.Telemetry{Tracer: tr}},
		Worker: &worker.Config{Namespaces: work.namespaces(), Dispatcher: worker.RegistryDispatcher{Registry: work.handlers},
			Submitter: sub,
			Telemetry: base.Telemetry{Tracer: tr}}})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, e.Stop()) })
	h, err := api.NewHandler(api.Config{Backend: e.Backend()})
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)

	c := client.New(srv.URL)
	req, err := client.NewTaskRequest("nested_workflow", "parent_with_child", "", map[string]int{"even_number": 2})
	require.NoError(t, err)
	parent, err := c.CreateTask(ctx, req)
	require.NoError(t, err)
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	final, err := c.WaitForTask(wctx, parent.TaskUUID, 10*time.Millisecond)
	require.NoError(t, err)
	require.Equal(t, "complete", final.State)
	var res struct {
		Child uuid.UUID `json:"child_task_uuid"`
	}
	require.NoError(t, json.Unmarshal(final.Result["spawn_child"], &res))
	_, err = c.WaitForTask(wctx, res.Child, 10*time.Millisecond)
	require.NoError(t, err)

	run := func(args ...string) (string, int) {
		root := newRootCmd(func(string) string { return "" })
		var out, errOut bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&errOut)
		root.SetArgs(append([]string{"--api", srv.URL}, args...))
		code := execute(ctx, root)
		return out.String() + errOut.String(), code
	}
	out, code := run("trace", parent.CorrelationID.String())
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "task "+parent.TaskUUID.String())
	require.Contains(t, out, "    task "+res.Child.String(), "the child is listed under its parent")
	require.Contains(t, out, "parent          "+parent.CorrelationID.String())
	require.Contains(t, out, "trace_id        "+final.TraceID)
	require.Len(t, final.TraceID, 32)
	require.Contains(t, out, "linear_step_4")
	require.Equal(t, 2, strings.Count(out, "trace_id        "), out)

	out, code = run("trace", uuid.NewString())
	require.Equal(t, exitFailed, code, out)
	out, code = run("trace", "not-a-uuid")
	require.Equal(t, exitUsage, code, out)
}
