package metrics_test

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/taskerhq/tasker/internal/db"
	"github.com/taskerhq/tasker/internal/metrics"
)

func TestReferenceIsUpToDate(t *testing.T) {
	t.Parallel()
	path := filepath.Join("..", "..", "docs", "observability", "metrics-reference.md")
	want := metrics.Reference()
	if os.Getenv("TASKER_UPDATE_DOCS") != "" {
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, os.WriteFile(path, []byte(want), 0o644))
	}
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, want, string(got), "docs/observability/metrics-reference.md is stale: run TASKER_UPDATE_DOCS=1 go test ./internal/metrics/")
}

func TestDefinitions(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	perDomain := map[string]int{}
	nameRE := regexp.MustCompile(`^tasker_[a-z_]+$`)
	for _, d := range metrics.Definitions() {
		require.False(t, seen[d.Name], "duplicate %s", d.Name)
		seen[d.Name] = true
		perDomain[d.Domain]++
		require.Regexp(t, nameRE, d.Name)
		require.NotEmpty(t, d.Help)
		require.NotEmpty(t, d.Where)
		for _, l := range d.Labels {
			require.NotContains(t, []string{"task_uuid", "step_uuid", "correlation_id"}, l, "IDs are never labels")
		}
		if d.Kind == metrics.Histogram {
			require.Equal(t, "ms", d.Unit, d.Name)
		}
	}
	require.Equal(t, map[string]int{"orchestration": 13, "worker": 12, "database": 7, "messaging": 12}, perDomain)
}

func TestNilMetricsRecordNothing(t *testing.T) {
	t.Parallel()
	var m *metrics.Metrics
	ctx := context.Background()
	m.TaskRequested(ctx, uuid.Nil, "ns", "t", time.Millisecond)
	m.StepExecuted(ctx, uuid.Nil, "ns", "s", "", time.Millisecond)
	_, done := m.StartCall(ctx, db.Call{Function: "f"})
	done(nil)
	require.NoError(t, m.Close())
}

// Recording on the hot path must not allocate once a label set has been seen.
func TestHotPathDoesNotAllocate(t *testing.T) {
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	m, err := metrics.New(mp)
	require.NoError(t, err)
	ctx := context.Background()
	corr := uuid.New()
	record := func() {
		m.StepClaimed(ctx, "ns", "event", "worker_ns_queue", time.Millisecond)
		m.StepExecuted(ctx, corr, "ns", "step", "", time.Millisecond)
		m.ResultSubmitted(ctx, "ns", "worker_ns_queue", time.Millisecond)
		m.ResultProcessed(ctx, "ns", "success", time.Millisecond)
		m.StepEnqueued(ctx, "ns", "step", "worker_ns_queue")
		m.StepTransition(ctx, "ns", time.Millisecond)
	}
	record()
	require.Zero(t, testing.AllocsPerRun(200, record))
}

func BenchmarkRecordStep(b *testing.B) {
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	m, err := metrics.New(mp)
	require.NoError(b, err)
	ctx := context.Background()
	corr := uuid.New()
	b.ReportAllocs()
	for b.Loop() {
		// Everything one step records across worker and orchestration.
		m.StepClaimed(ctx, "ns", "event", "worker_ns_queue", time.Millisecond)
		m.StepExecuted(ctx, corr, "ns", "step", "", time.Millisecond)
		m.ResultSubmitted(ctx, "ns", "worker_ns_queue", time.Millisecond)
		m.ResultProcessed(ctx, "ns", "success", time.Millisecond)
		m.StepEnqueued(ctx, "ns", "step", "worker_ns_queue")
		m.StepTransition(ctx, "ns", time.Millisecond)
	}
}

// observedCall is how internal/db and internal/queue wrap every SQL call.
func observedCall(in *db.Instr, ctx context.Context, call db.Call) {
	var err error
	_, sc := in.Begin(ctx, call)
	defer func() { sc.End(err) }()
}

func TestSQLCallRecordingDoesNotAllocate(t *testing.T) {
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	m, err := metrics.New(mp)
	require.NoError(t, err)
	in := db.NewInstr(db.Observers{nil, m})
	ctx := context.Background()
	call := db.Call{Function: "claim_step", Queue: "worker_ns_queue", Messaging: "receive"}
	observedCall(&in, ctx, call)
	require.Zero(t, testing.AllocsPerRun(200, func() { observedCall(&in, ctx, call) }))
}

func BenchmarkObserveSQLCall(b *testing.B) {
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	m, err := metrics.New(mp)
	require.NoError(b, err)
	in := db.NewInstr(m)
	ctx := context.Background()
	call := db.Call{Function: "claim_step", Queue: "worker_ns_queue", Messaging: "receive"}
	b.ReportAllocs()
	for b.Loop() {
		observedCall(&in, ctx, call)
	}
}

// Every SQL function the code calls has its series declared at start: the
// list in zeros.go must name each db.Call the wrappers in internal/db and
// internal/queue make.
func TestSQLFunctionListIsComplete(t *testing.T) {
	t.Parallel()
	callRE := regexp.MustCompile(`Function: "([a-z_]+)"`)
	found := map[string]bool{}
	for _, dir := range []string{"../db", "../queue"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		require.NoError(t, err)
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			src, err := os.ReadFile(f)
			require.NoError(t, err)
			for _, m := range callRE.FindAllStringSubmatch(string(src), -1) {
				found[m[1]] = true
			}
		}
	}
	require.NotEmpty(t, found)
	var want []string
	for f := range found {
		want = append(want, f)
	}
	sort.Strings(want)
	got := metrics.SQLFunctions()
	sort.Strings(got)
	require.Equal(t, want, got)
}

// A declared histogram series is served with zero counts until recorded,
// then only the recorded one is.
func TestDeclaredHistogramsServedUntilRecorded(t *testing.T) {
	t.Parallel()
	prom, err := metrics.NewPrometheus()
	require.NoError(t, err)
	m, err := metrics.New(prom.MeterProvider(), metrics.WithPrometheus(prom))
	require.NoError(t, err)
	ctx := context.Background()
	m.Declare(ctx, metrics.Catalog{Queues: []string{"q1"}, Namespaces: []string{"ns"}})
	m.Declare(ctx, metrics.Catalog{Queues: []string{"q1"}}) // twice is harmless
	body := func() string {
		rec := httptest.NewRecorder()
		prom.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		require.Equal(t, 200, rec.Code, rec.Body.String())
		return rec.Body.String()
	}
	out := body()
	require.Contains(t, out, `tasker_message_queue_wait_duration_milliseconds_count{otel_scope_name="github.com/taskerhq/tasker",otel_scope_schema_url="",otel_scope_version="",queue="q1"} 0`)
	require.Contains(t, out, `tasker_messages_failed_total{otel_scope_name="github.com/taskerhq/tasker",otel_scope_schema_url="",otel_scope_version="",queue="q1"} 0`)
	require.Contains(t, out, `le="0.025"`)

	m.QueueWait(ctx, "q1", 3*time.Millisecond)
	out = body()
	require.Contains(t, out, `tasker_message_queue_wait_duration_milliseconds_count{otel_scope_name="github.com/taskerhq/tasker",otel_scope_schema_url="",otel_scope_version="",queue="q1"} 1`)
	require.Equal(t, 1, strings.Count(out, `tasker_message_queue_wait_duration_milliseconds_count{`), out)
}
