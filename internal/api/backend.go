package api

import (
	"context"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/client"
	"github.com/taskerhq/tasker/internal/db"
)

// Backend is everything the REST API needs from the engine. Keeping it this
// narrow lets the HTTP layer be tested without PostgreSQL and keeps SQL out
// of the handlers.
type Backend interface {
	// CreateTask validates and creates the task. A request that can never
	// succeed (unknown template or version, a rule of taskreq, an idempotency
	// key used for another request) comes back as *taskreq.FieldError.
	// existing reports an idempotent repeat answered with the task its key
	// created before.
	CreateTask(ctx context.Context, req client.TaskRequest) (task *client.Task, existing bool, err error)
	// CreateTasks creates every task of reqs in one transaction, or none: a
	// batch with requests that can never succeed comes back as
	// *taskreq.BatchError naming each (too many or none: *taskreq.FieldError
	// on "tasks"). tasks and existing are in request order.
	CreateTasks(ctx context.Context, reqs []client.TaskRequest) (tasks []client.Task, existing []bool, err error)
	GetTask(ctx context.Context, taskUUID uuid.UUID) (*client.Task, error)    // ErrNotFound when missing
	ListSteps(ctx context.Context, taskUUID uuid.UUID) ([]client.Step, error) // ErrNotFound when the task is missing
	// ListTasks returns one page of the tasks f selects, newest first. A bad
	// filter or cursor comes back as *taskreq.FieldError.
	ListTasks(ctx context.Context, f client.TaskFilter) (*client.TaskList, error)
	// CancelTask cancels a task that has not finished (again: no change) and
	// returns it; RetryTask runs a task in error again from its failed steps;
	// ResolveStep marks a failed step (by name or UUID) resolved with a result.
	// A state that forbids the action is a *taskreq.FieldError of kind Conflict.
	CancelTask(ctx context.Context, taskUUID uuid.UUID, req client.CancelRequest) (*client.Task, error)
	RetryTask(ctx context.Context, taskUUID uuid.UUID, req client.RetryRequest) (*client.Task, error)
	ResolveStep(ctx context.Context, taskUUID uuid.UUID, step string, req client.ResolveRequest) (*client.Task, error)
	// WatchTask returns a channel that receives a value when the task may
	// have reached a terminal state, and the function that stops watching.
	// A nil channel means the backend cannot tell: the caller re-checks.
	WatchTask(taskUUID uuid.UUID) (<-chan struct{}, func())
	// TaskHistory returns the task's and its steps' transitions recorded
	// after cursor, oldest first, and the cursor after them; ErrNotFound
	// when the task is missing.
	TaskHistory(ctx context.Context, taskUUID uuid.UUID, after HistoryCursor) ([]client.TaskEvent, HistoryCursor, error)
	// CreateSchedule stores a cron schedule (a bad one is a
	// *taskreq.FieldError); ListSchedules lists them by name; DeleteSchedule
	// removes one (ErrNotFound when there is none by that name).
	CreateSchedule(ctx context.Context, req client.ScheduleRequest) (*client.Schedule, error)
	ListSchedules(ctx context.Context) ([]client.Schedule, error)
	DeleteSchedule(ctx context.Context, name string) error
	// Queues reports every queue's depth and the age of its oldest
	// claimable message; Workers lists the live workers and every registered
	// namespace with how many of them serve it (the web console's views).
	Queues(ctx context.Context) (*client.QueueList, error)
	Workers(ctx context.Context) (*client.WorkerList, error)
	Templates(ctx context.Context) ([]client.Template, error)
	Ping(ctx context.Context) error
}

// ErrNotFound is returned (possibly wrapped) by a Backend when the task asked
// for does not exist; the API answers 404 for it. It is the data layer's
// sentinel, so the Store passes its reads' errors through unchanged.
var ErrNotFound = db.ErrNotFound

// HistoryCursor is how far a reader of a task's history got: the last task
// and step transition ids seen. It is the id of a server-sent event.
type HistoryCursor struct {
	Task, Step int64
}
