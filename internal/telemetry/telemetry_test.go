package telemetry

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"

	"github.com/taskerhq/tasker/internal/config"
)

// syncBuffer is a bytes.Buffer safe for a logger writing from export
// goroutines while the test reads.
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

const (
	remoteTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	remoteSpanID  = "00f067aa0ba902b7"
)

// remoteParent returns a context carrying a remote span context extracted
// from a traceparent header with the given sampled flag, the way a worker
// receives it from a queue message.
func remoteParent(t *testing.T, prop propagation.TextMapPropagator, sampled bool) context.Context {
	t.Helper()
	flags := "00"
	if sampled {
		flags = "01"
	}
	carrier := propagation.MapCarrier{"traceparent": "00-" + remoteTraceID + "-" + remoteSpanID + "-" + flags}
	ctx := prop.Extract(context.Background(), carrier)
	sc := trace.SpanContextFromContext(ctx)
	require.True(t, sc.IsValid() && sc.IsRemote())
	require.Equal(t, sampled, sc.IsSampled())
	return ctx
}

func TestSamplerStrategies(t *testing.T) {
	disabled, err := New(context.Background(), config.Default().Telemetry, "")
	require.NoError(t, err)
	prop := disabled.Propagator

	const none, unsampled, sampled = 0, 1, 2
	cases := []struct {
		strategy string
		ratio    float64
		parent   int
		want     bool
	}{
		{config.StrategyParentBasedAlwaysOn, 1, none, true},
		{config.StrategyParentBasedAlwaysOn, 1, sampled, true},
		{config.StrategyParentBasedAlwaysOn, 1, unsampled, false},
		{config.StrategyParentBasedTraceIDRatio, 0, none, false},
		{config.StrategyParentBasedTraceIDRatio, 0, sampled, true},
		{config.StrategyParentBasedTraceIDRatio, 1, none, true},
		{config.StrategyParentBasedTraceIDRatio, 1, unsampled, false},
		{config.StrategyTraceIDRatio, 0, none, false},
		{config.StrategyTraceIDRatio, 0, sampled, false}, // not parent-based: ignores the parent
		{config.StrategyTraceIDRatio, 1, unsampled, true},
		{config.StrategyAlwaysOff, 1, none, false},
		{config.StrategyAlwaysOff, 1, sampled, false},
	}
	for _, c := range cases {
		name := c.strategy + "/ratio=" + map[float64]string{0: "0", 1: "1"}[c.ratio] +
			"/parent=" + []string{"none", "unsampled", "sampled"}[c.parent]
		t.Run(name, func(t *testing.T) {
			s, err := newSampler(config.Sampling{Strategy: c.strategy, Ratio: c.ratio})
			require.NoError(t, err)
			tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(s))
			t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
			ctx := context.Background()
			if c.parent != none {
				ctx = remoteParent(t, prop, c.parent == sampled)
			}
			_, span := tp.Tracer("test").Start(ctx, "op")
			defer span.End()
			require.Equal(t, c.want, span.SpanContext().IsSampled())
			if c.parent != none {
				require.Equal(t, remoteTraceID, span.SpanContext().TraceID().String(), "child of the remote parent")
			}
		})
	}

	t.Run("ratio 0 samples nothing, 0.5 about half", func(t *testing.T) {
		for _, c := range []struct {
			ratio    float64
			min, max int
		}{{0, 0, 0}, {0.5, 350, 650}, {1, 1000, 1000}} {
			s, err := newSampler(config.Sampling{Strategy: config.StrategyTraceIDRatio, Ratio: c.ratio})
			require.NoError(t, err)
			tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(s))
			n := 0
			for range 1000 {
				_, span := tp.Tracer("test").Start(context.Background(), "op")
				if span.SpanContext().IsSampled() {
					n++
				}
				span.End()
			}
			require.GreaterOrEqual(t, n, c.min, "ratio %v", c.ratio)
			require.LessOrEqual(t, n, c.max, "ratio %v", c.ratio)
			require.NoError(t, tp.Shutdown(context.Background()))
		}
	})

	_, err = newSampler(config.Sampling{Strategy: "sometimes"})
	require.Error(t, err)
}

// The strategy reaches the tracer provider New builds, not just newSampler.
func TestNewUsesConfiguredSampler(t *testing.T) {
	cfg := enabledConfig(closedPort(t), config.ProtocolGRPC, 200*time.Millisecond, 8)
	cfg.Sampling = config.Sampling{Strategy: config.StrategyParentBasedTraceIDRatio, Ratio: 0}
	p, err := New(context.Background(), cfg, "", WithLogger(slog.New(slog.DiscardHandler)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	tracer := p.TracerProvider.Tracer("test")

	_, root := tracer.Start(context.Background(), "root")
	root.End()
	require.False(t, root.SpanContext().IsSampled(), "ratio 0 samples no new trace")
	_, child := tracer.Start(remoteParent(t, p.Propagator, true), "child")
	child.End()
	require.True(t, child.SpanContext().IsSampled(), "a sampled remote parent is honoured")
	_, child = tracer.Start(remoteParent(t, p.Propagator, false), "child")
	child.End()
	require.False(t, child.SpanContext().IsSampled())
}

func TestDisabledIsNoopButPropagates(t *testing.T) {
	leaks := goleak.IgnoreCurrent()
	p, err := New(context.Background(), config.Default().Telemetry, "tasker-worker")
	require.NoError(t, err)
	require.False(t, p.Enabled())

	ctx := remoteParent(t, p.Propagator, true)
	member, err := baggage.NewMember("correlation_id", "0192d7a4-0000-7000-8000-000000000001")
	require.NoError(t, err)
	bag, err := baggage.New(member)
	require.NoError(t, err)
	ctx = baggage.ContextWithBaggage(ctx, bag)

	ctx, span := p.TracerProvider.Tracer("test").Start(ctx, "op")
	require.False(t, span.IsRecording())
	span.End()
	out := propagation.MapCarrier{}
	p.Propagator.Inject(ctx, out)
	// The trace continues through a process that exports nothing.
	require.Equal(t, "00-"+remoteTraceID+"-"+remoteSpanID+"-01", out["traceparent"])
	require.Equal(t, "correlation_id=0192d7a4-0000-7000-8000-000000000001", out["baggage"])

	counter, err := p.MeterProvider.Meter("test").Int64Counter("c")
	require.NoError(t, err)
	counter.Add(ctx, 1)
	require.NoError(t, p.ForceFlush(ctx))
	require.NoError(t, p.Shutdown(ctx))
	require.Zero(t, p.Dropped())
	goleak.VerifyNone(t, leaks)
}

func TestExportAllSignals(t *testing.T) {
	r := startReceiver(t, 0)
	ctx := context.Background()
	p, err := New(ctx, enabledConfig(r.addr, config.ProtocolGRPC, 5*time.Second, 512), "tasker-orchestration")
	require.NoError(t, err)
	require.True(t, p.Enabled())

	spanCtx, span := p.TracerProvider.Tracer(ScopeName).Start(ctx, "task_initializer.create_and_enqueue_task_from_request")
	logger := NewLogger(config.Logs{Level: config.LevelInfo, Format: config.FormatJSON}, io.Discard, p)
	logger.InfoContext(spanCtx, "task.initialized", "correlation_id", "c-1")
	logger.Debug("below the level: neither printed nor exported")
	span.End()
	counter, err := p.MeterProvider.Meter(ScopeName).Int64Counter("tasker.tasks.requests")
	require.NoError(t, err)
	counter.Add(ctx, 3)

	require.NoError(t, p.ForceFlush(ctx))
	require.Equal(t, int64(1), r.spans.Load())
	require.Equal(t, int64(1), r.logRecords.Load())
	require.GreaterOrEqual(t, r.metricExports.Load(), int64(1))
	logs := r.receivedLogs()
	require.Len(t, logs, 1)
	require.Equal(t, "task.initialized", logs[0].Body.GetStringValue())
	require.Equal(t, span.SpanContext().TraceID().String(), traceIDHex(logs[0].TraceId), "OTLP log records carry the span context")

	require.NoError(t, p.Shutdown(ctx))
	require.Zero(t, p.Dropped())
	require.NoError(t, p.Shutdown(ctx), "Shutdown is idempotent")
}

// The http/protobuf exporters keep connections alive between exports; after
// Shutdown none of them (nor their goroutines) may remain.
func TestExportHTTPLeavesNoConnections(t *testing.T) {
	h := startHTTPReceiver(t, 0)
	// The receiver keeps running through the leak check: stopping it first
	// would close the connections from its side and hide a leak on ours.
	leaks := goleak.IgnoreCurrent()
	ctx := context.Background()
	p, err := New(ctx, enabledConfig(h.addr, config.ProtocolHTTPProtobuf, 5*time.Second, 512), "")
	require.NoError(t, err)
	_, span := p.TracerProvider.Tracer("test").Start(ctx, "op")
	span.End()
	NewLogger(config.Logs{Level: config.LevelInfo, Format: config.FormatText}, io.Discard, p).Info("hello")
	counter, err := p.MeterProvider.Meter("test").Int64Counter("c")
	require.NoError(t, err)
	counter.Add(ctx, 1)
	require.NoError(t, p.ForceFlush(ctx))
	require.Equal(t, int64(1), h.count("/v1/traces"))
	require.Equal(t, int64(1), h.count("/v1/logs"))
	require.GreaterOrEqual(t, h.count("/v1/metrics"), int64(1))
	require.NoError(t, p.Shutdown(ctx))
	require.Zero(t, p.Dropped())
	goleak.VerifyNone(t, leaks)
}

func traceIDHex(b []byte) string {
	var id trace.TraceID
	copy(id[:], b)
	return id.String()
}

// A collector that refuses connections, accepts and never answers, or answers
// too slowly must not block the engine or fail it; what cannot be sent is
// counted, reported once, and Shutdown still returns in time, leaving no
// goroutines behind.
func TestFailureIsolation(t *testing.T) {
	const (
		timeout = time.Second
		batch   = 10
		nSpans  = 1000
		nLogs   = 100
	)
	backends := []struct {
		name  string
		start func(t *testing.T) (addr string, stop func())
	}{
		{"refused", func(t *testing.T) (string, func()) { return closedPort(t), func() {} }},
		{"black hole", func(t *testing.T) (string, func()) { b := startBlackHole(t); return b.addr, b.stop }},
		{"slow", func(t *testing.T) (string, func()) { r := startReceiver(t, time.Minute); return r.addr, r.stop }},
		{"slow http", func(t *testing.T) (string, func()) { h := startHTTPReceiver(t, time.Minute); return h.addr, h.stop }},
	}
	for _, proto := range []string{config.ProtocolGRPC, config.ProtocolHTTPProtobuf} {
		for _, b := range backends {
			// Each slow receiver speaks one protocol.
			if (b.name == "slow" && proto != config.ProtocolGRPC) || (b.name == "slow http" && proto != config.ProtocolHTTPProtobuf) {
				continue
			}
			t.Run(proto+"/"+b.name, func(t *testing.T) {
				leaks := goleak.IgnoreCurrent()
				addr, stopBackend := b.start(t)
				var warnings syncBuffer
				cfg := enabledConfig(addr, proto, timeout, batch)
				ctx := context.Background()
				p, err := New(ctx, cfg, "", WithLogger(slog.New(slog.NewTextHandler(&warnings, nil))))
				require.NoError(t, err, "an unusable endpoint is not New's problem")

				logger := NewLogger(config.Logs{Level: config.LevelInfo, Format: config.FormatJSON}, io.Discard, p)
				tracer := p.TracerProvider.Tracer("test")
				counter, err := p.MeterProvider.Meter("test").Int64Counter("test.count")
				require.NoError(t, err)

				begin := time.Now()
				for range nSpans {
					_, span := tracer.Start(ctx, "op")
					span.End()
				}
				for i := range nLogs {
					logger.Info("record", "i", i)
				}
				counter.Add(ctx, 1)
				// Blocking on the backend even once would take the export
				// timeout; emitting everything takes milliseconds.
				require.Less(t, time.Since(begin), timeout/2, "emitting must not wait for the backend")

				begin = time.Now()
				_ = p.Shutdown(ctx) // may report the deadline; what matters is when it returns
				require.Less(t, time.Since(begin), timeout+500*time.Millisecond, "Shutdown is bounded by the OTLP timeout")

				d := p.Drops()
				require.Equal(t, int64(nSpans), d.Spans, "every span is accounted for as dropped")
				require.Equal(t, int64(nLogs), d.LogRecords)
				require.GreaterOrEqual(t, d.MetricExports, int64(1))
				require.Equal(t, d.Spans+d.LogRecords+d.MetricExports, p.Dropped())
				out := warnings.String()
				require.Equal(t, 1, strings.Count(out, "telemetry export failed"), out)
				require.Zero(t, strings.Count(out, "still failing"), "the summary waits a minute")

				stopBackend()
				goleak.VerifyNone(t, leaks)
			})
		}
	}
}

func TestShutdownBoundedByContext(t *testing.T) {
	leaks := goleak.IgnoreCurrent()
	b := startBlackHole(t)
	p, err := New(context.Background(), enabledConfig(b.addr, config.ProtocolGRPC, time.Minute, 10), "",
		WithLogger(slog.New(slog.DiscardHandler)))
	require.NoError(t, err)
	for range 50 {
		_, span := p.TracerProvider.Tracer("test").Start(context.Background(), "op")
		span.End()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	begin := time.Now()
	_ = p.Shutdown(ctx)
	require.Less(t, time.Since(begin), 800*time.Millisecond)
	require.Equal(t, int64(50), p.Drops().Spans)
	b.stop()
	goleak.VerifyNone(t, leaks)
}

func TestFailureSummary(t *testing.T) {
	port := closedPort(t)
	var warnings syncBuffer
	cfg := enabledConfig(port, config.ProtocolGRPC, 200*time.Millisecond, 10)
	cfg.Metrics.Enabled = false
	p, err := New(context.Background(), cfg, "",
		WithLogger(slog.New(slog.NewTextHandler(&warnings, nil))), withSummaryEvery(0))
	require.NoError(t, err)
	for range 3 {
		_, span := p.TracerProvider.Tracer("test").Start(context.Background(), "op")
		span.End()
		_ = p.ForceFlush(context.Background())
	}
	_ = p.Shutdown(context.Background())
	out := warnings.String()
	require.Equal(t, 1, strings.Count(out, "telemetry export failed"), out)
	require.Equal(t, 2, strings.Count(out, "telemetry export still failing"), out)
	require.Contains(t, out, "total_dropped_spans=3")
	require.Equal(t, int64(3), p.Drops().Spans)
}

func TestNewRejectsBadConfig(t *testing.T) {
	cfg := enabledConfig("127.0.0.1:4317", config.ProtocolGRPC, time.Second, 10)
	cfg.OTLP.Endpoint = "127.0.0.1:4317"
	_, err := New(context.Background(), cfg, "")
	require.ErrorContains(t, err, "is not an http:// or https:// URL")

	cfg = enabledConfig("127.0.0.1:4317", "udp", time.Second, 10)
	_, err = New(context.Background(), cfg, "")
	require.ErrorContains(t, err, `unknown otlp protocol "udp"`)
}

func TestParseEndpoint(t *testing.T) {
	for raw, want := range map[string]endpoint{
		"http://localhost:4317":          {hostPort: "localhost:4317", insecure: true},
		"https://api.honeycomb.io":       {hostPort: "api.honeycomb.io:443"},
		"http://collector/otlp/":         {hostPort: "collector:80", insecure: true, path: "/otlp"},
		"http://[::1]:4318":              {hostPort: "[::1]:4318", insecure: true},
		"https://tempo.example:443/base": {hostPort: "tempo.example:443", path: "/base"},
	} {
		got, err := parseEndpoint(raw)
		require.NoError(t, err, raw)
		require.Equal(t, want, got, raw)
	}
}
