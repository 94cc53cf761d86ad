package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/taskerhq/tasker/client"
	"github.com/taskerhq/tasker/handler"
	"github.com/taskerhq/tasker/internal/base"
	"github.com/taskerhq/tasker/internal/config"
	"github.com/taskerhq/tasker/internal/dbtest"
	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/examples"
	"github.com/taskerhq/tasker/internal/jaegertest"
	"github.com/taskerhq/tasker/internal/orchestration"
	"github.com/taskerhq/tasker/internal/queue"
	"github.com/taskerhq/tasker/internal/rubyproc"
	"github.com/taskerhq/tasker/internal/telemetry"
	"github.com/taskerhq/tasker/internal/templatestore"
	"github.com/taskerhq/tasker/internal/tracing"
	"github.com/taskerhq/tasker/internal/worker"
	"github.com/taskerhq/tasker/template"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// rubyEnv is the shared library built for this test run and the Ruby that
// loads it.
type rubyEnv struct {
	root, lib, ruby string
}

// TestRuby builds libtasker.so once and runs, against it, the Ruby unit
// tests and real Ruby worker processes. A machine without Ruby and ruby-ffi
// fails here: scripts/test-setup.sh installs them.
func TestRuby(t *testing.T) {
	env := setupRuby(t)
	t.Run("unit", func(t *testing.T) {
		t.Parallel()
		testRubyUnit(t, env)
	})
	t.Run("worker", func(t *testing.T) {
		t.Parallel()
		testRubyWorker(t, env)
	})
	t.Run("sigkill", func(t *testing.T) {
		t.Parallel()
		testRubyWorkerKilled(t, env)
	})
}

func setupRuby(t *testing.T) rubyEnv {
	t.Helper()
	ctx := context.Background()
	ruby, err := rubyproc.CheckRuby(ctx)
	require.NoError(t, err, "scripts/test-setup.sh installs ruby, ruby-ffi and ruby-dev")
	wd, err := os.Getwd()
	require.NoError(t, err)
	root := filepath.Dir(wd)
	lib := filepath.Join(t.TempDir(), "libtasker.so")
	require.NoError(t, rubyproc.BuildLibrary(ctx, root, lib))
	return rubyEnv{root: root, lib: lib, ruby: ruby}
}

func testRubyUnit(t *testing.T, env rubyEnv) {
	tests, err := filepath.Glob(filepath.Join(env.root, "workers/ruby/test/*_test.rb"))
	require.NoError(t, err)
	require.NotEmpty(t, tests)
	args := append([]string{"-Ilib", "-Itest", "-e", "ARGV.each { |f| require File.expand_path(f) }"}, tests...)
	cmd := exec.Command(env.ruby, args...)
	cmd.Dir = filepath.Join(env.root, "workers/ruby")
	// The development profile: the unit tests read the text log format.
	cmd.Env = append(os.Environ(), "TASKER_FFI_LIB="+env.lib, "TASKER_TELEMETRY_ENABLED=false", "TASKER_ENV=development")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "ruby unit tests:\n%s", out)
	require.Contains(t, string(out), " 0 failures, 0 errors", "%s", out)
	t.Logf("ruby unit tests:\n%s", lastLines(string(out), 3))
}

// rubyWorker is a tasker-ruby-worker process.
type rubyWorker struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
	exited chan struct{}
	err    error
}

func startRubyWorker(t *testing.T, env rubyEnv, dbURL string, extraEnv []string, args ...string) *rubyWorker {
	t.Helper()
	bin := filepath.Join(env.root, "workers/ruby/bin/tasker-ruby-worker")
	cmd := exec.Command(env.ruby, append([]string{bin}, args...)...)
	cmd.Dir = env.root
	cmd.Env = append(os.Environ(), "TASKER_FFI_LIB="+env.lib, "DATABASE_URL="+dbURL, "TASKER_LOG_FORMAT=json",
		"TASKER_LOG_LEVEL=info", "TASKER_TELEMETRY_ENABLED=false")
	cmd.Env = append(cmd.Env, extraEnv...)
	w := &rubyWorker{cmd: cmd, stderr: &syncBuffer{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = w.stderr, w.stderr
	require.NoError(t, cmd.Start())
	go func() { w.err = cmd.Wait(); close(w.exited) }()
	t.Cleanup(func() {
		select {
		case <-w.exited:
		default:
			_ = cmd.Process.Kill()
			<-w.exited
		}
		if t.Failed() {
			t.Logf("ruby worker %d output:\n%s", cmd.Process.Pid, w.stderr.String())
		}
	})
	w.waitFor(t, rubyproc.ReadyLine)
	return w
}

// waitFor waits until the worker has written s, failing if it exits first.
func (w *rubyWorker) waitFor(t *testing.T, s string) {
	t.Helper()
	deadline := time.After(60 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !strings.Contains(w.stderr.String(), s) {
		select {
		case <-w.exited:
			t.Fatalf("ruby worker exited (%v) before writing %q:\n%s", w.err, s, w.stderr.String())
		case <-deadline:
			t.Fatalf("ruby worker did not write %q within 60s:\n%s", s, w.stderr.String())
		case <-tick.C:
		}
	}
}

func (w *rubyWorker) wait(t *testing.T) error {
	t.Helper()
	select {
	case <-w.exited:
		return w.err
	case <-time.After(60 * time.Second):
		t.Fatalf("ruby worker did not exit within 60s:\n%s", w.stderr.String())
		return nil
	}
}

// records returns the worker's JSON log records.
func (w *rubyWorker) records(t *testing.T) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(w.stderr.String(), "\n") {
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m), "log line %s", line)
		out = append(out, m)
	}
	return out
}

const rubyTestTemplates = `
namespace: ruby_test
name: traced
version: 1.0.0
steps:
  - name: traced_step
    handler: rt.traced
    inputs: {greeting: hello}
---
namespace: ruby_test
name: raises
version: 1.0.0
steps:
  - name: raising_step
    handler: rt.raises
    retry: {max_attempts: 2, backoff: {base: 10ms, cap: 20ms}}
---
namespace: ruby_test
name: permanent
version: 1.0.0
steps:
  - name: declined_step
    handler: rt.permanent
    retry: {max_attempts: 3, backoff: {base: 10ms, cap: 20ms}}
---
namespace: ruby_test
name: parent
version: 1.0.0
steps:
  - name: spawn_child
    handler: nested.spawn_child
    inputs: {child: single_workflow/single_step@1.0.0}
---
namespace: ruby_test
name: hold
version: 1.0.0
steps:
  - name: held_step
    handler: rt.hold
    timeout: 120s
    retry: {max_attempts: 3, backoff: {base: 10ms, cap: 20ms}}
---
namespace: ruby_kill
name: hold
version: 1.0.0
steps:
  - name: held_step
    handler: rt.hold
    timeout: 120s
    retry: {max_attempts: 3, backoff: {base: 10ms, cap: 20ms}}
`

// stack is a database with the example and Ruby test templates, and an
// orchestrator plus a Go worker (for goNamespaces) in this process.
type stack struct {
	url  string
	pool *pgxpool.Pool
	e    *engine.Engine
	tpls map[string]*template.Template
}

func startStack(t *testing.T, tr *tracing.Tracer, goNamespaces ...string) *stack {
	t.Helper()
	ctx := context.Background()
	url := dbtest.NewDatabase(t)
	pool, err := pgxpool.New(ctx, url)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	tpls, err := examples.Templates()
	require.NoError(t, err)
	for _, doc := range strings.Split(rubyTestTemplates, "\n---\n") {
		tpl, err := template.Parse([]byte(doc))
		require.NoError(t, err)
		tpls = append(tpls, tpl)
	}
	require.NoError(t, templatestore.RegisterAll(ctx, pool, queue.NewClient(nil), tpls))
	st := &stack{url: url, pool: pool, tpls: map[string]*template.Template{}}
	for _, tpl := range tpls {
		st.tpls[tpl.Namespace+"/"+tpl.Name] = tpl
	}
	reg := handler.NewRegistry()
	require.NoError(t, examples.Register(reg))
	cfg := engine.Config{Pool: pool, Telemetry: base.Telemetry{Tracer: tr},
		Orchestration: &orchestration.Config{ReadinessInterval: 100 * time.Millisecond, FallbackInterval: 200 * time.Millisecond}}
	if len(goNamespaces) > 0 {
		sub, err := orchestration.New(pool, orchestration.Config{Telemetry: base.Telemetry{Tracer: tr}})
		require.NoError(t, err)
		cfg.Worker = &worker.Config{Namespaces: goNamespaces, Dispatcher: worker.RegistryDispatcher{Registry: reg},
			Submitter: sub, PollInterval: 100 * time.Millisecond}
	}
	st.e, err = engine.Start(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, st.e.Stop()) })
	return st
}

func (s *stack) create(t *testing.T, ref string, taskCtx any) uuid.UUID {
	t.Helper()
	ns, name, version, err := template.ParseRef(ref)
	require.NoError(t, err)
	req, err := client.NewTaskRequest(ns, name, version, taskCtx)
	require.NoError(t, err)
	created, err := s.e.Orchestrator.CreateTask(context.Background(), req)
	require.NoError(t, err)
	return created.TaskUUID
}

// wait polls the task until it is terminal.
func (s *stack) wait(t *testing.T, id uuid.UUID) (*client.Task, []client.Step) {
	t.Helper()
	be := s.e.Backend()
	deadline := time.Now().Add(60 * time.Second)
	for {
		task, err := be.GetTask(context.Background(), id)
		require.NoError(t, err)
		if task.Terminal() {
			steps, err := be.ListSteps(context.Background(), id)
			require.NoError(t, err)
			return task, steps
		}
		if time.Now().After(deadline) {
			steps, _ := be.ListSteps(context.Background(), id)
			t.Fatalf("task %s not terminal after 60s: %s, steps %+v", id, task.State, steps)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *stack) run(t *testing.T, ref string, taskCtx any) (*client.Task, []client.Step) {
	t.Helper()
	return s.wait(t, s.create(t, ref, taskCtx))
}

func testRubyWorker(t *testing.T, env rubyEnv) {
	ctx := context.Background()
	jg := jaegertest.Start(t)
	tcfg := config.Default().Telemetry
	tcfg.Enabled = true
	tcfg.OTLP.Endpoint = "http://" + jg.OTLPGRPCEndpoint()
	tcfg.OTLP.Protocol = config.ProtocolGRPC
	tcfg.Metrics.Enabled = false
	prov, err := telemetry.New(ctx, tcfg, "tasker-go-rt")
	require.NoError(t, err)
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		require.NoError(t, prov.Shutdown(sctx))
	})
	// The Go worker runs the nested example, whose child task runs in Ruby,
	// and the single-step example, which a Ruby handler's child task runs.
	st := startStack(t, tracing.New(prov.TracerProvider, prov.Propagator), "nested_workflow", "single_workflow")

	dir := t.TempDir()
	marker, release := filepath.Join(dir, "marker"), filepath.Join(dir, "release")
	w := startRubyWorker(t, env, st.url,
		[]string{"TASKER_TELEMETRY_ENABLED=true", "OTEL_EXPORTER_OTLP_ENDPOINT=http://" + jg.OTLPGRPCEndpoint(),
			"OTEL_EXPORTER_OTLP_PROTOCOL=grpc", "TASKER_TEST_MARKER=" + marker, "TASKER_TEST_RELEASE=" + release},
		"--namespace", "linear_workflow,diamond_workflow", "--namespace", "ruby_test",
		"--require", "workers/ruby/examples/handlers.rb", "--require", "workers/ruby/test/fixtures/integration_handlers.rb",
		"--concurrency", "3", "--poll-interval-ms", "100", "--service-name", "tasker-ruby-rt")

	// The example workflows give the Go handlers' answers.
	for _, ref := range []string{"linear_workflow/mathematical_sequence", "diamond_workflow/diamond_pattern"} {
		task, _ := st.run(t, ref, map[string]any{"even_number": 6})
		require.Equal(t, "complete", task.State, ref)
		want, ok := examples.ExpectedResult(st.tpls[ref], 6)
		require.True(t, ok)
		for step, v := range want {
			require.JSONEq(t, fmt.Sprintf("%q", v), string(task.Result[step]), "%s step %s", ref, step)
		}
	}

	traced, tracedSteps := st.run(t, "ruby_test/traced", map[string]any{"even_number": 2})
	require.Equal(t, "complete", traced.State)
	require.Len(t, traced.TraceID, 32)
	var echo map[string]any
	require.NoError(t, json.Unmarshal(traced.Result["traced_step"], &echo))
	require.Equal(t, traced.CorrelationID.String(), echo["correlation_id"])
	require.Equal(t, traced.TaskUUID.String(), echo["task_uuid"])
	require.Equal(t, tracedSteps[0].StepUUID.String(), echo["step_uuid"])
	require.Equal(t, traced.TraceID, echo["trace_id"], "the step context carries the task's trace")
	require.Equal(t, map[string]any{"greeting": "hello"}, echo["inputs"])

	raised, steps := st.run(t, "ruby_test/raises", nil)
	require.Equal(t, "error", raised.State)
	require.Equal(t, 2, steps[0].Attempts, "a Ruby exception is retried")
	require.NotNil(t, steps[0].Error)
	require.Equal(t, "RubyIntegration::GatewayTimeout", steps[0].Error.Type)
	require.Equal(t, "gateway did not answer on attempt 2", steps[0].Error.Message)
	require.True(t, steps[0].Error.Retryable)

	declined, steps := st.run(t, "ruby_test/permanent", nil)
	require.Equal(t, "error", declined.State)
	require.Equal(t, 1, steps[0].Attempts, "a PermanentError is not retried")
	require.Equal(t, "TaskerCore::PermanentError", steps[0].Error.Type)
	require.Equal(t, "card declined", steps[0].Error.Message)
	require.Equal(t, "do_not_honor", steps[0].Error.Code)
	require.False(t, steps[0].Error.Retryable)

	// A Go handler's child task runs in Ruby, in the parent's trace.
	parent, _ := st.run(t, "nested_workflow/parent_with_child", map[string]any{"even_number": 4})
	require.Equal(t, "complete", parent.State)
	var spawned struct {
		Child uuid.UUID `json:"child_task_uuid"`
	}
	require.NoError(t, json.Unmarshal(parent.Result["spawn_child"], &spawned))
	child, _ := st.wait(t, spawned.Child)
	require.Equal(t, "complete", child.State)
	require.Equal(t, parent.TraceID, child.TraceID, "the Ruby child task is in its Go parent's trace")

	// A Ruby handler's child task runs in Go, in the Ruby parent's trace.
	rparent, _ := st.run(t, "ruby_test/parent", map[string]any{"even_number": 8})
	require.Equal(t, "complete", rparent.State)
	var rspawned struct {
		Child uuid.UUID `json:"child_task_uuid"`
	}
	require.NoError(t, json.Unmarshal(rparent.Result["spawn_child"], &rspawned))
	gochild, _ := st.wait(t, rspawned.Child)
	require.Equal(t, "complete", gochild.State)
	require.JSONEq(t, `"64"`, string(gochild.Result["only_step"]))
	require.Equal(t, rparent.CorrelationID, *gochild.ParentCorrelationID)
	require.Equal(t, rparent.TraceID, gochild.TraceID, "the Go child task is in its Ruby parent's trace")

	// SIGTERM with a step in flight: the step finishes on this worker.
	held := st.create(t, "ruby_test/hold", nil)
	waitForFile(t, marker, w)
	require.NoError(t, w.cmd.Process.Signal(syscall.SIGTERM))
	w.waitFor(t, "ruby worker stopping")
	require.NoError(t, os.WriteFile(release, nil, 0o600))
	require.NoError(t, w.wait(t), "graceful shutdown exits 0")
	heldTask, steps := st.wait(t, held)
	require.Equal(t, "complete", heldTask.State)
	require.Equal(t, 1, steps[0].Attempts, "the step in flight at SIGTERM finished instead of being abandoned")

	// Spans: the Ruby worker flushed at exit; flush ours.
	require.NoError(t, prov.ForceFlush(ctx))
	tr := waitForOps(t, jg, traced.TraceID, "ruby.inner_work", "task_finalizer.finalize_task")
	byID := map[string]*jaegertest.Span{}
	for i := range tr.Spans {
		byID[tr.Spans[i].SpanID] = &tr.Spans[i]
	}
	parentOf := func(s *jaegertest.Span) *jaegertest.Span { return byID[s.ParentSpanID()] }
	hexec := tr.Span("handler_execution")
	require.NotNil(t, hexec)
	require.Equal(t, "tasker-ruby-rt", hexec.ServiceName)
	require.NotNil(t, parentOf(hexec))
	require.Equal(t, "worker.invoke_handler", parentOf(hexec).OperationName, "handler_execution nests under the worker's span")
	require.Equal(t, "worker.execute_step_with_context", parentOf(parentOf(hexec)).OperationName)
	require.Equal(t, traced.CorrelationID.String(), hexec.Tags["correlation_id"])
	require.Equal(t, tracedSteps[0].StepUUID.String(), hexec.Tags["step_uuid"])
	require.Equal(t, "rt.traced", hexec.Tags["handler"])
	inner := tr.Span("ruby.inner_work")
	require.Equal(t, "handler_execution", parentOf(inner).OperationName)
	require.Equal(t, "widget", inner.Tags["item"])
	require.Equal(t, "info", inner.Tags["level"])
	require.NotNil(t, tr.Span("task_finalizer.finalize_task"), "orchestration spans are in the same trace")

	failedTrace := waitForOps(t, jg, raised.TraceID, "handler_execution")
	for _, s := range failedTrace.Spans {
		if s.OperationName == "handler_execution" {
			require.Equal(t, "ERROR", s.Tags["otel.status_code"])
			require.Equal(t, "RubyIntegration::GatewayTimeout", s.Tags["error.type"])
		}
	}

	// The nested task's one trace holds the Go parent's handler and the Ruby
	// child's four handler executions, each under its worker.invoke_handler.
	var nested *jaegertest.Trace
	require.Eventually(t, func() bool {
		tr, err := jg.Trace(ctx, parent.TraceID)
		if err != nil {
			return false
		}
		execs, goHandler := 0, false
		for _, s := range tr.Spans {
			execs += btoi(s.OperationName == "handler_execution" && s.ServiceName == "tasker-ruby-rt")
			goHandler = goHandler || (s.OperationName == "worker.invoke_handler" && s.ServiceName == "tasker-go-rt" &&
				s.Tags["handler"] == "nested.spawn_child")
		}
		nested = tr
		return execs == 4 && goHandler
	}, 30*time.Second, 50*time.Millisecond, "the nested trace lacks the Go parent's or the Ruby child's handler spans")
	nestedByID := byIDIn(nested)
	for _, s := range nested.Spans {
		if s.OperationName == "handler_execution" {
			require.Equal(t, child.CorrelationID.String(), s.Tags["correlation_id"])
			require.Equal(t, "worker.invoke_handler", nestedByID[s.ParentSpanID()].OperationName)
		}
	}

	// The Ruby parent's trace holds its handler_execution and the Go child's handler.
	require.Eventually(t, func() bool {
		tr, err := jg.Trace(ctx, rparent.TraceID)
		if err != nil {
			return false
		}
		rubyExec, goHandler := false, false
		for _, s := range tr.Spans {
			rubyExec = rubyExec || (s.OperationName == "handler_execution" && s.ServiceName == "tasker-ruby-rt" &&
				s.Tags["handler"] == "nested.spawn_child")
			goHandler = goHandler || (s.OperationName == "worker.invoke_handler" && s.ServiceName == "tasker-go-rt" &&
				s.Tags["handler"] == "single.square")
		}
		return rubyExec && goHandler
	}, 30*time.Second, 50*time.Millisecond, "the Ruby parent's trace lacks its handler or the Go child's")

	// Logs: the Ruby record reached the collector with the step's IDs and the task's trace.
	require.Eventually(t, func() bool {
		out := jg.Output()
		i := strings.Index(out, "Str(ruby handler log)")
		if i < 0 {
			return false
		}
		rec := out[max(0, i-2500):min(len(out), i+2500)]
		return strings.Contains(rec, traced.CorrelationID.String()) && strings.Contains(rec, traced.TaskUUID.String()) &&
			strings.Contains(rec, tracedSteps[0].StepUUID.String()) && strings.Contains(rec, "Trace ID: "+traced.TraceID) &&
			strings.Contains(rec, "ruby-log-marker")
	}, 30*time.Second, 100*time.Millisecond, "the Ruby log record never reached the collector with its IDs and trace ID")

	// And the same record on stderr, in the Go logger's format.
	var found bool
	for _, r := range w.records(t) {
		if r["msg"] != "ruby handler log" {
			continue
		}
		found = true
		require.Equal(t, traced.CorrelationID.String(), r["correlation_id"])
		require.Equal(t, traced.TaskUUID.String(), r["task_uuid"])
		require.Equal(t, tracedSteps[0].StepUUID.String(), r["step_uuid"])
		require.Equal(t, "ruby_test", r["namespace"])
		require.Equal(t, "ruby_worker", r["component"])
		require.Equal(t, traced.TraceID, r["trace_id"])
		require.Equal(t, inner.SpanID, r["span_id"], "the record belongs to the span it was written in")
		require.Equal(t, "ruby-log-marker", r["marker"])
		require.EqualValues(t, 3, r["count"])
	}
	require.True(t, found, "no ruby handler log record on stderr")
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func byIDIn(tr *jaegertest.Trace) map[string]*jaegertest.Span {
	m := map[string]*jaegertest.Span{}
	for i := range tr.Spans {
		m[tr.Spans[i].SpanID] = &tr.Spans[i]
	}
	return m
}

// waitForOps polls Jaeger until the trace has a span of each name in ops.
func waitForOps(t *testing.T, jg *jaegertest.Jaeger, traceID string, ops ...string) *jaegertest.Trace {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		tr, err := jg.Trace(context.Background(), traceID)
		if err != nil && !errors.Is(err, jaegertest.ErrNotFound) {
			require.NoError(t, err)
		}
		missing := ""
		for _, op := range ops {
			if tr == nil || tr.Span(op) == nil {
				missing = op
			}
		}
		if missing == "" {
			return tr
		}
		if time.Now().After(deadline) {
			t.Fatalf("trace %s has no span %s after 30s", traceID, missing)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func waitForFile(t *testing.T, path string, w *rubyWorker) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		select {
		case <-w.exited:
			t.Fatalf("ruby worker exited (%v) before %s appeared:\n%s", w.err, path, w.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not appear within 60s", path)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// testRubyWorkerKilled kills a Ruby worker mid-step: the step's lease
// expires and another Ruby worker finishes it.
func testRubyWorkerKilled(t *testing.T, env rubyEnv) {
	st := startStack(t, nil)
	dir := t.TempDir()
	marker := filepath.Join(dir, "marker")
	args := []string{"--namespace", "ruby_kill", "--require", "workers/ruby/test/fixtures/integration_handlers.rb",
		"--lease-ms", "1000", "--poll-interval-ms", "100"}
	first := startRubyWorker(t, env, st.url, []string{"TASKER_TEST_MARKER=" + marker}, args...)
	id := st.create(t, "ruby_kill/hold", nil)
	waitForFile(t, marker, first)
	// While Ruby works the Go worker keeps renewing the lease: the step stays
	// on attempt 1 across several lease renewals.
	leases := map[time.Time]bool{}
	deadline := time.Now().Add(30 * time.Second)
	for len(leases) < 3 {
		require.True(t, time.Now().Before(deadline), "the lease was not renewed while the Ruby handler ran: %v", leases)
		steps, err := st.e.Backend().ListSteps(context.Background(), id)
		require.NoError(t, err)
		require.Equal(t, 1, steps[0].Attempts)
		require.Equal(t, "in_progress", steps[0].State)
		if l := steps[0].LeaseExpiresAt; l != nil {
			leases[*l] = true
		}
		time.Sleep(50 * time.Millisecond)
	}
	require.NoError(t, first.cmd.Process.Signal(syscall.SIGKILL))
	require.Error(t, first.wait(t))

	startRubyWorker(t, env, st.url, nil, args...)
	task, steps := st.wait(t, id)
	require.Equal(t, "complete", task.State)
	require.Equal(t, 2, steps[0].Attempts, "the killed attempt was reclaimed after its lease expired")
	require.JSONEq(t, `{"finished_on_attempt": 2}`, string(task.Result["held_step"]))
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
