package foreign

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.opentelemetry.io/otel/propagation"

	"github.com/taskerhq/tasker/handler"
	"github.com/taskerhq/tasker/internal/worker"
)

// Dispatcher is the worker.Dispatcher that routes steps to the foreign
// runtime: Dispatch queues the step and blocks until the runtime completes
// it (Bridge.Complete) or the worker gives up on it (timeout, shutdown).
// While it blocks the step is in flight in the worker, whose heartbeat keeps
// renewing its lease.
type Dispatcher struct {
	handlers map[string]bool
	refs     *refs
	queue    chan *pending
	done     chan struct{}
	stopOnce sync.Once
}

var _ worker.Dispatcher = (*Dispatcher)(nil)

func newDispatcher(names []string, r *refs) *Dispatcher {
	d := &Dispatcher{handlers: map[string]bool{}, refs: r, queue: make(chan *pending), done: make(chan struct{})}
	for _, n := range names {
		d.handlers[n] = true
	}
	return d
}

// Has implements worker.Dispatcher: the names the runtime said it serves.
func (d *Dispatcher) Has(name string) bool { return d.handlers[name] }

// pending is a step handed to (or waiting for) the foreign runtime.
type pending struct {
	handle  uint64
	payload []byte
	result  chan Result // buffered: Complete never blocks
}

// Dispatch implements worker.Dispatcher.
func (d *Dispatcher) Dispatch(ctx context.Context, sc *handler.StepContext, name string) (any, error) {
	p := &pending{result: make(chan Result, 1)}
	h := d.refs.addStep(ctx, sc, name, p)
	p.handle = h
	defer d.refs.dropStep(h)
	payload, err := stepPayload(ctx, h, sc, name)
	if err != nil {
		return nil, handler.Permanent(err)
	}
	p.payload = payload
	select {
	case d.queue <- p:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-d.done:
		return nil, errors.New("the foreign worker stopped before taking the step")
	}
	select {
	case r := <-p.result:
		return outcomeOf(r)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func outcomeOf(r Result) (any, error) {
	if !r.Success {
		e := r.Error
		return nil, handler.NewError(e.Type, e.Code, e.Retryable, errors.New(e.Message))
	}
	if len(r.Metadata) > 0 {
		return handler.Output{Value: r.Value, Metadata: r.Metadata}, nil
	}
	return r.Value, nil
}

func stepPayload(ctx context.Context, h uint64, sc *handler.StepContext, name string) ([]byte, error) {
	carrier := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, carrier)
	s := Step{
		Handle: h, Handler: name, TaskUUID: sc.TaskUUID, StepUUID: sc.StepUUID, StepName: sc.StepName,
		Namespace: sc.Namespace, TaskName: sc.TaskName, TaskVersion: sc.TaskVersion,
		CorrelationID: sc.CorrelationID, ParentCorrelationID: sc.ParentCorrelationID,
		Context: orEmpty(sc.Context), Inputs: orEmpty(sc.Inputs), DependencyResults: sc.DependencyResults,
		Attempt: sc.Attempt, MaxAttempts: sc.MaxAttempts,
		Traceparent: carrier["traceparent"], Tracestate: carrier["tracestate"],
	}
	if s.DependencyResults == nil {
		s.DependencyResults = map[string]json.RawMessage{}
	}
	if dl, ok := ctx.Deadline(); ok {
		s.DeadlineUnixMS = dl.UnixMilli()
	}
	b, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("encoding step %s for the foreign handler: %w", sc.StepName, err)
	}
	return b, nil
}

func orEmpty(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 || string(raw) == "null" {
		return json.RawMessage(`{}`)
	}
	return raw
}

// next hands out the next step, waiting up to timeout, and starts its
// handler_execution span: the runtime's handler runs from now until it
// completes the step.
func (d *Dispatcher) next(timeout time.Duration) ([]byte, bool, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case p := <-d.queue:
		sh, ok := d.refs.startExecution(p.handle)
		if !ok {
			// The worker gave up on the step while it was being handed out;
			// the runtime's answer would be refused anyway.
			return nil, false, nil
		}
		// The payload was encoded at Dispatch; the span handle is known
		// only now, so it is spliced in as the object's first member.
		out := fmt.Appendf(make([]byte, 0, len(p.payload)+32), `{"span":%d,`, sh)
		return append(out, p.payload[1:]...), true, nil
	case <-d.done:
		return nil, false, ErrStopped
	case <-t.C:
		return nil, false, nil
	}
}

// stop makes next report ErrStopped (after the worker has stopped, so no
// step can be queued any more).
func (d *Dispatcher) stop() { d.stopOnce.Do(func() { close(d.done) }) }
