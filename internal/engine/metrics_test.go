package engine_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/taskerhq/tasker/internal/metrics"
	"github.com/taskerhq/tasker/internal/orchestration"
	"github.com/taskerhq/tasker/internal/queue"
)

func scrape(t *testing.T, url string, openMetrics bool) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	if openMetrics {
		req.Header.Set("Accept", "application/openmetrics-text; version=1.0.0")
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

// hasSample reports whether the exposition has a sample of metric name.
func hasSample(text, name string) bool {
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		for _, suffix := range []string{"", "_bucket", "_count"} {
			if strings.HasPrefix(line, name+suffix+"{") || strings.HasPrefix(line, name+suffix+" ") {
				return true
			}
		}
	}
	return false
}

// TestEveryMetricIsRecorded runs workflows that succeed, retry and fail, plus
// a malformed message, a missed notification and a failing SQL call, and
// fails if any defined metric has no data point.
func TestEveryMetricIsRecorded(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.recordSent(t)
	prom, err := metrics.NewPrometheus()
	require.NoError(t, err)
	m, err := metrics.New(prom.MeterProvider())
	require.NoError(t, err)
	srv := httptest.NewServer(prom.Handler())
	t.Cleanup(srv.Close)
	e := b.start(t, engineOpts{orchestrate: true, work: true, metrics: m})
	ctx := context.Background()

	var failed uuid.UUID
	for _, ref := range []string{"linear_workflow/mathematical_sequence", "diamond_workflow/diamond_pattern",
		"retry_workflow/retry_mechanics", "retry_workflow/retry_exhaustion"} {
		c, err := e.Orchestrator.CreateTask(ctx, newRequest(t, ref, map[string]any{"even_number": 4}))
		require.NoError(t, err)
		if waitTerminal(t, e.Backend(), c.TaskUUID, 30*time.Second).State == "error" {
			failed = c.TaskUUID
		}
	}
	// An operator action.
	require.NotEqual(t, uuid.Nil, failed, "retry_exhaustion fails")
	require.NoError(t, e.Orchestrator.RetryTask(ctx, failed, orchestration.Operation{Reason: "metrics test"}))
	// A malformed result message, and a redelivered one sent without NOTIFY
	// (as if the notification was lost): the fallback poller finds both.
	_, err = b.pool.Exec(ctx, `INSERT INTO tasker.queue_messages (queue_name, message) VALUES ('orchestration_step_results', '"not an object"')`)
	require.NoError(t, err)
	_, err = b.pool.Exec(ctx, `INSERT INTO tasker.queue_messages (queue_name, message, headers)
		SELECT queue_name, message, headers FROM public.sent_messages WHERE queue_name = 'orchestration_step_results' LIMIT 1`)
	require.NoError(t, err)
	// A failing SQL function call is counted as an error.
	_, err = queue.NewClient(m).Send(ctx, b.pool, "never_created_queue", map[string]int{"x": 1}, nil, 0)
	require.Error(t, err)

	// Retention: everything finished so far is pruned.
	pruned, err := e.Orchestrator.Prune(ctx, time.Now())
	require.NoError(t, err)
	require.Positive(t, pruned.Tasks)

	var text string
	require.Eventually(t, func() bool {
		text = scrape(t, srv.URL, false)
		return recorded(text, "tasker_fallback_poll_messages_total") && recorded(text, "tasker_messages_failed_total")
	}, 20*time.Second, 100*time.Millisecond)
	var missing []string
	for _, d := range metrics.Definitions() {
		// Counters and histograms are declared at 0 from the start; a gauge may rightly read 0.
		if !hasSample(text, d.Name) || ((d.Kind == metrics.Counter || d.Kind == metrics.Histogram) && !recorded(text, d.Name)) {
			missing = append(missing, d.Name)
		}
	}
	require.Empty(t, missing, "metrics without a data point")
	if testing.Verbose() {
		t.Log(text)
	}
	require.Contains(t, text, `tasker_steps_claimed_total{claim_method="event"`)
	require.Contains(t, text, `tasker_step_results_processed_total{namespace="retry_workflow",otel_scope_name`)
	require.NotContains(t, text, "correlation_id=", "IDs never become labels by default")
	require.NotContains(t, text, "task_uuid=")

	// Exemplars (trace and span IDs on histogram buckets) need OpenMetrics.
	om := scrape(t, srv.URL, true)
	require.True(t, hasSample(om, "tasker_step_execution_duration_milliseconds"))
}

func TestCorrelationIDLabelSwitch(t *testing.T) {
	t.Parallel()
	b := setup(t)
	prom, err := metrics.NewPrometheus()
	require.NoError(t, err)
	m, err := metrics.New(prom.MeterProvider(), metrics.WithCorrelationIDLabel(true))
	require.NoError(t, err)
	srv := httptest.NewServer(prom.Handler())
	t.Cleanup(srv.Close)
	e := b.start(t, engineOpts{orchestrate: true, work: true, metrics: m})
	c, err := e.Orchestrator.CreateTask(context.Background(), newRequest(t, "single_workflow/single_step", map[string]any{"even_number": 4}))
	require.NoError(t, err)
	waitTerminal(t, e.Backend(), c.TaskUUID, 20*time.Second)
	text := scrape(t, srv.URL, false)
	require.Contains(t, text, `correlation_id="`+c.CorrelationID.String()+`"`)
}
