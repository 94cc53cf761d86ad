package tracing_test

import (
	"context"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskerhq/tasker/internal/tracing"
)

// FuzzTraceHeaders feeds arbitrary traceparent, tracestate and baggage
// headers (from API callers and queue messages) to extraction. Nothing may
// panic; a trace context that is accepted is injected back with the same
// trace and span IDs; TraceID and LinkTo agree with extraction.
// Seeds: testdata/fuzz/FuzzTraceHeaders.
func FuzzTraceHeaders(f *testing.F) {
	f.Add("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "congo=t61rcWkgMzE", "k=v")
	f.Add("00-00000000000000000000000000000000-00f067aa0ba902b7-01", "", "")
	f.Add("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "a=1,b=2", "k=v;p=1,%zz")
	f.Add("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-extra", strings.Repeat("a=b,", 40), strings.Repeat("k=v,", 200))
	prop := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	tr := tracing.New(nil, prop)
	f.Fuzz(func(t *testing.T, traceparent, tracestate, baggage string) {
		headers := map[string]string{"traceparent": traceparent, "tracestate": tracestate, "baggage": baggage}
		ctx := tr.Extract(context.Background(), headers)
		sc := trace.SpanContextFromContext(ctx)
		id := tr.TraceID(headers)
		if sc.TraceID().IsValid() != (id != "") || (id != "" && id != sc.TraceID().String()) {
			t.Fatalf("TraceID %q disagrees with extraction %s", id, sc.TraceID())
		}
		link, ok := tracing.LinkTo(traceparent)
		if ok != sc.IsValid() || (ok && link.SpanContext.TraceID() != sc.TraceID()) {
			t.Fatalf("LinkTo(%q) = %v, extraction valid %v", traceparent, ok, sc.IsValid())
		}
		if !sc.IsValid() {
			return
		}
		out := tr.Inject(ctx)
		back := trace.SpanContextFromContext(tr.Extract(context.Background(), out))
		if back.TraceID() != sc.TraceID() || back.SpanID() != sc.SpanID() || back.TraceFlags() != sc.TraceFlags() {
			t.Fatalf("trace context changed through injection: %q → %v", traceparent, out)
		}
	})
}
