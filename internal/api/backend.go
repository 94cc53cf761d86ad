package api

import (
	"context"
	"errors"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/client"
)

// Backend is everything the REST API needs from the engine. Keeping it this
// narrow lets the HTTP layer be tested without PostgreSQL and keeps SQL out
// of the handlers.
type Backend interface {
	// CreateTask validates and creates the task. Request validation the API cannot do itself (unknown template/version) comes back as *client.APIError (Status 404 or 422, Field set).
	CreateTask(ctx context.Context, req client.TaskRequest) (*client.Task, error)
	GetTask(ctx context.Context, taskUUID uuid.UUID) (*client.Task, error)    // ErrNotFound when missing
	ListSteps(ctx context.Context, taskUUID uuid.UUID) ([]client.Step, error) // ErrNotFound when the task is missing
	ListTasksByCorrelation(ctx context.Context, correlationID uuid.UUID) ([]client.Task, error)
	// ListChildTasks returns the tasks whose parent_correlation_id is parentCorrelationID.
	ListChildTasks(ctx context.Context, parentCorrelationID uuid.UUID) ([]client.Task, error)
	Templates(ctx context.Context) ([]client.Template, error)
	Ping(ctx context.Context) error
}

// ErrNotFound is returned (possibly wrapped) by a Backend when the task asked
// for does not exist; the API answers 404 for it.
var ErrNotFound = errors.New("not found")
