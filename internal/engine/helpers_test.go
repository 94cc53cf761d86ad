package engine_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"maps"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/taskerhq/tasker/client"
	"github.com/taskerhq/tasker/handler"
	"github.com/taskerhq/tasker/internal/api"
	"github.com/taskerhq/tasker/internal/base"
	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/examples"
	"github.com/taskerhq/tasker/internal/metrics"
	"github.com/taskerhq/tasker/internal/orchestration"
	"github.com/taskerhq/tasker/internal/queue"
	"github.com/taskerhq/tasker/internal/templatestore"
	"github.com/taskerhq/tasker/internal/worker"
	"github.com/taskerhq/tasker/template"
)

type testBundle struct {
	pool      *pgxpool.Pool
	registry  *handler.Registry
	templates map[string]*template.Template
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("TASKER_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// setup gives the test a fresh database with every example template registered.
func setup(t *testing.T) *testBundle {
	t.Helper()
	ctx := context.Background()
	pool := dbtestPool(t)
	reg := handler.NewRegistry()
	require.NoError(t, examples.Register(reg))
	tpls, err := examples.Templates()
	require.NoError(t, err)
	b := &testBundle{pool: pool, registry: reg, templates: map[string]*template.Template{}}
	require.NoError(t, templatestore.RegisterAll(ctx, pool, queue.NewClient(nil), tpls))
	for _, tpl := range tpls {
		b.templates[tpl.Namespace+"/"+tpl.Name] = tpl
	}
	return b
}

// replaceHandler makes name run h instead of its example handler in the
// workers the test starts after this call.
func (b *testBundle) replaceHandler(t *testing.T, name string, h handler.Handler) {
	t.Helper()
	reg := handler.NewRegistry()
	require.NoError(t, reg.Register(name, h))
	for n, eh := range examples.Handlers() {
		if n != name {
			require.NoError(t, reg.Register(n, eh))
		}
	}
	b.registry = reg
}

func allNamespaces(b *testBundle) []string {
	return template.Namespaces(slices.Collect(maps.Values(b.templates)))
}

type engineOpts struct {
	orchestrate bool
	work        bool
	namespaces  []string
	lease       time.Duration
	grace       time.Duration
	concurrency int
	dispatcher  worker.Dispatcher
	submitter   handler.TaskSubmitter
	logger      *slog.Logger
	metrics     *metrics.Metrics
}

func (b *testBundle) start(t *testing.T, o engineOpts) *engine.Engine {
	t.Helper()
	cfg := engine.Config{Pool: b.pool, Telemetry: base.Telemetry{Logger: testLogger(t)}}
	if o.logger != nil {
		cfg.Logger = o.logger
	}
	cfg.Metrics = o.metrics
	if o.orchestrate {
		cfg.Orchestration = &orchestration.Config{ReadinessInterval: 100 * time.Millisecond, FallbackInterval: 200 * time.Millisecond}
	}
	if o.work {
		ns := o.namespaces
		if ns == nil {
			ns = allNamespaces(b)
		}
		d := o.dispatcher
		if d == nil {
			d = worker.RegistryDispatcher{Registry: b.registry}
		}
		sub := o.submitter
		if sub == nil {
			svc, err := orchestration.New(b.pool, orchestration.Config{Telemetry: base.Telemetry{Logger: testLogger(t)}})
			require.NoError(t, err)
			sub = svc
		}
		cfg.Worker = &worker.Config{Namespaces: ns, Dispatcher: d, Lease: o.lease, ShutdownGrace: o.grace,
			PollInterval: 100 * time.Millisecond, Submitter: sub, Concurrency: o.concurrency}
	}
	e, err := engine.Start(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, e.Stop()) })
	return e
}

func newRequest(t *testing.T, ref string, taskCtx any) client.TaskRequest {
	t.Helper()
	ns, name, version, err := template.ParseRef(ref)
	require.NoError(t, err)
	req, err := client.NewTaskRequest(ns, name, version, taskCtx)
	require.NoError(t, err)
	return req
}

// waitTerminal polls the task until it is terminal or the deadline passes.
func waitTerminal(t *testing.T, be api.Backend, id uuid.UUID, timeout time.Duration) *client.Task {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		task, err := be.GetTask(context.Background(), id)
		require.NoError(t, err)
		if task.Terminal() {
			return task
		}
		if time.Now().After(deadline) {
			steps, _ := be.ListSteps(context.Background(), id)
			t.Fatalf("task %s not terminal after %s: state %s, execution %s, steps %+v", id, timeout, task.State, task.ExecutionStatus, steps)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func registerTemplate(t *testing.T, b *testBundle, tpl *template.Template) {
	t.Helper()
	require.NoError(t, tpl.Validate(nil))
	require.NoError(t, templatestore.Register(context.Background(), b.pool, queue.NewClient(nil), tpl))
	b.templates[tpl.Namespace+"/"+tpl.Name] = tpl
}

func jsonBody(v any) (*bytes.Reader, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return bytes.NewReader(b), nil
}

// runTask creates a task of ref with context.even_number n and waits until it is terminal.
func runTask(t *testing.T, e *engine.Engine, ref string, n int) (*orchestration.Created, *client.Task) {
	t.Helper()
	created, err := e.Orchestrator.CreateTask(context.Background(), newRequest(t, ref, map[string]any{"even_number": n}))
	require.NoError(t, err)
	return created, waitTerminal(t, e.Backend(), created.TaskUUID, 20*time.Second)
}

// recordSent keeps a copy of every queue message sent from now on in
// public.sent_messages: the engine deletes a message once it is handled
// (its content lives on in transition history), and tests replay or inspect
// what was sent.
func (b *testBundle) recordSent(t *testing.T) {
	t.Helper()
	_, err := b.pool.Exec(context.Background(), `
		CREATE TABLE IF NOT EXISTS public.sent_messages (LIKE tasker.queue_messages);
		CREATE OR REPLACE FUNCTION public.record_sent() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			INSERT INTO public.sent_messages SELECT NEW.*;
			RETURN NEW;
		END $$;
		CREATE OR REPLACE TRIGGER record_sent AFTER INSERT ON tasker.queue_messages
			FOR EACH ROW EXECUTE FUNCTION public.record_sent();`)
	require.NoError(t, err)
}
