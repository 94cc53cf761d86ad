package db

import (
	"context"
	"time"
)

// Call describes one SQL function call for observers.
type Call struct {
	// Function is the SQL function's name, e.g. "get_step_readiness_status".
	Function string
	// Queue is the queue a messaging call sends to or reads from, if any.
	Queue string
	// Messaging is the messaging operation type of a queue call: "send",
	// "receive", "settle" or "" for none.
	Messaging string
}

// Observer is told about every SQL function call: the tracing and metrics
// layers implement it. StartCall returns the context to run the call in and a
// function to call with the call's outcome.
type Observer interface {
	StartCall(ctx context.Context, call Call) (context.Context, func(err error))
}

// Observers fans one call out to several observers (tracing and metrics).
type Observers []Observer

// StartCall implements Observer.
func (os Observers) StartCall(ctx context.Context, call Call) (context.Context, func(error)) {
	dones := make([]func(error), 0, len(os))
	for _, o := range os {
		var d func(error)
		ctx, d = o.StartCall(ctx, call)
		dones = append(dones, d)
	}
	return ctx, func(err error) {
		for i := len(dones) - 1; i >= 0; i-- {
			dones[i](err)
		}
	}
}

// Recorder is an Observer that only needs each call's outcome and duration
// (metrics). Recorders are called after the call with no closure, so
// recording allocates nothing on the hot path.
type Recorder interface {
	RecordCall(ctx context.Context, call Call, d time.Duration, err error)
}

// Instr splits observers into those that wrap a call (tracing) and
// Recorders, and runs them around each call.
type Instr struct {
	obs  []Observer
	recs []Recorder
}

// NewInstr flattens o (which may be an Observers list or nil).
func NewInstr(o Observer) Instr {
	var in Instr
	var add func(o Observer)
	add = func(o Observer) {
		switch v := o.(type) {
		case nil:
		case Observers:
			for _, x := range v {
				add(x)
			}
		case Recorder:
			if !isNil(v) {
				in.recs = append(in.recs, v)
			}
		default:
			in.obs = append(in.obs, v)
		}
	}
	add(o)
	return in
}

// isNil reports whether a Recorder is a typed nil pointer (a nil *Metrics).
func isNil(r Recorder) bool {
	type nilChecker interface{ IsNil() bool }
	if c, ok := r.(nilChecker); ok {
		return c.IsNil()
	}
	return false
}

// Scope is one observed call in progress.
type Scope struct {
	in    *Instr
	ctx   context.Context
	call  Call
	start time.Time
	dones [2]func(error)
}

// Begin starts observing call; End must follow.
func (in *Instr) Begin(ctx context.Context, call Call) (context.Context, Scope) {
	s := Scope{in: in, call: call, start: time.Now()}
	for i, o := range in.obs {
		if i < len(s.dones) {
			ctx, s.dones[i] = o.StartCall(ctx, call)
		}
	}
	s.ctx = ctx
	return ctx, s
}

// End reports the call's outcome.
func (s *Scope) End(err error) {
	for i := len(s.dones) - 1; i >= 0; i-- {
		if s.dones[i] != nil {
			s.dones[i](err)
		}
	}
	if len(s.in.recs) == 0 {
		return
	}
	d := time.Since(s.start)
	for _, r := range s.in.recs {
		r.RecordCall(s.ctx, s.call, d, err)
	}
}
