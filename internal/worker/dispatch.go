package worker

import (
	"context"
	"fmt"

	"github.com/taskerhq/tasker/handler"
)

// Dispatcher runs a step's handler. The worker enforces the step's timeout
// and recovers panics around Dispatch, so an implementation may simply block
// until the handler returns; a foreign runtime implements it by queueing the
// step and waiting for the runtime to complete it. The result and error mean
// what they mean for handler.Handler.
type Dispatcher interface {
	Dispatch(ctx context.Context, step *handler.StepContext, handlerName string) (any, error)
	// Has reports whether handlerName can run here.
	Has(handlerName string) bool
}

// RegistryDispatcher runs Go handlers from a registry.
type RegistryDispatcher struct {
	Registry *handler.Registry
}

// Dispatch implements Dispatcher.
func (d RegistryDispatcher) Dispatch(ctx context.Context, step *handler.StepContext, name string) (any, error) {
	h, ok := d.Registry.Lookup(name)
	if !ok {
		return nil, handler.NewError(handler.ErrorTypeUnknownHandler, "", false, fmt.Errorf("no handler named %q is registered", name))
	}
	return h.Handle(ctx, step)
}

// Has implements Dispatcher.
func (d RegistryDispatcher) Has(name string) bool { return d.Registry.Has(name) }
