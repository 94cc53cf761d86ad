package telemetry

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskerhq/tasker/internal/config"
	"github.com/taskerhq/tasker/internal/jaegertest"
)

// Spans exported by New's providers arrive in a real Jaeger, over both OTLP
// protocols, with parentage, attributes, events and resource intact.
func TestExportToJaeger(t *testing.T) {
	j := jaegertest.Start(t)
	for _, c := range []struct {
		protocol, endpoint, service string
	}{
		{config.ProtocolGRPC, "http://" + j.OTLPGRPCEndpoint(), "tasker-test-grpc"},
		{config.ProtocolHTTPProtobuf, j.OTLPHTTPEndpoint(), "tasker-test-http"},
	} {
		t.Run(c.protocol, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cfg := config.Default().Telemetry
			cfg.Enabled = true
			cfg.OTLP.Endpoint = c.endpoint
			cfg.OTLP.Protocol = c.protocol
			p, err := New(ctx, cfg, c.service)
			require.NoError(t, err)
			tracer := p.TracerProvider.Tracer(ScopeName)

			rootCtx, root := tracer.Start(ctx, "task_initializer.create_and_enqueue_task_from_request",
				trace.WithAttributes(attribute.String("correlation_id", "0192d7a4-0000-7000-8000-00000000000a"), attribute.Int("attempt", 2)))
			_, child := tracer.Start(rootCtx, "sql.get_step_readiness_status",
				trace.WithAttributes(attribute.String("db.system.name", "postgresql"), attribute.Bool("ready", true)))
			child.AddEvent("step.enqueued", trace.WithAttributes(attribute.String("step_name", "validate")))
			child.End()
			// Logs and metrics go to the same endpoint; Jaeger accepts and
			// discards them, so any drop below would be a real failure.
			NewLogger(config.Logs{Level: config.LevelInfo, Format: config.FormatText}, io.Discard, p).
				InfoContext(rootCtx, "task.initialized")
			counter, err := p.MeterProvider.Meter(ScopeName).Int64Counter("tasker.tasks.requests")
			require.NoError(t, err)
			counter.Add(ctx, 1)
			root.End()
			require.NoError(t, p.ForceFlush(ctx))

			traceID := root.SpanContext().TraceID().String()
			tr, err := j.WaitForSpans(ctx, traceID, 2)
			require.NoError(t, err)
			require.Len(t, tr.Spans, 2)
			r := tr.Span("task_initializer.create_and_enqueue_task_from_request")
			s := tr.Span("sql.get_step_readiness_status")
			require.NotNil(t, r)
			require.NotNil(t, s)

			require.Equal(t, "", r.ParentSpanID())
			require.Equal(t, root.SpanContext().SpanID().String(), r.SpanID)
			require.Equal(t, r.SpanID, s.ParentSpanID())
			require.Equal(t, "CHILD_OF", s.References[0].RefType)
			require.Equal(t, "0192d7a4-0000-7000-8000-00000000000a", r.Tags["correlation_id"])
			require.Equal(t, int64(2), r.Tags["attempt"])
			require.Equal(t, "postgresql", s.Tags["db.system.name"])
			require.Equal(t, true, s.Tags["ready"])
			require.Len(t, s.Events, 1)
			require.Equal(t, "step.enqueued", s.Events[0].Fields["event"])
			require.Equal(t, "validate", s.Events[0].Fields["step_name"])
			require.Positive(t, r.Duration)
			require.WithinDuration(t, time.Now(), r.StartTime, time.Minute)

			require.Equal(t, c.service, r.ServiceName)
			for _, key := range []string{"service.version", "service.instance.id", "host.name", "process.pid"} {
				require.Contains(t, r.ProcessTags, key)
			}
			require.Equal(t, "0.1.0", r.ProcessTags["service.version"])

			traces, err := j.Traces(ctx, c.service)
			require.NoError(t, err)
			require.Len(t, traces, 1)
			require.Equal(t, traceID, traces[0].TraceID)

			require.NoError(t, p.Shutdown(ctx))
			require.Zero(t, p.Dropped(), "%+v", p.Drops())
		})
	}
}
