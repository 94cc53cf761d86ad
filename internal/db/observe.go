package db

import "context"

// Observer is told about every SQL function call: the tracing and metrics
// layers implement it. Start returns the context to run the call in and a
// function to call with the call's outcome.
type Observer interface {
	StartCall(ctx context.Context, function string) (context.Context, func(err error))
}

type nopObserver struct{}

func (nopObserver) StartCall(ctx context.Context, _ string) (context.Context, func(error)) {
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
