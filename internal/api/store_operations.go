package api

import (
	"context"
	"errors"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/client"
	"github.com/taskerhq/tasker/internal/orchestration"
)

// errNoOperator is a Store built without an orchestrator able to operate.
var errNoOperator = errors.New("this server cannot operate on tasks: it has no orchestrator")

// CancelTask implements Backend.
func (s *Store) CancelTask(ctx context.Context, id uuid.UUID, req client.CancelRequest) (*client.Task, error) {
	if s.ops == nil {
		return nil, errNoOperator
	}
	if _, err := s.ops.CancelTask(ctx, id, orchestration.Operation{Reason: req.Reason, Actor: req.Actor}, req.Children); err != nil {
		return nil, err
	}
	return s.GetTask(ctx, id)
}

// RetryTask implements Backend.
func (s *Store) RetryTask(ctx context.Context, id uuid.UUID, req client.RetryRequest) (*client.Task, error) {
	if s.ops == nil {
		return nil, errNoOperator
	}
	if err := s.ops.RetryTask(ctx, id, orchestration.Operation{Reason: req.Reason, Actor: req.Actor}); err != nil {
		return nil, err
	}
	return s.GetTask(ctx, id)
}

// ResolveStep implements Backend.
func (s *Store) ResolveStep(ctx context.Context, id uuid.UUID, step string, req client.ResolveRequest) (*client.Task, error) {
	if s.ops == nil {
		return nil, errNoOperator
	}
	if err := s.ops.ResolveStep(ctx, id, step, req.Result, orchestration.Operation{Reason: req.Reason, Actor: req.Actor}); err != nil {
		return nil, err
	}
	return s.GetTask(ctx, id)
}

// ScheduleKeeper stores cron schedules (orchestration).
type ScheduleKeeper interface {
	CreateSchedule(ctx context.Context, req client.ScheduleRequest) (*client.Schedule, error)
	ListSchedules(ctx context.Context) ([]client.Schedule, error)
	DeleteSchedule(ctx context.Context, name string) error
}

func (s *Store) scheduler() (ScheduleKeeper, error) {
	k, ok := s.creator.(ScheduleKeeper)
	if !ok {
		return nil, errNoOperator
	}
	return k, nil
}

// CreateSchedule implements Backend.
func (s *Store) CreateSchedule(ctx context.Context, req client.ScheduleRequest) (*client.Schedule, error) {
	k, err := s.scheduler()
	if err != nil {
		return nil, err
	}
	return k.CreateSchedule(ctx, req)
}

// ListSchedules implements Backend.
func (s *Store) ListSchedules(ctx context.Context) ([]client.Schedule, error) {
	k, err := s.scheduler()
	if err != nil {
		return nil, err
	}
	return k.ListSchedules(ctx)
}

// DeleteSchedule implements Backend.
func (s *Store) DeleteSchedule(ctx context.Context, name string) error {
	k, err := s.scheduler()
	if err != nil {
		return err
	}
	return k.DeleteSchedule(ctx, name)
}
