package bench

import (
	"context"

	"github.com/taskerhq/tasker/handler"
)

// StepHandler runs a generated step (GenHandler): it does no work, so what
// a benchmark measures around it is the framework's own cost.
func StepHandler(_ context.Context, step *handler.StepContext) handler.Result {
	return handler.Success(map[string]any{"step": step.StepName})
}

// RegisterGenerated adds StepHandler to r under GenHandler.
func RegisterGenerated(r *handler.Registry) { r.Register(GenHandler, handler.Func(StepHandler)) }
