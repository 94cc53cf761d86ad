package engine_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/taskerhq/tasker/internal/base"
	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/metrics"
	"github.com/taskerhq/tasker/internal/orchestration"
	"github.com/taskerhq/tasker/internal/tracing"
	"github.com/taskerhq/tasker/internal/worker"
)

// A freshly started process, before any task ran, exports every metric
// family: counters at 0 for the label sets it knows (queues,
// namespaces, templates, steps, SQL functions, fixed outcomes), histograms
// with zero counts, gauges read from the database. Dashboards show 0, not
// "No data", and rate() alerts see 0, not an absent series. The first real
// recording replaces a zero series without duplicating it.
func TestFreshProcessExportsEveryFamily(t *testing.T) {
	t.Parallel()
	b := setup(t)
	exporter, err := metrics.NewPrometheus()
	require.NoError(t, err)
	m, err := metrics.New(exporter.MeterProvider(), metrics.WithPrometheus(exporter))
	require.NoError(t, err)
	srv := httptest.NewServer(exporter.Handler())
	t.Cleanup(srv.Close)
	e := b.start(t, engineOpts{orchestrate: true, work: true, metrics: m})

	d := defsByName()
	// Counters and histograms are there from the first scrape; gauges from
	// their first reading (tasker_workers_live once the orchestrator has
	// read worker presence, within its first poll).
	families := scrapeFamilies(t, srv.URL)
	for _, name := range metrics.Names() {
		if k := d[name].Kind; k == metrics.Counter || k == metrics.Histogram {
			require.Contains(t, families, name, "family %s missing from a fresh process", name)
		}
	}
	deadline := time.Now().Add(15 * time.Second)
	var missing []string
	for {
		missing = missing[:0]
		for _, name := range metrics.Names() {
			if _, ok := families[name]; !ok {
				missing = append(missing, name)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
		families = scrapeFamilies(t, srv.URL)
	}
	require.Empty(t, missing, "families missing from a fresh process")
	require.Len(t, metrics.Names(), 44)

	series := func(name string) []*dto.Metric { return families[name].GetMetric() }
	for _, name := range metrics.Names() {
		if dom := d[name].Domain; dom != "orchestration" && dom != "worker" {
			continue // the pollers' SQL calls and queue reads start at once
		}
		switch d[name].Kind {
		case metrics.Counter:
			for _, s := range series(name) {
				require.Zero(t, s.GetCounter().GetValue(), "%s %v", name, s.GetLabel())
			}
		case metrics.Histogram:
			for _, s := range series(name) {
				require.Zero(t, s.GetHistogram().GetSampleCount(), "%s %v", name, s.GetLabel())
			}
		}
	}
	// The label sets are the ones that will be recorded.
	require.NotNil(t, find(series("tasker_messages_failed_total"), "queue", "orchestration_step_results"))
	require.NotNil(t, find(series("tasker_fallback_poll_messages_total"), "queue", "worker_linear_workflow_queue"))
	require.NotNil(t, find(series("tasker_sql_function_errors_total"), "function", "claim_step", "error_type", "timeout"))
	require.NotNil(t, find(series("tasker_steps_failures_total"), "namespace", "linear_workflow", "step_name", "linear_step_1", "error_type", "permanent_error"))
	require.NotNil(t, find(series("tasker_tasks_requests_total"), "namespace", "linear_workflow", "template", "mathematical_sequence"))
	require.NotNil(t, find(series("tasker_step_execution_duration_milliseconds"), "namespace", "linear_workflow", "step_name", "linear_step_1"))

	// After a task, its series carry real values, once each.
	_, task := runTask(t, e, "linear_workflow/mathematical_sequence", 6)
	require.Equal(t, "complete", task.State)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		families = scrapeFamilies(t, srv.URL)
		if s := find(families["tasker_tasks_completions_total"].GetMetric(), "template", "mathematical_sequence"); s != nil && s.GetCounter().GetValue() == 1 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	s := find(families["tasker_step_execution_duration_milliseconds"].GetMetric(), "namespace", "linear_workflow", "step_name", "linear_step_1")
	require.NotNil(t, s)
	require.Equal(t, uint64(1), s.GetHistogram().GetSampleCount(), "the real series replaced the zero one")
	wait := find(families["tasker_message_queue_wait_duration_milliseconds"].GetMetric(), "queue", "worker_linear_workflow_queue")
	require.NotNil(t, wait)
	require.Positive(t, wait.GetHistogram().GetSampleCount(), "queue wait recorded for the worker queue")
	wait = find(families["tasker_message_queue_wait_duration_milliseconds"].GetMetric(), "queue", "orchestration_step_results")
	require.NotNil(t, wait)
	require.Positive(t, wait.GetHistogram().GetSampleCount(), "queue wait recorded for the result queue")
}

func defsByName() map[string]metrics.Def {
	out := map[string]metrics.Def{}
	for _, d := range metrics.Definitions() {
		out[d.Name] = d
	}
	return out
}

// scrapeFamilies reads url's /metrics in the Prometheus text format; the registry
// refuses to serve duplicate series, so a zero series shown next to its real
// one would fail here.
func scrapeFamilies(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	// Counters are exposed under their _total name, histograms under their base name.
	return families
}

// find returns the series whose labels include every name/value pair in kv.
func find(series []*dto.Metric, kv ...string) *dto.Metric {
	for _, s := range series {
		labels := map[string]string{}
		for _, l := range s.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		ok := true
		for i := 0; i+1 < len(kv); i += 2 {
			if labels[kv[i]] != kv[i+1] {
				ok = false
			}
		}
		if ok {
			return s
		}
	}
	return nil
}

// The queue wait of a traced message links to its trace: its bucket carries
// an exemplar with the consuming span's trace ID (OpenMetrics).
func TestQueueWaitHasExemplar(t *testing.T) {
	t.Parallel()
	b := setup(t)
	exporter, err := metrics.NewPrometheus()
	require.NoError(t, err)
	m, err := metrics.New(exporter.MeterProvider(), metrics.WithPrometheus(exporter))
	require.NoError(t, err)
	srv := httptest.NewServer(exporter.Handler())
	t.Cleanup(srv.Close)
	tp := sdktrace.NewTracerProvider()
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	tr := tracing.New(tp, nil)
	ctx := context.Background()
	e, err := engine.Start(ctx, engine.Config{Pool: b.pool,
		Telemetry:     base.Telemetry{Logger: testLogger(t), Metrics: m, Tracer: tr},
		Orchestration: &orchestration.Config{},
		Worker:        &worker.Config{Namespaces: allNamespaces(b), Dispatcher: worker.RegistryDispatcher{Registry: b.registry}}})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, e.Stop()) })
	_, task := runTask(t, e, "single_workflow/single_step", 4)
	require.Equal(t, "complete", task.State)
	require.Len(t, task.TraceID, 32)

	var om string
	require.Eventually(t, func() bool {
		om = scrape(t, srv.URL, true)
		for line := range strings.SplitSeq(om, "\n") {
			if strings.HasPrefix(line, "tasker_message_queue_wait_duration_milliseconds_bucket{") &&
				strings.Contains(line, `queue="worker_single_workflow_queue"`) && strings.Contains(line, `trace_id="`+task.TraceID+`"`) {
				return true
			}
		}
		return false
	}, 20*time.Second, 50*time.Millisecond, "no queue wait exemplar naming the task's trace")
}

// recorded reports whether the text exposition has a sample of metric name
// (a counter, or a histogram's _count) above zero: since every series is
// declared at 0 from the start, being present no longer means recorded.
func recorded(text, name string) bool {
	for line := range strings.SplitSeq(text, "\n") {
		for _, series := range []string{name, name + "_count"} {
			rest, ok := strings.CutPrefix(line, series)
			if !ok || (rest != "" && rest[0] != '{' && rest[0] != ' ') {
				continue
			}
			if i := strings.LastIndexByte(rest, ' '); i >= 0 && strings.TrimSpace(rest[i:]) != "0" {
				return true
			}
		}
	}
	return false
}
