package metrics_test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
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
	require.Equal(t, map[string]int{"orchestration": 13, "worker": 11, "database": 7, "messaging": 11}, perDomain)
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
