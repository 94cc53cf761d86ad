package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// errAbandoned fails exports started after Shutdown ran out of time.
var errAbandoned = errors.New("export abandoned at shutdown")

// pipe counts one signal's items from the moment the SDK hands them to a
// processor until their export returns.
//
// The SDK's batch processors drop silently when their queue is full (they
// report only to the global error handler and logger, which a library must
// not take over). Admitting at most capacity items into the processor keeps
// its queue — which is exactly that large — from ever overflowing, so every
// drop happens here, where it is counted.
type pipe struct {
	capacity int64 // 0 (metrics): no admission control, only failures counted
	pending  atomic.Int64
	dropped  atomic.Int64
	state    *signalState // set when the signal is exported

	mu       sync.Mutex
	finished bool
}

// admit reserves room for one item, or counts it dropped. It is on the hot
// path (every span end and log record), hence atomics only.
func (p *pipe) admit() bool {
	if p.state.off.Load() {
		p.dropped.Add(1)
		return false
	}
	if p.pending.Add(1) > p.capacity {
		p.pending.Add(-1)
		p.dropped.Add(1)
		return false
	}
	return true
}

// done releases n items whose export returned err.
func (p *pipe) done(n int, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.capacity > 0 {
		p.pending.Add(-int64(n))
	}
	// After finish, these items were already counted as dropped.
	if err != nil && !p.finished {
		p.dropped.Add(int64(n))
	}
}

// finish counts whatever is still queued after Shutdown as dropped: the
// processor will never export it.
func (p *pipe) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.finished {
		return
	}
	p.finished = true
	p.dropped.Add(p.pending.Swap(0))
}

// signalState is what New knows about one exported signal at run time.
type signalState struct {
	name     string // traces, metrics or logs: the OpenTelemetry signal name
	endpoint string
	// off is set once the collector said it does not implement the signal:
	// nothing more is sent, so one refusal costs one warning, not one per
	// batch.
	off atomic.Bool
	// httpUnimplemented is set by statusWatch when an http/protobuf export
	// was answered 404, 405 or 501: the collector has no such route.
	httpUnimplemented atomic.Bool
}

// refused reports whether err (or the HTTP status behind it) says the
// collector does not accept this signal at all, as opposed to failing now.
func (s *signalState) refused(err error) bool {
	if err == nil || s == nil {
		return false
	}
	return status.Code(err) == codes.Unimplemented || s.httpUnimplemented.Load()
}

// statusWatch sees the HTTP status of every http/protobuf export: the
// exporters turn it into an error string, which is no way to tell "this
// collector has no /v1/logs" from "this collector is overloaded".
type statusWatch struct {
	next  http.RoundTripper
	state *signalState
}

func (w *statusWatch) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := w.next.RoundTrip(r)
	if err == nil {
		switch resp.StatusCode {
		case http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusNotImplemented:
			w.state.httpUnimplemented.Store(true)
		}
	}
	return resp, err
}

// settle accounts for one export of n items that returned err: counted,
// reported, and, when the collector refuses the signal outright, the signal
// turned off with one warning.
func settle(p *pipe, rep *reporter, sig signal, n int, err error) {
	p.done(n, err)
	if err != nil && p.state.refused(err) {
		if !p.state.off.Swap(true) {
			rep.refused(p.state, err)
		}
		return
	}
	rep.result(sig, n, p.state.endpoint, err)
}

// guard runs export with a context that is also cancelled when exports are
// abandoned, and refuses outright once they are.
func guard(ctx, abandon context.Context, export func(context.Context) error) error {
	if abandon.Err() != nil {
		return errAbandoned
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(abandon, cancel)
	defer stop()
	err := export(ctx)
	if err != nil && abandon.Err() != nil {
		return fmt.Errorf("%w: %w", errAbandoned, err)
	}
	return err
}

// boundedSpanProcessor admits sampled spans into the batch processor only
// while its queue has room.
type boundedSpanProcessor struct {
	sdktrace.SpanProcessor
	pipe *pipe
}

func (b *boundedSpanProcessor) OnEnd(s sdktrace.ReadOnlySpan) {
	// Unsampled (record-only) spans are never exported, so they take no room.
	if !s.SpanContext().IsSampled() {
		return
	}
	if b.pipe.admit() {
		b.SpanProcessor.OnEnd(s)
	}
}

// spanExporter counts and reports failed exports. It returns nil for them:
// an error would go to the global otel error handler, which by default
// prints every failure to stderr, once per batch.
type spanExporter struct {
	next    sdktrace.SpanExporter
	pipe    *pipe
	rep     *reporter
	abandon context.Context
}

func (e *spanExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	if len(spans) == 0 {
		return nil
	}
	err := guard(ctx, e.abandon, func(ctx context.Context) error { return e.next.ExportSpans(ctx, spans) })
	settle(e.pipe, e.rep, signalSpans, len(spans), err)
	return nil
}

func (e *spanExporter) Shutdown(ctx context.Context) error { return e.next.Shutdown(ctx) }

type boundedLogProcessor struct {
	sdklog.Processor
	pipe *pipe
}

func (b *boundedLogProcessor) OnEmit(ctx context.Context, r *sdklog.Record) error {
	if !b.pipe.admit() {
		return nil
	}
	return b.Processor.OnEmit(ctx, r)
}

// logExporter is spanExporter for log records.
type logExporter struct {
	next    sdklog.Exporter
	pipe    *pipe
	rep     *reporter
	abandon context.Context
}

func (e *logExporter) Export(ctx context.Context, records []sdklog.Record) error {
	if len(records) == 0 {
		return nil
	}
	err := guard(ctx, e.abandon, func(ctx context.Context) error { return e.next.Export(ctx, records) })
	settle(e.pipe, e.rep, signalLogs, len(records), err)
	return nil
}

func (e *logExporter) Shutdown(ctx context.Context) error   { return e.next.Shutdown(ctx) }
func (e *logExporter) ForceFlush(ctx context.Context) error { return e.next.ForceFlush(ctx) }

// metricExporter counts failed metric exports. Metrics need no admission
// control: the SDK aggregates in place, so a dead backend costs no memory.
type metricExporter struct {
	sdkmetric.Exporter
	pipe    *pipe
	rep     *reporter
	abandon context.Context
}

func (e *metricExporter) Export(ctx context.Context, rm *metricdata.ResourceMetrics) error {
	if e.pipe.state.off.Load() {
		e.pipe.dropped.Add(1)
		return nil
	}
	err := guard(ctx, e.abandon, func(ctx context.Context) error { return e.Exporter.Export(ctx, rm) })
	settle(e.pipe, e.rep, signalMetrics, 1, err)
	return nil
}

type signal int

const (
	signalSpans signal = iota
	signalLogs
	signalMetrics
	numSignals
)

func (s signal) String() string {
	switch s {
	case signalSpans:
		return "spans"
	case signalLogs:
		return "log_records"
	default:
		return "metric_exports"
	}
}

// reporter tells the operator that export is failing without flooding the
// log: one warning at the first failure, then at most one summary per
// interval while failures continue.
type reporter struct {
	log      *slog.Logger
	endpoint string
	every    time.Duration

	mu       sync.Mutex
	warned   bool
	lastLog  time.Time
	since    [numSignals]int64 // dropped since the last message
	total    [numSignals]int64
	failures int64 // failed exports since the last message
}

func newReporter(l *slog.Logger, endpoint string, every time.Duration) *reporter {
	return &reporter{log: l, endpoint: endpoint, every: every}
}

// refused tells, once per signal, that the collector does not accept it and
// that its export is off for the rest of the process.
func (r *reporter) refused(s *signalState, err error) {
	r.log.Warn("telemetry: the collector does not accept "+s.name+"; "+s.name+" export is off until restart",
		slog.String("signal", s.name), slog.String("endpoint", s.endpoint), slog.String("error", err.Error()),
		slog.String("hint", "point this signal elsewhere (OTEL_EXPORTER_OTLP_"+strings.ToUpper(s.name)+
			"_ENDPOINT) or turn it off (OTEL_"+strings.ToUpper(s.name)+"_EXPORTER=none)"))
}

// result accounts for one export; endpoint is where it went ("" for the
// console), named in the warning since signals may go to different places.
func (r *reporter) result(s signal, n int, endpoint string, err error) {
	if err == nil {
		return
	}
	r.mu.Lock()
	r.since[s] += int64(n)
	r.total[s] += int64(n)
	r.failures++
	now := time.Now()
	first := !r.warned
	if !first && now.Sub(r.lastLog) < r.every {
		r.mu.Unlock()
		return
	}
	r.warned = true
	r.lastLog = now
	if endpoint == "" {
		endpoint = r.endpoint
	}
	attrs := []any{slog.String("endpoint", endpoint), slog.String("error", err.Error())}
	for i := range numSignals {
		attrs = append(attrs, slog.Int64("dropped_"+i.String(), r.since[i]))
	}
	if !first {
		attrs = append(attrs, slog.Int64("failed_exports", r.failures))
		for i := range numSignals {
			attrs = append(attrs, slog.Int64("total_dropped_"+i.String(), r.total[i]))
		}
	}
	r.since = [numSignals]int64{}
	r.failures = 0
	r.mu.Unlock()

	// Logged outside the lock: the logger may feed the OTLP log pipeline,
	// whose exporter reports back here.
	if first {
		r.log.Warn("telemetry export failed; dropping telemetry until the backend recovers", attrs...)
		return
	}
	r.log.Warn("telemetry export still failing", attrs...)
}
