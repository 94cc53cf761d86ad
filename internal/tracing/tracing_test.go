package tracing_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/taskerhq/tasker/internal/config"
	"github.com/taskerhq/tasker/internal/db"
	"github.com/taskerhq/tasker/internal/telemetry"
	"github.com/taskerhq/tasker/internal/tracing"
)

var call = db.Call{Function: "claim_step", Queue: "worker_ns_queue", Messaging: "receive"}

// At trace level every SQL function call logs its entry and exit.
func TestCallLogAtTraceLevel(t *testing.T) {
	var buf bytes.Buffer
	logger := telemetry.NewLogger(config.Logs{Level: config.LevelInfo, Format: config.FormatText,
		Components: map[string]string{tracing.ComponentSQL: config.LevelTrace}}, &buf, nil)
	tr := tracing.Noop().WithCallLog(logger)
	_, done := tr.StartCall(tracing.Suppress(context.Background()), call)
	done(errors.New("boom"))
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	require.Len(t, lines, 2, buf.String())
	require.Contains(t, lines[0], `level=TRACE msg="sql call" operation=claim_step queue=worker_ns_queue phase=enter component=sql`)
	require.Contains(t, lines[1], `phase=exit error=boom component=sql`)
	require.Contains(t, lines[1], "duration_ms=")
}

// Off (the default), the call log costs nothing: no record, no allocation.
func TestCallLogOffDoesNotAllocate(t *testing.T) {
	var buf bytes.Buffer
	logger := telemetry.NewLogger(config.Logs{Level: config.LevelDebug, Format: config.FormatText}, &buf, nil)
	tr := tracing.Noop().WithCallLog(logger)
	ctx := tracing.Suppress(context.Background())
	allocs := testing.AllocsPerRun(500, func() {
		_, done := tr.StartCall(ctx, call)
		done(nil)
	})
	require.Zero(t, allocs)
	require.Empty(t, buf.String())
}

// BenchmarkCallLogOff measures what the trace-level check adds to every SQL
// function call when trace is off: expect 0 allocs/op.
func BenchmarkCallLogOff(b *testing.B) {
	logger := telemetry.NewLogger(config.Logs{Level: config.LevelInfo, Format: config.FormatText}, &bytes.Buffer{}, nil)
	tr := tracing.Noop().WithCallLog(logger)
	ctx := tracing.Suppress(context.Background())
	b.ReportAllocs()
	for b.Loop() {
		_, done := tr.StartCall(ctx, call)
		done(nil)
	}
}

func recorder(t *testing.T) (*tracing.Tracer, *tracetest.SpanRecorder) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tracing.New(tp, nil), rec
}

func attrsOf(s sdktrace.ReadOnlySpan) map[string]string {
	out := map[string]string{}
	for _, kv := range s.Attributes() {
		out[string(kv.Key)] = kv.Value.Emit()
	}
	return out
}

// A read that has loaded its task names it on the request's span and on
// every SQL span after that point.
func TestForTask(t *testing.T) {
	tr, rec := recorder(t)
	corr, task := uuid.New(), uuid.New()
	ctx, server := tr.Start(context.Background(), "GET /v1/tasks/{uuid}")
	_, before := tr.StartCall(ctx, db.Call{Function: "load"})
	before(nil)
	ctx = tracing.ForTask(ctx, corr, task)
	_, after := tr.StartCall(ctx, db.Call{Function: "get_task_execution_context"})
	after(nil)
	server.End()

	spans := map[string]map[string]string{}
	for _, s := range rec.Ended() {
		spans[s.Name()] = attrsOf(s)
	}
	for _, name := range []string{"GET /v1/tasks/{uuid}", "sql.get_task_execution_context"} {
		require.Equal(t, corr.String(), spans[name]["correlation_id"], name)
		require.Equal(t, task.String(), spans[name]["task_uuid"], name)
	}
	require.NotContains(t, spans["sql.load"], "task_uuid", "the span that loads the task cannot know it yet")

	// A list by correlation ID carries the correlation ID only.
	ctx, list := tr.Start(context.Background(), "GET /v1/tasks")
	ctx = tracing.ForTask(ctx, corr, uuid.Nil)
	_, call := tr.StartCall(ctx, db.Call{Function: "get_task_execution_context"})
	call(nil)
	list.End()
	got := attrsOf(rec.Ended()[len(rec.Ended())-2])
	require.Equal(t, corr.String(), got["correlation_id"])
	require.NotContains(t, got, "task_uuid")
}

// An empty poll leaves no span; one that found work, or failed, leaves one
// with its real start and end.
func TestPoll(t *testing.T) {
	tr, rec := recorder(t)
	ctx := context.Background()
	start := time.Now().Add(-5 * time.Millisecond)
	tr.Poll(ctx, "get_next_ready_tasks", start, 0, nil)
	require.Empty(t, rec.Ended(), "empty polls are dropped")

	tr.Poll(ctx, "get_next_ready_tasks", start, 3, nil, attribute.Int("batch_size", 50))
	tr.Poll(ctx, "get_next_ready_tasks", start, 0, errors.New("connection reset"))
	spans := rec.Ended()
	require.Len(t, spans, 2)
	require.Equal(t, "sql.get_next_ready_tasks", spans[0].Name())
	require.Equal(t, start, spans[0].StartTime())
	require.True(t, spans[0].EndTime().After(start))
	require.Equal(t, "3", attrsOf(spans[0])["db.response.returned_rows"])
	require.Equal(t, "50", attrsOf(spans[0])["batch_size"])
	require.Equal(t, codes.Error, spans[1].Status().Code)
}
