package foreign

import (
	"context"
	"fmt"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskerhq/tasker/handler"
	"github.com/taskerhq/tasker/internal/tracing"
)

// refs is the handle table: what the foreign runtime's opaque numbers stand
// for. A step handle lives while the worker waits for the step; a span
// handle until EndSpan, or until its step is answered (a span the runtime
// left open is then ended, marked unfinished).
type refs struct {
	tr   *tracing.Tracer
	mu   sync.Mutex
	last uint64
	m    map[uint64]*ref
}

type ref struct {
	ctx  context.Context
	span trace.Span // nil for a step
	// step is the handle of the step this ref belongs to (itself for a
	// step, 0 for a span outside any step).
	step uint64
	// On steps only:
	sc      *handler.StepContext
	name    string // handler name
	pending *pending
	spans   map[uint64]struct{}
	exec    uint64 // the handler_execution span, once handed out
	// answered is set by the first complete.
	answered bool
}

func newRefs(tr *tracing.Tracer) *refs { return &refs{tr: tr, m: map[uint64]*ref{}} }

func (r *refs) addStep(ctx context.Context, sc *handler.StepContext, name string, p *pending) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.last++
	h := r.last
	r.m[h] = &ref{ctx: ctx, step: h, sc: sc, name: name, pending: p, spans: map[uint64]struct{}{}}
	return h
}

// startExecution starts the handler_execution span of step h as the
// runtime takes it; ok is false when the step is no longer in flight.
func (r *refs) startExecution(h uint64) (uint64, bool) {
	r.mu.Lock()
	st := r.m[h]
	r.mu.Unlock()
	if st == nil {
		return 0, false
	}
	// name and sc never change after addStep.
	sh, err := r.startSpan(h, "handler_execution", []attribute.KeyValue{
		tracing.KeyHandler.String(st.name), tracing.KeyAttempt.Int(st.sc.Attempt)})
	if err != nil {
		return 0, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	st.exec = sh
	return sh, true
}

// dropStep forgets a step and ends the spans the runtime left open under it.
func (r *refs) dropStep(h uint64) {
	r.mu.Lock()
	st := r.m[h]
	var open []trace.Span
	if st != nil {
		delete(r.m, h)
		for sh := range st.spans {
			if s := r.m[sh]; s != nil {
				open = append(open, s.span)
				delete(r.m, sh)
			}
		}
	}
	r.mu.Unlock()
	for _, s := range open {
		s.SetAttributes(attribute.Bool("unfinished", true))
		s.End()
	}
}

// complete ends the step's handler_execution span with the outcome and
// delivers res to the step's waiting Dispatch. A step is answered once.
func (r *refs) complete(h uint64, res Result) error {
	r.mu.Lock()
	st := r.m[h]
	if st == nil || st.pending == nil {
		r.mu.Unlock()
		return fmt.Errorf("step handle %d is not in flight (its timeout elapsed, the worker stopped, or it was already answered)", h)
	}
	if st.answered {
		r.mu.Unlock()
		return fmt.Errorf("step handle %d was already answered", h)
	}
	st.answered = true
	var exec trace.Span
	if x := r.m[st.exec]; x != nil && st.exec != 0 {
		exec = x.span
		delete(r.m, st.exec)
		delete(st.spans, st.exec)
	}
	r.mu.Unlock()
	if exec != nil {
		if e := res.Error; e != nil {
			tracing.Fail(exec, e.Type, e.Message)
			exec.AddEvent("exception", trace.WithAttributes(semconv.ExceptionTypeKey.String(e.Type),
				semconv.ExceptionMessageKey.String(e.Message)))
			exec.SetAttributes(attribute.Bool("retryable", e.Retryable))
		}
		exec.End()
	}
	st.pending.result <- res // buffered, and answered once: never blocks
	return nil
}

// lookup returns the context of handle h (0: none, a background context)
// and the step it belongs to.
func (r *refs) lookup(h uint64) (context.Context, *ref, error) {
	if h == 0 {
		return context.Background(), nil, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	x := r.m[h]
	if x == nil {
		return nil, nil, fmt.Errorf("handle %d names no step in flight and no open span", h)
	}
	return x.ctx, r.m[x.step], nil
}

func (r *refs) startSpan(parent uint64, name string, attrs []attribute.KeyValue) (uint64, error) {
	ctx, st, err := r.lookup(parent)
	if err != nil {
		return 0, fmt.Errorf("starting span %q: %w", name, err)
	}
	if st != nil {
		sc := st.sc
		attrs = append(tracing.IDs(sc.CorrelationID, sc.TaskUUID, sc.StepUUID, sc.Namespace, sc.StepName), attrs...)
	}
	sctx, span := r.tr.Start(ctx, name, trace.WithAttributes(attrs...))
	r.mu.Lock()
	defer r.mu.Unlock()
	r.last++
	h := r.last
	x := &ref{ctx: sctx, span: span}
	if st != nil {
		if r.m[st.step] == nil {
			// The step was answered while the span started.
			span.End()
			return 0, fmt.Errorf("starting span %q: step handle %d is no longer in flight", name, st.step)
		}
		x.step = st.step
		st.spans[h] = struct{}{}
	}
	r.m[h] = x
	return h, nil
}

func (r *refs) endSpan(h uint64) (trace.Span, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	x := r.m[h]
	if x == nil || x.span == nil {
		return nil, fmt.Errorf("span handle %d names no open span", h)
	}
	delete(r.m, h)
	if st := r.m[x.step]; st != nil {
		delete(st.spans, h)
	}
	return x.span, nil
}

// closeAll ends every open span (at Close, so nothing is lost at export).
func (r *refs) closeAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for h, x := range r.m {
		if x.span != nil {
			x.span.SetAttributes(attribute.Bool("unfinished", true))
			x.span.End()
		}
		delete(r.m, h)
	}
}
