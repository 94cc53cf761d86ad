package telemetry

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"

	"github.com/taskerhq/tasker/internal/config"
)

// emitAll makes one span, one log record and one counter increment, then
// flushes, so every exported signal has one export to make.
func emitAll(t *testing.T, p *Providers, i int) {
	t.Helper()
	ctx := context.Background()
	_, span := p.TracerProvider.Tracer(ScopeName).Start(ctx, fmt.Sprintf("op-%d", i))
	span.End()
	NewLogger(config.Logs{Level: config.LevelInfo, Format: config.FormatText}, io.Discard, p).Info("record", "i", i)
	counter, err := p.MeterProvider.Meter(ScopeName).Int64Counter("tasker.test.count")
	require.NoError(t, err)
	counter.Add(ctx, 1)
	_ = p.ForceFlush(ctx)
}

// A collector that accepts only traces (Jaeger) answers the other signals
// Unimplemented (gRPC) or 404 (http/protobuf): each refused signal is turned
// off with one warning naming it, traces keep flowing, and nothing else is
// logged however many batches follow.
func TestRefusedSignalIsDisabledWithOneWarning(t *testing.T) {
	for _, proto := range []string{config.ProtocolGRPC, config.ProtocolHTTPProtobuf} {
		t.Run(proto, func(t *testing.T) {
			var addr string
			var spansReceived func() int64
			if proto == config.ProtocolGRPC {
				r := startReceiverFor(t, 0, true, false, false)
				addr, spansReceived = r.addr, r.spans.Load
			} else {
				h := startHTTPReceiver(t, 0, "/v1/metrics", "/v1/logs")
				addr, spansReceived = h.addr, func() int64 { return h.count("/v1/traces") }
			}
			var warnings syncBuffer
			p, err := New(context.Background(), enabledConfig(addr, proto, 5*time.Second, 16), "",
				WithLogger(slog.New(slog.NewTextHandler(&warnings, nil))), withSummaryEvery(0))
			require.NoError(t, err)
			const rounds = 5
			for i := range rounds {
				emitAll(t, p, i)
			}
			require.NoError(t, p.Shutdown(context.Background()))

			out := warnings.String()
			require.Equal(t, 1, strings.Count(out, "does not accept metrics"), out)
			require.Equal(t, 1, strings.Count(out, "does not accept logs"), out)
			require.Zero(t, strings.Count(out, "does not accept traces"), out)
			require.Equal(t, 2, strings.Count(out, "level=WARN"), "nothing but the two warnings: %s", out)
			require.Contains(t, out, "signal=metrics")
			require.Contains(t, out, "OTEL_METRICS_EXPORTER=none")
			// One span per flush: the gRPC receiver counts spans, the HTTP one requests.
			require.Equal(t, int64(rounds), spansReceived(), "traces still exported")
			d := p.Drops()
			require.Zero(t, d.Spans)
			require.Equal(t, int64(rounds), d.LogRecords, "refused and later records are counted as dropped")
			require.GreaterOrEqual(t, d.MetricExports, int64(rounds))
		})
	}
}

// Each signal can go to its own exporter: traces over OTLP, logs to the
// console, metrics nowhere (OTLP); /metrics readers are kept either way.
func TestPerSignalExporters(t *testing.T) {
	r := startReceiver(t, 0)
	cfg := enabledConfig(r.addr, config.ProtocolGRPC, 5*time.Second, 16)
	cfg.Metrics.Exporter = config.ExporterNone
	cfg.Logs.Exporter = config.ExporterConsole
	var console syncBuffer
	p, err := New(context.Background(), cfg, "per-signal", WithConsoleWriter(&console))
	require.NoError(t, err)
	emitAll(t, p, 1)
	require.NoError(t, p.Shutdown(context.Background()))

	require.Equal(t, int64(1), r.spans.Load())
	require.Zero(t, r.logRecords.Load(), "logs went to the console, not the collector")
	require.Zero(t, r.metricExports.Load(), "metrics exporter none")
	var rec struct {
		Body     struct{ Value string }
		Resource []struct{ Key string }
	}
	line, _, _ := strings.Cut(console.String(), "\n")
	require.NoError(t, json.Unmarshal([]byte(line), &rec), console.String())
	require.Equal(t, "record", rec.Body.Value)

	// Console traces, nothing else.
	cfg.Traces.Exporter = config.ExporterConsole
	cfg.Logs.Exporter = config.ExporterNone
	var traces syncBuffer
	p, err = New(context.Background(), cfg, "console", WithConsoleWriter(&traces))
	require.NoError(t, err)
	require.Nil(t, NewLogger(config.Logs{Level: config.LevelInfo}, io.Discard, p).Handler().(*handler).otel, "logs exporter none: no bridge")
	emitAll(t, p, 2)
	require.NoError(t, p.Shutdown(context.Background()))
	require.Contains(t, traces.String(), `"Name":"op-2"`)
	require.NotContains(t, traces.String(), "record")

	// All three none: nothing is exported, and the providers say so.
	cfg.Traces.Exporter = config.ExporterNone
	p, err = New(context.Background(), cfg, "")
	require.NoError(t, err)
	require.False(t, p.Enabled())
	_, span := p.TracerProvider.Tracer(ScopeName).Start(context.Background(), "op")
	require.False(t, span.IsRecording())
}

// A per-signal endpoint is used as given; the others keep the shared one
// with /v1/<signal> appended.
func TestPerSignalEndpoints(t *testing.T) {
	shared := startHTTPReceiver(t, 0)
	own := startHTTPReceiver(t, 0)
	grpcTraces := startReceiver(t, 0)
	cfg := enabledConfig(shared.addr, config.ProtocolHTTPProtobuf, 5*time.Second, 16)
	cfg.OTLP.Endpoint = "http://" + shared.addr + "/base"
	cfg.OTLP.LogsEndpoint = "http://" + own.addr + "/custom/logs"
	cfg.OTLP.TracesEndpoint = "http://" + grpcTraces.addr
	cfg.OTLP.TracesProtocol = config.ProtocolGRPC
	p, err := New(context.Background(), cfg, "")
	require.NoError(t, err)
	emitAll(t, p, 1)
	require.NoError(t, p.Shutdown(context.Background()))
	require.Zero(t, p.Dropped(), "%+v", p.Drops())

	require.Equal(t, int64(1), grpcTraces.spans.Load(), "traces over gRPC to their own endpoint")
	require.Equal(t, int64(1), own.count("/custom/logs"))
	require.GreaterOrEqual(t, shared.count("/base/v1/metrics"), int64(1))
	require.Zero(t, shared.count("/base/v1/logs")+shared.count("/base/v1/traces"))
}

// Configured resource attributes (OTEL_RESOURCE_ATTRIBUTES) reach the
// collector; Tasker's own service attributes cannot be displaced.
func TestResourceAttributes(t *testing.T) {
	r := startReceiver(t, 0)
	cfg := enabledConfig(r.addr, config.ProtocolGRPC, 5*time.Second, 16)
	cfg.ResourceAttributes = map[string]string{"deployment.environment.name": "staging", "service.instance.id": "pod-7"}
	p, err := New(context.Background(), cfg, "tasker-worker")
	require.NoError(t, err)
	emitAll(t, p, 1)
	require.NoError(t, p.Shutdown(context.Background()))
	attrs := r.resourceAttrs()
	require.Equal(t, "staging", attrs["deployment.environment.name"])
	require.Equal(t, "pod-7", attrs["service.instance.id"])
	require.Equal(t, "tasker-worker", attrs["service.name"])
}

// The span limits of telemetry.spans reach the SDK: a span over them
// arrives truncated, with what was cut counted on it.
func TestSpanLimitsApplied(t *testing.T) {
	r := startReceiver(t, 0)
	cfg := enabledConfig(r.addr, config.ProtocolGRPC, 5*time.Second, 16)
	cfg.Spans = config.Spans{MaxAttributes: 3, MaxEvents: 2, MaxLinks: 1}
	p, err := New(context.Background(), cfg, "")
	require.NoError(t, err)
	tracer := p.TracerProvider.Tracer(ScopeName)
	var links []trace.Link
	for range 3 {
		_, s := tracer.Start(context.Background(), "linked")
		s.End()
		links = append(links, trace.Link{SpanContext: s.SpanContext()})
	}
	_, span := tracer.Start(context.Background(), "over-limit", trace.WithLinks(links...))
	for i := range 10 {
		span.SetAttributes(attribute.Int(fmt.Sprintf("a%d", i), i))
		span.AddEvent(fmt.Sprintf("e%d", i))
	}
	span.End()
	require.NoError(t, p.Shutdown(context.Background()))

	var got bool
	for _, s := range r.receivedSpans() {
		if s.Name != "over-limit" {
			continue
		}
		got = true
		require.Len(t, s.Attributes, 3)
		require.Equal(t, uint32(7), s.DroppedAttributesCount)
		require.Len(t, s.Events, 2)
		require.Equal(t, uint32(8), s.DroppedEventsCount)
		require.Len(t, s.Links, 1)
		require.Equal(t, uint32(2), s.DroppedLinksCount)
	}
	require.True(t, got, "the over-limit span was exported")
}

// The default shutdown timeout bounds Ctrl-C against a collector that has
// gone silent, however long a single export may take.
func TestShutdownUsesShutdownTimeout(t *testing.T) {
	require.LessOrEqual(t, time.Duration(config.Default().Telemetry.OTLP.ShutdownTimeout), 2*time.Second)
	leaks := goleak.IgnoreCurrent()
	b := startBlackHole(t)
	cfg := enabledConfig(b.addr, config.ProtocolGRPC, time.Minute, 10)
	cfg.OTLP.ShutdownTimeout = config.Duration(300 * time.Millisecond)
	p, err := New(context.Background(), cfg, "", WithLogger(slog.New(slog.DiscardHandler)))
	require.NoError(t, err)
	for range 20 {
		_, span := p.TracerProvider.Tracer("test").Start(context.Background(), "op")
		span.End()
	}
	begin := time.Now()
	_ = p.Shutdown(context.Background())
	require.Less(t, time.Since(begin), 10*time.Second, "bounded by shutdown_timeout_seconds, not the one-minute export timeout")
	require.Equal(t, int64(20), p.Drops().Spans)
	b.stop()
	goleak.VerifyNone(t, leaks)
}
