package engine_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskerhq/tasker/client"
	"github.com/taskerhq/tasker/handler"
	"github.com/taskerhq/tasker/internal/api"
	"github.com/taskerhq/tasker/internal/base"
	"github.com/taskerhq/tasker/internal/config"
	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/jaegertest"
	"github.com/taskerhq/tasker/internal/metrics"
	"github.com/taskerhq/tasker/internal/orchestration"
	"github.com/taskerhq/tasker/internal/telemetry"
	"github.com/taskerhq/tasker/internal/tracing"
	"github.com/taskerhq/tasker/internal/worker"
)

// tracedStack is an orchestrator and a worker exporting to a real collector
// under their own service names, behind the real API.
type tracedStack struct {
	api        *client.Client
	url        string
	orch, work *telemetry.Providers
}

func startTraced(t *testing.T, b *testBundle, tcfg config.Telemetry, suffix string) *tracedStack {
	t.Helper()
	ctx := context.Background()
	orchProv, err := telemetry.New(ctx, tcfg, "tasker-orchestration-"+suffix)
	require.NoError(t, err)
	workProv, err := telemetry.New(ctx, tcfg, "tasker-worker-"+suffix)
	require.NoError(t, err)
	orchTr := tracing.New(orchProv.TracerProvider, orchProv.Propagator)
	workTr := tracing.New(workProv.TracerProvider, workProv.Propagator)
	sub, err := orchestration.New(b.pool, orchestration.Config{Telemetry: base.Telemetry{Tracer: workTr}})
	require.NoError(t, err)
	e, err := engine.Start(ctx, engine.Config{Pool: b.pool,
		Orchestration: &orchestration.Config{ReadinessInterval: 100 * time.Millisecond,
			Telemetry: base.Telemetry{Tracer: orchTr}},
		Worker: &worker.Config{Namespaces: allNamespaces(b), Dispatcher: worker.RegistryDispatcher{Registry: b.registry},
			Submitter: sub,
			Telemetry: base.Telemetry{Tracer: workTr}},
		Telemetry: base.Telemetry{Logger: testLogger(t)}})
	require.NoError(t, err)
	h, err := api.NewHandler(api.Config{Backend: e.Backend(), Logger: testLogger(t)})
	require.NoError(t, err)
	srv := httptest.NewServer(otelhttp.NewHandler(h, "tasker-api",
		otelhttp.WithTracerProvider(orchProv.TracerProvider), otelhttp.WithPropagators(orchProv.Propagator),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
			if r.Method == http.MethodPost {
				return "POST /v1/tasks"
			}
			return r.Method + " /v1/tasks/{uuid}"
		})))
	st := &tracedStack{api: client.New(srv.URL), url: srv.URL, orch: orchProv, work: workProv}
	t.Cleanup(func() {
		srv.Close()
		require.NoError(t, e.Stop())
		sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		require.NoError(t, orchProv.Shutdown(sctx))
		require.NoError(t, workProv.Shutdown(sctx))
	})
	return st
}

func (s *tracedStack) flush(t *testing.T) {
	t.Helper()
	require.NoError(t, s.orch.ForceFlush(context.Background()))
	require.NoError(t, s.work.ForceFlush(context.Background()))
}

func (s *tracedStack) run(t *testing.T, ref string, header http.Header) *client.Task {
	t.Helper()
	req := newRequest(t, ref, map[string]any{"even_number": 4})
	body, err := jsonBody(req)
	require.NoError(t, err)
	hreq, err := http.NewRequest(http.MethodPost, s.url+"/v1/tasks", body)
	require.NoError(t, err)
	hreq.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		hreq.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(hreq)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tasks, err := s.api.ListTasksByCorrelation(ctx, *req.CorrelationID)
	require.NoError(t, err)
	require.Len(t, tasks, 1)
	final, err := s.api.WaitForTask(ctx, tasks[0].TaskUUID, 10*time.Millisecond)
	require.NoError(t, err)
	return final
}

func telemetryConfig(endpoint, protocol string) config.Telemetry {
	c := config.Default().Telemetry
	c.Enabled = true
	c.OTLP.Endpoint = endpoint
	c.OTLP.Protocol = protocol
	c.OTLP.Timeout = config.Duration(5 * time.Second)
	// The tests count every drop, so the final flush gets as long as an
	// export on this loaded machine, not the interactive 2 s default.
	c.OTLP.ShutdownTimeout = c.OTLP.Timeout
	c.Metrics.Enabled = false
	return c
}

func TestOneTracePerTaskInJaeger(t *testing.T) {
	t.Parallel()
	jg := jaegertest.Start(t)
	for _, c := range []struct{ protocol, endpoint string }{
		{config.ProtocolGRPC, "http://" + jg.OTLPGRPCEndpoint()},
		{config.ProtocolHTTPProtobuf, jg.OTLPHTTPEndpoint()},
	} {
		t.Run(c.protocol, func(t *testing.T) {
			suffix := strings.ReplaceAll(c.protocol, "/", "-")
			b := setup(t)
			// A handler that makes a span of its own, from the context it is given.
			orig, ok := b.registry.Lookup("diamond.square")
			require.True(t, ok)
			b.replaceHandler(t, "diamond.square", handler.Func(func(ctx context.Context, s *handler.StepContext) (any, error) {
				ctx, span := trace.SpanFromContext(ctx).TracerProvider().Tracer("example-handler").Start(ctx, "handler.square")
				defer span.End()
				return orig.Handle(ctx, s)
			}))
			st := startTraced(t, b, telemetryConfig(c.endpoint, c.protocol), suffix)
			task := st.run(t, "diamond_workflow/diamond_pattern", nil)
			require.Equal(t, "complete", task.State)
			require.Len(t, task.TraceID, 32)
			st.flush(t)

			ctx := context.Background()
			tr := waitForOps(t, jg, task.TraceID, "worker.execute_step_with_context", 4)
			tr = waitForOps(t, jg, task.TraceID, "task_finalizer.finalize_task", 1)

			// Exactly one trace holds this task's execution: every span of
			// both services that names its correlation ID is in it, except
			// the API reads (GET), which are traces of their own named by it.
			for _, svc := range []string{"tasker-orchestration-" + suffix, "tasker-worker-" + suffix} {
				traces, err := jg.Traces(ctx, svc)
				require.NoError(t, err)
				var ids []string
				for _, other := range traces {
					if slices.ContainsFunc(other.Spans, func(s jaegertest.Span) bool {
						return s.ParentSpanID() == "" && strings.HasPrefix(s.OperationName, "GET ")
					}) {
						continue
					}
					for _, s := range other.Spans {
						if s.Tags["correlation_id"] == task.CorrelationID.String() {
							ids = append(ids, other.TraceID)
							break
						}
					}
				}
				require.Equal(t, []string{task.TraceID}, ids, "service %s", svc)
			}

			byID := map[string]*jaegertest.Span{}
			names := map[string]int{}
			services := map[string]bool{}
			for i := range tr.Spans {
				s := &tr.Spans[i]
				byID[s.SpanID] = s
				names[s.OperationName]++
				services[s.ServiceName] = true
			}
			require.Len(t, services, 2, "orchestration and worker spans in one trace")
			for _, want := range []string{
				"POST /v1/tasks",
				"task_initializer.create_and_enqueue_task_from_request", "task_initializer.validate_and_create_task",
				"task_initializer.enqueue_initial_steps", "step_enqueuer.discover_ready_steps", "step_enqueuer.enqueue_steps_batch",
				"worker.execute_step_with_context", "worker.claim_step", "worker.invoke_handler", "worker.submit_step_result",
				"result_processor.process_single_step_result", "result_processor.handle_step_completion",
				"result_processor.trigger_next_steps", "task_finalizer.finalize_task",
				"task_finalizer.check_task_finalization_ready", "task_finalizer.transition_to_terminal_state",
				"sql.get_step_readiness_status", "sql.enqueue_steps", "sql.claim_step", "sql.submit_step_result",
				"sql.transition_task_state_path", "sql.transition_step_state_atomic",
			} {
				require.Positive(t, names[want], "span %q missing; have %v", want, names)
			}
			claimed := 0
			for _, s := range tr.Spans {
				if s.OperationName == "worker.execute_step_with_context" && s.Tags["claim_outcome"] == "claimed" {
					claimed++
				}
			}
			// A wake-up that lost the race for a message to another claim leaves a span
			// with claim_outcome not_visible or busy; each step is claimed exactly once.
			require.Equal(t, 4, claimed, "one claimed worker span per step")
			require.Equal(t, 4, names["handler.square"])

			parentName := func(s *jaegertest.Span) string {
				if p := byID[s.ParentSpanID()]; p != nil {
					return p.OperationName
				}
				return ""
			}
			for i := range tr.Spans {
				s := &tr.Spans[i]
				// The API request is the root.
				if s.ParentSpanID() == "" {
					require.Equal(t, "POST /v1/tasks", s.OperationName)
				}
				if s.OperationName == "handler.square" {
					require.Equal(t, "worker.invoke_handler", parentName(s), "a handler's spans nest under its invocation")
					continue
				}
				require.Equal(t, task.CorrelationID.String(), s.Tags["correlation_id"], "span %s lacks correlation_id", s.OperationName)
				require.NotContains(t, s.OperationName, task.TaskUUID.String())
				switch s.OperationName {
				case "worker.claim_step", "worker.invoke_handler", "worker.submit_step_result":
					require.Equal(t, "worker.execute_step_with_context", parentName(s))
				case "worker.execute_step_with_context":
					require.Equal(t, "step_enqueuer.enqueue_steps_batch", parentName(s))
					if s.Tags["claim_outcome"] != "claimed" {
						// A claim lost to another claimer (the poller) names no step.
						continue
					}
					require.NotEmpty(t, s.Tags["step_uuid"])
					require.NotEmpty(t, s.Tags["step_name"])
					require.Equal(t, "diamond_workflow", s.Tags["namespace"])
				case "result_processor.process_single_step_result":
					require.Equal(t, "worker.submit_step_result", parentName(s))
				case "sql.claim_step":
					require.Equal(t, "worker.claim_step", parentName(s))
					require.Equal(t, "postgresql", s.Tags["db.system.name"])
					require.Equal(t, "claim_step", s.Tags["db.operation.name"])
					require.Equal(t, "worker_diamond_workflow_queue", s.Tags["messaging.destination.name"])
				}
				if strings.HasPrefix(s.OperationName, "sql.") {
					require.Positive(t, s.Duration, "SQL span %s has a duration", s.OperationName)
					require.Equal(t, "postgresql", s.Tags["db.system.name"])
				}
			}
		})
	}
}

func TestRetryAttemptLinksToPreviousAttempt(t *testing.T) {
	t.Parallel()
	jg := jaegertest.Start(t)
	b := setup(t)
	st := startTraced(t, b, telemetryConfig("http://"+jg.OTLPGRPCEndpoint(), config.ProtocolGRPC), "retry")
	task := st.run(t, "retry_workflow/retry_mechanics", nil)
	require.Equal(t, "complete", task.State)
	st.flush(t)
	tr := waitForOps(t, jg, task.TraceID, "worker.execute_step_with_context", 3)
	var attempts []*jaegertest.Span
	for i := range tr.Spans {
		if tr.Spans[i].OperationName == "worker.execute_step_with_context" && tr.Spans[i].Tags["claim_outcome"] == "claimed" {
			attempts = append(attempts, &tr.Spans[i])
		}
	}
	require.Len(t, attempts, 3, "one span per attempt")
	links := 0
	for _, s := range attempts {
		for _, r := range s.References {
			if r.RefType == "FOLLOWS_FROM" {
				links++
				var found bool
				for _, prev := range attempts {
					found = found || prev.SpanID == r.SpanID
				}
				require.True(t, found, "a retried attempt links to an earlier attempt's span")
			}
		}
	}
	require.Equal(t, 2, links, "attempts 2 and 3 link back")
	// The resumed retries stay in the task's one trace.
	for _, s := range tr.Spans {
		require.Equal(t, task.TraceID, s.TraceID)
	}
	require.Positive(t, countOps(tr, "step_enqueuer.process_ready_task"), "backoff resumes are part of the trace")
}

// waitForOps polls Jaeger until the trace holds n spans named op.
func waitForOps(t *testing.T, jg *jaegertest.Jaeger, traceID, op string, n int) *jaegertest.Trace {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		tr, err := jg.Trace(context.Background(), traceID)
		if err == nil && countOps(tr, op) >= n {
			return tr
		}
		if time.Now().After(deadline) {
			t.Fatalf("trace %s never had %d %q spans (last error %v)", traceID, n, op, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func countOps(tr *jaegertest.Trace, op string) int {
	n := 0
	for _, s := range tr.Spans {
		if s.OperationName == op {
			n++
		}
	}
	return n
}

func TestSampling(t *testing.T) {
	t.Parallel()
	jg := jaegertest.Start(t)
	grpc := "http://" + jg.OTLPGRPCEndpoint()

	t.Run("ratio 0 exports nothing", func(t *testing.T) {
		b := setup(t)
		cfg := telemetryConfig(grpc, config.ProtocolGRPC)
		cfg.Sampling = config.Sampling{Strategy: config.StrategyTraceIDRatio, Ratio: 0}
		st := startTraced(t, b, cfg, "ratio0")
		task := st.run(t, "linear_workflow/mathematical_sequence", nil)
		require.Equal(t, "complete", task.State)
		st.flush(t)
		// Give the collector time it would need to store anything sent, then check nothing was.
		_, err := jg.WaitForSpans(context.Background(), strings.Repeat("0", 32), 1)
		require.Error(t, err)
		for _, svc := range []string{"tasker-orchestration-ratio0", "tasker-worker-ratio0"} {
			traces, err := jg.Traces(context.Background(), svc)
			require.NoError(t, err)
			require.Empty(t, traces)
		}
	})

	for _, sampled := range []bool{false, true} {
		name := map[bool]string{false: "parent sampled=0", true: "parent sampled=1"}[sampled]
		t.Run(name, func(t *testing.T) {
			b := setup(t)
			cfg := telemetryConfig(grpc, config.ProtocolGRPC)
			cfg.Sampling = config.Sampling{Strategy: config.StrategyParentBasedTraceIDRatio, Ratio: 1}
			suffix := map[bool]string{false: "parent0", true: "parent1"}[sampled]
			st := startTraced(t, b, cfg, suffix)
			traceID := strings.ReplaceAll(uuid.NewString(), "-", "")
			flags := map[bool]string{false: "00", true: "01"}[sampled]
			h := http.Header{"Traceparent": {"00-" + traceID + "-00f067aa0ba902b7-" + flags}}
			task := st.run(t, "linear_workflow/mathematical_sequence", h)
			require.Equal(t, "complete", task.State)
			st.flush(t)
			if sampled {
				require.Equal(t, traceID, task.TraceID, "the caller's trace continues")
				tr := waitForOps(t, jg, traceID, "worker.execute_step_with_context", 4)
				require.GreaterOrEqual(t, countOps(tr, "worker.execute_step_with_context"), 4)
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			_, err := jg.WaitForSpans(ctx, traceID, 1)
			require.Error(t, err, "an unsampled caller's trace is not recorded")
			traces, err := jg.Traces(context.Background(), "tasker-worker-"+suffix)
			require.NoError(t, err)
			require.Empty(t, traces)
		})
	}
}

// TestUnreachableCollector: a workflow completes and shutdown returns within
// the export timeout when the OTLP endpoint is a closed port.
func TestUnreachableCollector(t *testing.T) {
	t.Parallel()
	b := setup(t)
	cfg := telemetryConfig("http://127.0.0.1:1", config.ProtocolGRPC)
	cfg.OTLP.Timeout = config.Duration(2 * time.Second)
	ctx := context.Background()
	prov, err := telemetry.New(ctx, cfg, "tasker-unreachable")
	require.NoError(t, err)
	tr := tracing.New(prov.TracerProvider, prov.Propagator)
	e, err := engine.Start(ctx, engine.Config{Pool: b.pool,
		Orchestration: &orchestration.Config{},
		Worker:        &worker.Config{Namespaces: allNamespaces(b), Dispatcher: worker.RegistryDispatcher{Registry: b.registry}},
		Telemetry:     base.Telemetry{Tracer: tr}})
	require.NoError(t, err)
	for range 5 {
		c, err := e.Orchestrator.CreateTask(ctx, newRequest(t, "diamond_workflow/diamond_pattern", map[string]any{"even_number": 2}))
		require.NoError(t, err)
		require.Equal(t, "complete", waitTerminal(t, e.Backend(), c.TaskUUID, 20*time.Second).State)
	}
	require.NoError(t, e.Stop())
	sctx, cancel := context.WithTimeout(ctx, time.Duration(cfg.OTLP.Timeout)+time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- prov.Shutdown(sctx) }()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-sctx.Done():
		t.Fatal("shutdown did not return within the export timeout")
	}
	require.Positive(t, prov.Dropped(), "what could not be sent is counted")
}

// TestOTLPMetricExport pushes metrics over OTLP to a real collector (the
// Jaeger binary, which re-exposes them for Prometheus) and reads them back.
func TestOTLPMetricExport(t *testing.T) {
	t.Parallel()
	jg := jaegertest.Start(t)
	for _, c := range []struct{ protocol, endpoint string }{
		{config.ProtocolGRPC, "http://" + jg.OTLPGRPCEndpoint()},
		{config.ProtocolHTTPProtobuf, jg.OTLPHTTPEndpoint()},
	} {
		t.Run(c.protocol, func(t *testing.T) {
			b := setup(t)
			cfg := telemetryConfig(c.endpoint, c.protocol)
			cfg.Metrics.Enabled = true
			cfg.Metrics.ExportInterval = config.Duration(200 * time.Millisecond)
			ctx := context.Background()
			service := "tasker-metrics-" + strings.ReplaceAll(c.protocol, "/", "-")
			prov, err := telemetry.New(ctx, cfg, service)
			require.NoError(t, err)
			m, err := metrics.New(prov.MeterProvider)
			require.NoError(t, err)
			e, err := engine.Start(ctx, engine.Config{Pool: b.pool,
				Orchestration: &orchestration.Config{},
				Worker:        &worker.Config{Namespaces: allNamespaces(b), Dispatcher: worker.RegistryDispatcher{Registry: b.registry}},
				Telemetry:     base.Telemetry{Metrics: m}})
			require.NoError(t, err)
			created, err := e.Orchestrator.CreateTask(ctx, newRequest(t, "linear_workflow/mathematical_sequence", map[string]any{"even_number": 2}))
			require.NoError(t, err)
			require.Equal(t, "complete", waitTerminal(t, e.Backend(), created.TaskUUID, 20*time.Second).State)
			// Flushed while the engine runs: its gauges are unregistered by Stop.
			require.NoError(t, prov.ForceFlush(ctx))
			require.NoError(t, e.Stop())
			var text string
			require.Eventually(t, func() bool {
				text = scrape(t, jg.MetricsURL(), false)
				return strings.Contains(text, `job="`+service+`"`) && hasSample(text, "tasker_tasks_completions_total")
			}, 20*time.Second, 100*time.Millisecond, "pushed metrics never reached the collector")
			for _, name := range []string{"tasker_tasks_requests_total", "tasker_step_execution_duration_milliseconds",
				"tasker_sql_function_duration_milliseconds", "tasker_steps_claimed_total", "tasker_queue_depth"} {
				require.True(t, hasSample(text, name), "%s missing from the collector's view", name)
			}
			sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			require.NoError(t, prov.Shutdown(sctx))
			require.Zero(t, prov.Dropped())
		})
	}
}

// TestOTLPLogsCarryTraceContext: with telemetry enabled, log records are also
// exported over OTLP (otelslog bridge) with their span context; the real
// collector prints what it received.
func TestOTLPLogsCarryTraceContext(t *testing.T) {
	t.Parallel()
	jg := jaegertest.Start(t)
	b := setup(t)
	cfg := telemetryConfig("http://"+jg.OTLPGRPCEndpoint(), config.ProtocolGRPC)
	ctx := context.Background()
	prov, err := telemetry.New(ctx, cfg, "tasker-logs")
	require.NoError(t, err)
	cfg.Logs.Level = config.LevelInfo
	logger := telemetry.NewLogger(cfg.Logs, io.Discard, prov)
	tr := tracing.New(prov.TracerProvider, prov.Propagator)
	e, err := engine.Start(ctx, engine.Config{Pool: b.pool,
		Orchestration: &orchestration.Config{},
		Worker:        &worker.Config{Namespaces: allNamespaces(b), Dispatcher: worker.RegistryDispatcher{Registry: b.registry}},
		Telemetry:     base.Telemetry{Logger: logger, Tracer: tr}})
	require.NoError(t, err)
	created, err := e.Orchestrator.CreateTask(ctx, newRequest(t, "single_workflow/single_step", map[string]any{"even_number": 2}))
	require.NoError(t, err)
	task := waitTerminal(t, e.Backend(), created.TaskUUID, 20*time.Second)
	require.Equal(t, "complete", task.State)
	require.NoError(t, e.Stop())
	require.NoError(t, prov.ForceFlush(ctx))
	require.Eventually(t, func() bool {
		out := jg.Output()
		i := strings.Index(out, "Str(task.completed)")
		if i < 0 {
			return false
		}
		// The record's block: its attributes and, after them, its trace ID.
		rec := out[max(0, i-2000):min(len(out), i+1500)]
		return strings.Contains(rec, created.CorrelationID.String()) && strings.Contains(rec, "Trace ID: "+task.TraceID)
	}, 20*time.Second, 100*time.Millisecond, "task.completed never reached the collector with its correlation and trace IDs")
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	require.NoError(t, prov.Shutdown(sctx))
}

// Tasks created together in one batch are each a trace of their own, linked
// to the batch request's, and every step of a task runs in its task's trace.
func TestBatchCreatedTasksAreTracesOfTheirOwn(t *testing.T) {
	t.Parallel()
	jg := jaegertest.Start(t)
	b := setup(t)
	st := startTraced(t, b, telemetryConfig("http://"+jg.OTLPGRPCEndpoint(), config.ProtocolGRPC), "batch")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reqs := []client.TaskRequest{newRequest(t, "diamond_workflow/diamond_pattern", map[string]any{"even_number": 4}),
		newRequest(t, "diamond_workflow/diamond_pattern", map[string]any{"even_number": 6})}
	created, err := st.api.CreateTasks(ctx, reqs)
	require.NoError(t, err)
	require.Len(t, created, 2)
	var traceIDs []string
	for i, c := range created {
		final, err := st.api.WaitForTask(ctx, c.TaskUUID, 10*time.Millisecond)
		require.NoError(t, err)
		require.Equal(t, "complete", final.State)
		require.Len(t, final.TraceID, 32)
		require.Equal(t, *reqs[i].CorrelationID, final.CorrelationID)
		traceIDs = append(traceIDs, final.TraceID)
	}
	require.NotEqual(t, traceIDs[0], traceIDs[1], "a trace per task")
	st.flush(t)
	for i, id := range traceIDs {
		tr := waitForOps(t, jg, id, "task_finalizer.finalize_task", 1)
		tr = waitForOps(t, jg, id, "worker.execute_step_with_context", 4)
		byID := map[string]*jaegertest.Span{}
		for j := range tr.Spans {
			byID[tr.Spans[j].SpanID] = &tr.Spans[j]
		}
		claimed := 0
		for _, s := range tr.Spans {
			require.Equal(t, reqs[i].CorrelationID.String(), s.Tags["correlation_id"], "span %s", s.OperationName)
			if s.ParentSpanID() == "" {
				require.Equal(t, "task_initializer.create_and_enqueue_task_from_request", s.OperationName, "the task's root")
				require.NotEmpty(t, s.References, "linked to the batch request")
			}
			if s.OperationName == "worker.execute_step_with_context" && s.Tags["claim_outcome"] == "claimed" {
				claimed++
				p := byID[s.ParentSpanID()]
				require.NotNil(t, p)
				require.Equal(t, "step_enqueuer.enqueue_steps_batch", p.OperationName)
			}
		}
		require.Equal(t, 4, claimed, "every step of the task in its trace")
	}
}
