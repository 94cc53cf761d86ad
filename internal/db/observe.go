package db

import "context"

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

type nopObserver struct{}

func (nopObserver) StartCall(ctx context.Context, _ Call) (context.Context, func(error)) {
	return ctx, func(error) {}
}

// NopObserver observes nothing.
var NopObserver Observer = nopObserver{}

// ObserverOrNop returns o, or NopObserver when o is nil.
func ObserverOrNop(o Observer) Observer {
	if o == nil {
		return NopObserver
	}
	return o
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
