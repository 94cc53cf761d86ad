package bench

import (
	"context"

	"github.com/taskerhq/tasker/handler"
)

// StepHandler runs a generated step (GenHandler): it does no work, so what
// a benchmark measures around it is the framework's own cost.
func StepHandler(_ context.Context, step *handler.StepContext) (any, error) {
	return map[string]any{"step": step.StepName}, nil
}

// RegisterGenerated adds StepHandler to r under GenHandler.
func RegisterGenerated(r *handler.Registry) error { return r.RegisterFunc(GenHandler, StepHandler) }
