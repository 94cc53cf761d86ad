package foreign_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/taskerhq/tasker/client"
	"github.com/taskerhq/tasker/internal/dbtest"
	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/foreign"
	"github.com/taskerhq/tasker/internal/orchestration"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

const templates = `
namespace: foreign_test
name: one
version: 1.0.0
steps:
  - name: only
    handler: ft.handler
    inputs: {factor: 3}
---
namespace: foreign_test
name: short
version: 1.0.0
steps:
  - name: slow
    handler: ft.handler
    timeout: 300ms
    retry: {max_attempts: 1}
`

// harness is a bridge with a running worker (the test plays the foreign
// runtime) and an orchestrator in this process.
type harness struct {
	b    *foreign.Bridge
	orch *engine.Engine
}

func start(t *testing.T) *harness {
	t.Helper()
	ctx := context.Background()
	url := dbtest.NewDatabase(t)
	dir := t.TempDir()
	for i, doc := range strings.Split(templates, "\n---\n") {
		require.NoError(t, os.WriteFile(filepath.Join(dir, string(rune('a'+i))+".yaml"), []byte(doc), 0o600))
	}
	b, err := foreign.Open(ctx, foreign.Options{ServiceName: "foreign-test", Env: map[string]string{"TASKER_TELEMETRY_ENABLED": "false", "TASKER_LOG_LEVEL": "error"}})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, b.Close()) })
	require.NoError(t, b.Start(ctx, foreign.WorkerConfig{Namespaces: []string{"foreign_test"}, Handlers: []string{"ft.handler"},
		DatabaseURL: url, MaxConns: 5, Concurrency: 2, LeaseMS: 10000, PollIntervalMS: 100, ShutdownGraceMS: 10000,
		Templates: []string{dir}}))
	pool, err := pgxpool.New(ctx, url)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	orch, err := engine.Start(ctx, engine.Config{Pool: pool,
		Orchestration: &orchestration.Config{ReadinessInterval: 100 * time.Millisecond}})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, orch.Stop()) })
	return &harness{b: b, orch: orch}
}

func (h *harness) create(t *testing.T, name string) uuid.UUID {
	t.Helper()
	req, err := client.NewTaskRequest("foreign_test", name, "1.0.0", map[string]any{"n": 7})
	require.NoError(t, err)
	c, err := h.orch.Orchestrator.CreateTask(context.Background(), req)
	require.NoError(t, err)
	return c.TaskUUID
}

// next waits for a step (the foreign runtime's loop).
func (h *harness) next(t *testing.T) foreign.Step {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		data, ok, err := h.b.Next(100 * time.Millisecond)
		require.NoError(t, err)
		if ok {
			var s foreign.Step
			require.NoError(t, json.Unmarshal(data, &s))
			return s
		}
	}
	t.Fatal("no step within 30s")
	return foreign.Step{}
}

func (h *harness) wait(t *testing.T, id uuid.UUID) (*client.Task, []client.Step) {
	t.Helper()
	be := h.orch.Backend()
	deadline := time.Now().Add(30 * time.Second)
	for {
		task, err := be.GetTask(context.Background(), id)
		require.NoError(t, err)
		if task.Terminal() {
			steps, err := be.ListSteps(context.Background(), id)
			require.NoError(t, err)
			return task, steps
		}
		require.True(t, time.Now().Before(deadline), "task %s not terminal: %s", id, task.State)
		time.Sleep(20 * time.Millisecond)
	}
}

func TestStepRoundTrip(t *testing.T) {
	t.Parallel()
	h := start(t)
	id := h.create(t, "one")
	s := h.next(t)
	require.Equal(t, id, s.TaskUUID)
	require.Equal(t, "ft.handler", s.Handler)
	require.Equal(t, "only", s.StepName)
	require.Equal(t, "foreign_test", s.Namespace)
	require.NotZero(t, s.Handle)
	require.NotZero(t, s.Span, "the handler_execution span is started as the step is handed out")
	require.JSONEq(t, `{"n": 7}`, string(s.Context))
	require.JSONEq(t, `{"factor": 3}`, string(s.Inputs))
	require.Equal(t, 1, s.Attempt)
	require.Positive(t, s.DeadlineUnixMS)

	require.NoError(t, h.b.Log(s.Span, "info", "working", []byte(`{"k": [1, 2]}`)))
	sp, err := h.b.StartSpan(s.Span, "inner", []byte(`{"item": "x", "n": 2}`))
	require.NoError(t, err)
	require.NoError(t, h.b.EndSpan(sp, []byte(`{"status": "ok"}`)))
	require.ErrorContains(t, h.b.EndSpan(sp, nil), "names no open span")

	r, err := foreign.ParseResult([]byte(`{"success": true, "value": {"product": 21}, "metadata": {"ruby": "3.1"}}`))
	require.NoError(t, err)
	require.NoError(t, h.b.Complete(s.Handle, r))
	require.ErrorContains(t, h.b.Complete(s.Handle, r), "already answered")
	task, _ := h.wait(t, id)
	require.Equal(t, "complete", task.State)
	require.JSONEq(t, `{"product": 21}`, string(task.Result["only"]))
	// Once answered, the handle names nothing.
	require.ErrorContains(t, h.b.Log(s.Handle, "info", "late", nil), "names no step in flight")
}

func TestTimedOutStepRefusesALateAnswer(t *testing.T) {
	t.Parallel()
	h := start(t)
	id := h.create(t, "short")
	s := h.next(t)
	task, steps := h.wait(t, id)
	require.Equal(t, "error", task.State)
	require.Equal(t, "handler_timeout", steps[0].Error.Type)
	r, err := foreign.ParseResult([]byte(`{"success": true, "value": 1}`))
	require.NoError(t, err)
	require.ErrorContains(t, h.b.Complete(s.Handle, r), "not in flight")
}

func TestStopLetsTheStepInFlightFinish(t *testing.T) {
	t.Parallel()
	h := start(t)
	id := h.create(t, "one")
	s := h.next(t)
	stopped := make(chan error, 1)
	go func() { stopped <- h.b.Stop(30 * time.Second) }()
	// Stop waits for the step; Next keeps working meanwhile (it does not
	// report stopped while a step can still arrive).
	_, _, err := h.b.Next(10 * time.Millisecond)
	require.NoError(t, err)
	r, err := foreign.ParseResult([]byte(`{"success": false, "error": {"type": "Boom", "message": "it broke", "retryable": false}}`))
	require.NoError(t, err)
	require.NoError(t, h.b.Complete(s.Handle, r))
	require.NoError(t, <-stopped)
	_, _, err = h.b.Next(10 * time.Millisecond)
	require.True(t, errors.Is(err, foreign.ErrStopped), "Next after Stop: %v", err)
	task, steps := h.wait(t, id)
	require.Equal(t, "error", task.State)
	require.Equal(t, "Boom", steps[0].Error.Type)
	require.Equal(t, "it broke", steps[0].Error.Message)
}

func TestBadInputIsAnError(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ in, want string }{
		{`{`, "invalid JSON"},
		{`{"success": true, "error": {"type": "X", "message": "m"}}`, "must be absent"},
		{`{"success": false}`, "error: required"},
		{`{"success": false, "error": {"message": "m"}}`, "error.type: required"},
		{`{"success": false, "error": {"type": "X"}}`, "error.message: required"},
		{`{"success": true, "valu": 1}`, `unknown field "valu"`},
		{`{"success": true} {}`, "trailing data"},
	} {
		_, err := foreign.ParseResult([]byte(c.in))
		require.ErrorContains(t, err, c.want, c.in)
	}
	for _, c := range []struct{ in, want string }{
		{`{}`, "namespaces: at least one"},
		{`{"namespaces": ["a"]}`, "handlers: at least one"},
		{`{"namespaces": ["a"], "handlers": ["h"]}`, "database_url: required"},
		{`{"namespaces": ["a"], "handlers": ["h"], "database_url": "x", "concurrency": -1}`, "concurrency: must be ≥ 1"},
		{`{"namespaces": ["a"], "handlers": ["h"], "database_url": "x", "lease_ms": 5}`, "lease_ms: must be ≥ 100"},
		{`{"namespaces": ["a"], "handlers": [""], "database_url": "x"}`, "handlers[0]: empty name"},
	} {
		_, err := foreign.ParseWorkerConfig([]byte(c.in))
		require.ErrorContains(t, err, c.want, c.in)
	}
	_, err := foreign.ParseOptions([]byte(`{"log_level": "loud"}`))
	require.ErrorContains(t, err, `log_level: "loud"`)
	_, err = foreign.ParseLevel("loud")
	require.Error(t, err)
}
