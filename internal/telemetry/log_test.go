package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/taskerhq/tasker/internal/config"
)

func jsonLines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(buf.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m), line)
		out = append(out, m)
	}
	return out
}

func TestLoggerTraceContext(t *testing.T) {
	var buf bytes.Buffer
	logger := NewLogger(config.Logs{Level: config.LevelInfo, Format: config.FormatJSON}, &buf, nil)
	tp := sdktrace.NewTracerProvider()
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })

	ctx, span := tp.Tracer("test").Start(context.Background(), "op")
	logger.InfoContext(ctx, "step.completed", "correlation_id", "c-1", "duration_ms", 1.5)
	span.End()
	logger.InfoContext(context.Background(), "outside any span")
	logger.Info("no context at all")

	lines := jsonLines(t, &buf)
	require.Len(t, lines, 3)
	require.Equal(t, span.SpanContext().TraceID().String(), lines[0]["trace_id"])
	require.Equal(t, span.SpanContext().SpanID().String(), lines[0]["span_id"])
	require.Equal(t, "c-1", lines[0]["correlation_id"])
	require.Equal(t, "INFO", lines[0]["level"])
	for _, l := range lines[1:] {
		require.NotContains(t, l, "trace_id")
		require.NotContains(t, l, "span_id")
	}

	// trace_id and span_id come after the record's own attributes, so
	// correlation_id stays first as the logging standard requires.
	raw := strings.Split(buf.String(), "\n")[0]
	require.Less(t, strings.Index(raw, `"correlation_id"`), strings.Index(raw, `"trace_id"`))
}

func TestLoggerComponentLevels(t *testing.T) {
	var buf bytes.Buffer
	logger := NewLogger(config.Logs{
		Level:      config.LevelInfo,
		Format:     config.FormatJSON,
		Components: map[string]string{"worker": config.LevelDebug, "api": config.LevelError},
	}, &buf, nil)

	worker := logger.With("component", "worker")
	api := logger.With("component", "api")
	other := logger.With("component", "orchestration")

	worker.Debug("worker debug")     // worker is at debug: kept
	api.Warn("api warn")             // api is at error: dropped
	api.Error("api error")           // kept
	other.Debug("other debug")       // unlisted component: default info, dropped
	other.Info("other info")         // kept
	logger.Debug("no component")     // default: dropped
	logger.Info("no component info") // kept
	// The attribute on the record itself picks the level too.
	logger.Debug("record-level worker debug", "component", "worker") // kept
	logger.Debug("record-level api debug", "component", "api")       // dropped
	// Inside a group, "component" is just a field of that group.
	logger.WithGroup("req").With("component", "worker").Debug("grouped") // dropped

	var msgs []string
	for _, l := range jsonLines(t, &buf) {
		msgs = append(msgs, l["msg"].(string))
	}
	require.Equal(t, []string{"worker debug", "api error", "other info", "no component info", "record-level worker debug"}, msgs)

	require.True(t, worker.Enabled(context.Background(), slog.LevelDebug))
	require.False(t, api.Enabled(context.Background(), slog.LevelWarn))
}

func TestLoggerLevelsAndFormats(t *testing.T) {
	for _, c := range []struct {
		level string
		want  []string
	}{
		{config.LevelDebug, []string{"DEBUG", "INFO", "WARN", "ERROR"}},
		{config.LevelInfo, []string{"INFO", "WARN", "ERROR"}},
		{config.LevelWarn, []string{"WARN", "ERROR"}},
		{config.LevelError, []string{"ERROR"}},
	} {
		t.Run(c.level, func(t *testing.T) {
			var buf bytes.Buffer
			logger := NewLogger(config.Logs{Level: c.level, Format: config.FormatJSON}, &buf, nil)
			logger.Debug("d")
			logger.Info("i")
			logger.Warn("w")
			logger.Error("e")
			var got []string
			for _, l := range jsonLines(t, &buf) {
				got = append(got, l["level"].(string))
			}
			require.Equal(t, c.want, got)
		})
	}

	var buf bytes.Buffer
	NewLogger(config.Logs{Level: config.LevelInfo, Format: config.FormatText}, &buf, nil).
		With("component", "worker").Info("step.claimed", "step_uuid", "s-1")
	require.Regexp(t, `^time=\S+ level=INFO msg=step.claimed step_uuid=s-1 component=worker\n$`, buf.String())

	require.Equal(t, slog.LevelInfo, ParseLevel("chatty"), "an unknown level never silences logs")
}

func TestLoggerWithoutExportDoesNotBridge(t *testing.T) {
	p, err := New(context.Background(), config.Default().Telemetry, "")
	require.NoError(t, err)
	var buf bytes.Buffer
	logger := NewLogger(config.Logs{Level: config.LevelInfo, Format: config.FormatText}, &buf, p)
	logger.Info("hello")
	require.Nil(t, logger.Handler().(*handler).otel)
	require.Contains(t, buf.String(), "msg=hello")
}

func TestLoggerPutsCorrelationFieldsFirst(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	l := NewLogger(config.Logs{Level: "info", Format: "text"}, &buf, nil).With("component", "worker", "worker_id", "w1")
	l.Info("step claimed", "attempt", 1, "duration_ms", 1.5, "step_uuid", "s", "namespace", "ns", "correlation_id", "c",
		"operation", "claim_step", "task_uuid", "t")
	line := buf.String()
	idx := func(k string) int {
		i := strings.Index(line, " "+k+"=")
		require.GreaterOrEqual(t, i, 0, "%s missing in %q", k, line)
		return i
	}
	order := []string{"correlation_id", "task_uuid", "step_uuid", "namespace", "operation", "duration_ms", "attempt", "component", "worker_id"}
	for i := 1; i < len(order); i++ {
		require.Less(t, idx(order[i-1]), idx(order[i]), "%s before %s in %q", order[i-1], order[i], line)
	}
}

func TestLoggerTraceLevel(t *testing.T) {
	var buf bytes.Buffer
	logger := NewLogger(config.Logs{Level: config.LevelDebug, Format: config.FormatText,
		Components: map[string]string{"sql": config.LevelTrace}}, &buf, nil)
	logger.Log(context.Background(), LevelTrace, "default component: below debug, dropped")
	sql := logger.With("component", "sql")
	require.True(t, sql.Enabled(context.Background(), LevelTrace))
	sql.Log(context.Background(), LevelTrace, "sql call", "operation", "claim_step")
	require.Regexp(t, `^time=\S+ level=TRACE msg="sql call" operation=claim_step component=sql\n$`, buf.String())

	buf.Reset()
	NewLogger(config.Logs{Level: config.LevelTrace, Format: config.FormatJSON}, &buf, nil).Log(context.Background(), LevelTrace, "x")
	require.Equal(t, "TRACE", jsonLines(t, &buf)[0]["level"])
	require.Equal(t, LevelTrace, ParseLevel(config.LevelTrace))
	require.Equal(t, slog.Level(-8), LevelTrace)
}
