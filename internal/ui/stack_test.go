package ui_test

import (
	"context"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/taskerhq/tasker/client"
	"github.com/taskerhq/tasker/handler"
	"github.com/taskerhq/tasker/internal/api"
	"github.com/taskerhq/tasker/internal/base"
	"github.com/taskerhq/tasker/internal/config"
	"github.com/taskerhq/tasker/internal/dbtest"
	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/examples"
	"github.com/taskerhq/tasker/internal/jaegertest"
	"github.com/taskerhq/tasker/internal/orchestration"
	"github.com/taskerhq/tasker/internal/queue"
	"github.com/taskerhq/tasker/internal/telemetry"
	"github.com/taskerhq/tasker/internal/templatestore"
	"github.com/taskerhq/tasker/internal/tracing"
	"github.com/taskerhq/tasker/internal/ui"
	"github.com/taskerhq/tasker/internal/worker"
	"github.com/taskerhq/tasker/template"
)

// unserved is the namespace no worker of the stack serves, so its tasks stay
// with their first step enqueued.
const unserved = "linear_workflow"

// stack is the REST API with the console, an orchestrator and a worker for
// every example namespace but unserved, all tracing to a real Jaeger.
type stack struct {
	url       string
	api       *client.Client
	backend   api.Backend
	orch      *orchestration.Service
	jaeger    *jaegertest.Jaeger
	templates []*template.Template
	flush     func()
}

// startStack starts the stack; with a token, the API requires it as a server
// listening beyond loopback would, and the console's files stay open.
func startStack(t *testing.T, token string) *stack {
	t.Helper()
	ctx := context.Background()
	pool := dbtest.NewPool(t)
	tpls, err := examples.Templates()
	require.NoError(t, err)
	require.NoError(t, templatestore.RegisterAll(ctx, pool, queue.NewClient(nil), tpls))
	reg := handler.NewRegistry()
	require.NoError(t, examples.Register(reg))
	var served []string
	for _, tpl := range tpls {
		if tpl.Namespace != unserved && !slices.Contains(served, tpl.Namespace) {
			served = append(served, tpl.Namespace)
		}
	}

	jg := jaegertest.Start(t)
	tcfg := config.Default().Telemetry
	tcfg.Enabled = true
	tcfg.OTLP.Endpoint = jg.OTLPHTTPEndpoint()
	tcfg.OTLP.Protocol = config.ProtocolHTTPProtobuf
	tcfg.Metrics.Enabled = false
	tcfg.Logs.Exporter = config.ExporterNone
	orchProv, err := telemetry.New(ctx, tcfg, "tasker-orchestration")
	require.NoError(t, err)
	workProv, err := telemetry.New(ctx, tcfg, "tasker-worker")
	require.NoError(t, err)
	orchTr := tracing.New(orchProv.TracerProvider, orchProv.Propagator)
	workTr := tracing.New(workProv.TracerProvider, workProv.Propagator)

	sub, err := orchestration.New(pool, orchestration.Config{Telemetry: base.Telemetry{Tracer: workTr}})
	require.NoError(t, err)
	e, err := engine.Start(ctx, engine.Config{Pool: pool,
		Orchestration: &orchestration.Config{ReadinessInterval: 100 * time.Millisecond, FallbackInterval: 200 * time.Millisecond,
			Telemetry: base.Telemetry{Tracer: orchTr}},
		Worker: &worker.Config{Namespaces: served, Dispatcher: worker.RegistryDispatcher{Registry: reg}, Submitter: sub,
			PollInterval: 100 * time.Millisecond, Telemetry: base.Telemetry{Tracer: workTr}},
	})
	require.NoError(t, err)
	console, err := ui.New(ui.Config{TraceURLTemplate: "http://jaeger.example:16686/trace/{trace_id}", JaegerQueryURL: jg.QueryURL()})
	require.NoError(t, err)
	h, err := api.NewHandler(api.Config{Backend: e.Backend(), Extra: console.Routes, Traces: console.Traces})
	require.NoError(t, err)
	if token != "" {
		auth, err := api.NewAuth(api.AuthConfig{Mode: api.AuthRequired, TokenSHA256: []string{config.TokenDigest(token)}}, "127.0.0.1:0")
		require.NoError(t, err)
		auth.Open(ui.PublicPrefix)
		h = auth.Wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.Close()
		require.NoError(t, e.Stop())
		sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		require.NoError(t, orchProv.Shutdown(sctx))
		require.NoError(t, workProv.Shutdown(sctx))
	})
	return &stack{url: srv.URL, api: client.New(srv.URL), backend: e.Backend(), orch: e.Orchestrator, jaeger: jg, templates: tpls,
		flush: func() {
			require.NoError(t, orchProv.ForceFlush(ctx))
			require.NoError(t, workProv.ForceFlush(ctx))
		}}
}

// create starts a task of ref ("namespace/name") from a traced context, as
// the API would, so the task records a trace ID.
func (s *stack) create(t *testing.T, ref string) uuid.UUID {
	t.Helper()
	ns, name, version, err := template.ParseRef(ref + "@1.0.0")
	require.NoError(t, err)
	req, err := client.NewTaskRequest(ns, name, version, map[string]int{"even_number": 2})
	require.NoError(t, err)
	created, err := s.orch.CreateTask(context.Background(), req)
	require.NoError(t, err)
	return created.TaskUUID
}

// waitFor polls the task until ok says so or the deadline passes.
func (s *stack) waitFor(t *testing.T, id uuid.UUID, what string, ok func(*client.Task) bool) *client.Task {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		task, err := s.backend.GetTask(context.Background(), id)
		require.NoError(t, err)
		if ok(task) {
			return task
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s: not %s after 30s: state %s", id, what, task.State)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *stack) terminal(t *testing.T, id uuid.UUID) *client.Task {
	t.Helper()
	return s.waitFor(t, id, "terminal", (*client.Task).Terminal)
}

func (s *stack) steps(t *testing.T, id uuid.UUID) []client.Step {
	t.Helper()
	steps, err := s.backend.ListSteps(context.Background(), id)
	require.NoError(t, err)
	return steps
}
