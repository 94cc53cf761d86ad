// Package tracing is Tasker's span and context-propagation layer: span names
// and attributes for the hot paths, SQL-function and queue spans (as a
// db.Observer), and W3C trace context plus baggage in queue message headers.
// It takes its providers from the caller; with none it is a no-op that still
// propagates context.
package tracing

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/taskerhq/tasker/internal/db"
	"github.com/taskerhq/tasker/internal/telemetry"
)

// ScopeName is the instrumentation scope of every Tasker span.
const ScopeName = "github.com/taskerhq/tasker"

// Attribute keys Tasker puts on its spans.
const (
	KeyCorrelationID = attribute.Key("correlation_id")
	KeyTaskUUID      = attribute.Key("task_uuid")
	KeyStepUUID      = attribute.Key("step_uuid")
	KeyStepName      = attribute.Key("step_name")
	KeyNamespace     = attribute.Key("namespace")
	KeyAttempt       = attribute.Key("attempt")
	KeyHandler       = attribute.Key("handler")
	KeyClaimMethod   = attribute.Key("claim_method")
	KeyWorkerID      = attribute.Key("worker_id")
	// KeyClaimBatchSize is how many messages the claim statement that took a
	// step asked for (event path) or returned (poll path).
	KeyClaimBatchSize = attribute.Key("claim_batch_size")
)

// BaggageCorrelationID is the baggage member that carries the correlation ID
// across processes.
const BaggageCorrelationID = "correlation_id"

// Tracer starts Tasker's spans.
type Tracer struct {
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
	// calls logs entry and exit of every SQL function call at
	// telemetry.LevelTrace; nil for none.
	calls *slog.Logger
}

// ComponentSQL is the log component of the SQL call trace, so
// TASKER_LOG_LEVEL_SQL=trace turns it on alone.
const ComponentSQL = "sql"

// WithCallLog returns a copy of t that also logs the entry and exit of every
// SQL function call (the engine's hot path) to l at telemetry.LevelTrace,
// under component "sql". When that level is off, which it is unless asked
// for, the check costs one level comparison and allocates nothing.
func (t *Tracer) WithCallLog(l *slog.Logger) *Tracer {
	c := *t
	if l != nil {
		c.calls = l.With(telemetry.ComponentKey, ComponentSQL)
	}
	return &c
}

// New returns a Tracer over tp (nil: no-op) propagating with prop (nil: W3C
// tracecontext + baggage).
func New(tp trace.TracerProvider, prop propagation.TextMapPropagator) *Tracer {
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	if prop == nil {
		prop = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	}
	return &Tracer{tracer: tp.Tracer(ScopeName), prop: prop}
}

// Noop is a Tracer that records nothing but still propagates.
func Noop() *Tracer { return New(nil, nil) }

// Start starts a span; the correlation ID from ctx's baggage, and the task
// a read is about (ForTask), are added to it.
func (t *Tracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	ctx, span := t.tracer.Start(ctx, name, opts...)
	if span.IsRecording() {
		if c := CorrelationID(ctx); c != "" {
			span.SetAttributes(KeyCorrelationID.String(c))
		}
		if id, ok := ctx.Value(taskKey{}).(uuid.UUID); ok {
			span.SetAttributes(KeyTaskUUID.String(id.String()))
		}
	}
	return ctx, span
}

type taskKey struct{}

// ForTask is called by a read once it knows which task it is reading: the
// span in ctx (an API request's server span) gets the task's correlation ID
// and UUID, and so does every span started from the returned context (the
// SQL calls that follow), so searching traces by correlation ID finds the
// reads of a task as well as its execution. A zero task or correlation ID is
// left out.
func ForTask(ctx context.Context, corr, task uuid.UUID) context.Context {
	span := trace.SpanFromContext(ctx)
	if span.IsRecording() {
		span.SetAttributes(IDs(corr, task, uuid.Nil, "", "")...)
	}
	ctx = WithCorrelationID(ctx, corr)
	if task != uuid.Nil {
		ctx = context.WithValue(ctx, taskKey{}, task)
	}
	return ctx
}

// Poll records one poller query as a span, after the fact and only when it
// found something (or failed). A poller runs every second or so on every
// orchestrator; a span per empty poll would be a trace per poll, burying the
// traces of tasks under thousands of one-span traces that say nothing. Their
// latency is still measured (tasker_sql_function_duration_milliseconds), and
// a poll that finds work, or fails, is traced with its real start and end.
// Sampling applies as to any root span.
func (t *Tracer) Poll(ctx context.Context, function string, start time.Time, found int, err error, attrs ...attribute.KeyValue) {
	if found == 0 && err == nil {
		return
	}
	end := time.Now()
	_, span := t.tracer.Start(ctx, "sql."+function, trace.WithTimestamp(start), trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(semconv.DBSystemNamePostgreSQL, semconv.DBOperationNameKey.String(function),
			semconv.DBStoredProcedureNameKey.String(function), semconv.DBResponseReturnedRowsKey.Int(found)),
		trace.WithAttributes(attrs...))
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		span.SetAttributes(semconv.ErrorTypeKey.String(errorType(err)))
	}
	span.End(trace.WithTimestamp(end))
}

// BatchMember records, after the fact, the part one item had in a batched
// SQL call: a span named for the single-item call under the item's own
// context, with the batch's start and end and its size. Each step keeps its
// own SQL span in its own trace, as before batching, instead of one batch
// span that would belong to one trace only.
func (t *Tracer) BatchMember(ctx context.Context, call db.Call, start, end time.Time, size int, err error) {
	if suppressed(ctx) || !trace.SpanFromContext(ctx).IsRecording() {
		return
	}
	attrs := []attribute.KeyValue{
		semconv.DBSystemNamePostgreSQL,
		semconv.DBOperationNameKey.String(call.Function),
		semconv.DBStoredProcedureNameKey.String(call.Function),
		semconv.DBOperationBatchSizeKey.Int(size),
	}
	kind := trace.SpanKindClient
	if call.Queue != "" && call.Messaging != "" {
		attrs = append(attrs, semconv.MessagingSystemKey.String("tasker_pgmq"),
			semconv.MessagingDestinationNameKey.String(call.Queue),
			semconv.MessagingOperationTypeKey.String(call.Messaging),
			semconv.MessagingOperationNameKey.String(call.Function))
		if call.Messaging == "send" {
			kind = trace.SpanKindProducer
		}
	}
	_, span := t.Start(ctx, "sql."+call.Function, trace.WithTimestamp(start), trace.WithSpanKind(kind),
		trace.WithAttributes(attrs...))
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		span.SetAttributes(semconv.ErrorTypeKey.String(errorType(err)))
	}
	span.End(trace.WithTimestamp(end))
}

// IDs returns the common attributes of a task or step span; zero values are skipped.
func IDs(corr, task, step uuid.UUID, namespace, stepName string) []attribute.KeyValue {
	kv := make([]attribute.KeyValue, 0, 5)
	if corr != uuid.Nil {
		kv = append(kv, KeyCorrelationID.String(corr.String()))
	}
	if task != uuid.Nil {
		kv = append(kv, KeyTaskUUID.String(task.String()))
	}
	if step != uuid.Nil {
		kv = append(kv, KeyStepUUID.String(step.String()))
	}
	if namespace != "" {
		kv = append(kv, KeyNamespace.String(namespace))
	}
	if stepName != "" {
		kv = append(kv, KeyStepName.String(stepName))
	}
	return kv
}

// End finishes span, recording err (status Error and error.type) if non-nil.
func End(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		span.SetAttributes(semconv.ErrorTypeKey.String(errorType(err)))
	}
	span.End()
}

// Fail marks span as failed with an explicit error type (a handler failure
// is not a Go error).
func Fail(span trace.Span, errType, message string) {
	span.SetStatus(codes.Error, message)
	span.SetAttributes(semconv.ErrorTypeKey.String(errType))
}

func errorType(err error) string {
	var typed interface{ ErrorType() string }
	if errors.As(err, &typed) {
		return typed.ErrorType()
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return "_OTHER"
}

// WithCorrelationID puts the correlation ID into ctx's baggage, so it travels
// with the trace context into every message and onto every span.
func WithCorrelationID(ctx context.Context, id uuid.UUID) context.Context {
	if id == uuid.Nil {
		return ctx
	}
	m, err := baggage.NewMemberRaw(BaggageCorrelationID, id.String())
	if err != nil {
		return ctx
	}
	b, err := baggage.FromContext(ctx).SetMember(m)
	if err != nil {
		return ctx
	}
	return baggage.ContextWithBaggage(ctx, b)
}

// CorrelationID returns the correlation ID in ctx's baggage, or "".
func CorrelationID(ctx context.Context) string {
	return baggage.FromContext(ctx).Member(BaggageCorrelationID).Value()
}

// Inject returns the headers that carry ctx's trace context and baggage.
func (t *Tracer) Inject(ctx context.Context) map[string]string {
	h := map[string]string{}
	t.prop.Inject(ctx, propagation.MapCarrier(h))
	return h
}

// Extract returns ctx carrying the trace context and baggage of headers.
func (t *Tracer) Extract(ctx context.Context, headers map[string]string) context.Context {
	if len(headers) == 0 {
		return ctx
	}
	return t.prop.Extract(ctx, propagation.MapCarrier(headers))
}

// Propagator is the propagator in use (for HTTP middleware).
func (t *Tracer) Propagator() propagation.TextMapPropagator { return t.prop }

// StartCall implements db.Observer: one client span per SQL function call,
// with OpenTelemetry's database conventions, and messaging conventions for
// queue operations.
func (t *Tracer) StartCall(ctx context.Context, call db.Call) (context.Context, func(error)) {
	if t.calls != nil && t.calls.Enabled(ctx, telemetry.LevelTrace) {
		return t.logCall(ctx, call)
	}
	return t.startCall(ctx, call)
}

// logCall is StartCall with TRACE records around the call; it allocates,
// which is why it runs only when that level is on.
func (t *Tracer) logCall(ctx context.Context, call db.Call) (context.Context, func(error)) {
	start := time.Now()
	t.calls.LogAttrs(ctx, telemetry.LevelTrace, "sql call", slog.String("operation", call.Function),
		slog.String("queue", call.Queue), slog.String("phase", "enter"))
	ctx, done := t.startCall(ctx, call)
	return ctx, func(err error) {
		done(err)
		attrs := []slog.Attr{slog.String("operation", call.Function), slog.Float64("duration_ms", float64(time.Since(start))/float64(time.Millisecond)),
			slog.String("queue", call.Queue), slog.String("phase", "exit")}
		if err != nil {
			attrs = append(attrs, slog.String("error", err.Error()))
		}
		t.calls.LogAttrs(ctx, telemetry.LevelTrace, "sql call", attrs...)
	}
}

func (t *Tracer) startCall(ctx context.Context, call db.Call) (context.Context, func(error)) {
	if suppressed(ctx) {
		return ctx, nopDone
	}
	name := "sql." + call.Function
	attrs := []attribute.KeyValue{
		semconv.DBSystemNamePostgreSQL,
		semconv.DBOperationNameKey.String(call.Function),
		semconv.DBStoredProcedureNameKey.String(call.Function),
	}
	kind := trace.SpanKindClient
	if call.Queue != "" && call.Messaging != "" {
		attrs = append(attrs,
			semconv.MessagingSystemKey.String("tasker_pgmq"),
			semconv.MessagingDestinationNameKey.String(call.Queue),
			semconv.MessagingOperationTypeKey.String(call.Messaging),
			semconv.MessagingOperationNameKey.String(call.Function),
		)
		switch call.Messaging {
		case "send":
			kind = trace.SpanKindProducer
		case "receive":
			kind = trace.SpanKindConsumer
		}
	}
	ctx, span := t.Start(ctx, name, trace.WithSpanKind(kind), trace.WithAttributes(attrs...))
	return ctx, func(err error) { End(span, err) }
}

var _ db.Observer = (*Tracer)(nil)

func nopDone(error) {}

type suppressKey struct{}

// Suppress marks ctx so SQL-function calls made with it start no span: the
// pollers' periodic queries would otherwise each start a trace of their own.
func Suppress(ctx context.Context) context.Context {
	return context.WithValue(ctx, suppressKey{}, true)
}

func suppressed(ctx context.Context) bool { v, _ := ctx.Value(suppressKey{}).(bool); return v }

// TraceID returns the trace ID in headers, or "".
func (t *Tracer) TraceID(headers map[string]string) string {
	sc := trace.SpanContextFromContext(t.Extract(context.Background(), headers))
	if !sc.TraceID().IsValid() {
		return ""
	}
	return sc.TraceID().String()
}

// Rebase returns dst carrying src's span and baggage: work that must outlive
// src's cancellation (a handler draining at shutdown) keeps its trace.
func Rebase(dst, src context.Context) context.Context {
	dst = trace.ContextWithSpan(dst, trace.SpanFromContext(src))
	return baggage.ContextWithBaggage(dst, baggage.FromContext(src))
}

// Traceparent returns the W3C traceparent of ctx's span, or "".
func (t *Tracer) Traceparent(ctx context.Context) string {
	h := map[string]string{}
	propagation.TraceContext{}.Inject(ctx, propagation.MapCarrier(h))
	return h["traceparent"]
}

// LinkTo returns a link to the span a traceparent names; ok is false when it names none.
func LinkTo(traceparent string) (trace.Link, bool) {
	if traceparent == "" {
		return trace.Link{}, false
	}
	ctx := propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier{"traceparent": traceparent})
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return trace.Link{}, false
	}
	return trace.Link{SpanContext: sc, Attributes: []attribute.KeyValue{attribute.String("link.reason", "previous_attempt")}}, true
}
