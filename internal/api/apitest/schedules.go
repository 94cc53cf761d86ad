package apitest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/client"
	"github.com/taskerhq/tasker/internal/api"
	"github.com/taskerhq/tasker/internal/taskreq"
)

// CreateSchedule implements api.Backend; it checks the name is free and the
// template known, but not the cron expression (it fires nothing).
func (b *Backend) CreateSchedule(_ context.Context, req client.ScheduleRequest) (*client.Schedule, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.errs["CreateSchedule"]; err != nil {
		return nil, err
	}
	if _, err := b.findTemplate(req.Task); err != nil {
		return nil, err
	}
	for _, s := range b.schedules {
		if s.Name == req.Name {
			return nil, &taskreq.FieldError{Field: "name", Code: client.CodeAlreadyExists, Kind: taskreq.Conflict,
				Message: fmt.Sprintf("a schedule named %q exists", req.Name)}
		}
	}
	now := time.Now().UTC()
	sc := client.Schedule{ScheduleUUID: uuid.Must(uuid.NewV7()), Name: req.Name, Cron: req.Cron, TimeZone: req.TimeZone,
		Task: req.Task, NextRunAt: now.Truncate(time.Minute).Add(time.Minute), CreatedAt: now}
	if sc.TimeZone == "" {
		sc.TimeZone = "UTC"
	}
	b.schedules = append(b.schedules, sc)
	return &sc, nil
}

// ListSchedules implements api.Backend.
func (b *Backend) ListSchedules(context.Context) ([]client.Schedule, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := slices.Clone(b.schedules)
	slices.SortFunc(out, func(x, y client.Schedule) int { return strings.Compare(x.Name, y.Name) })
	return out, b.errs["ListSchedules"]
}

// DeleteSchedule implements api.Backend.
func (b *Backend) DeleteSchedule(_ context.Context, name string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, s := range b.schedules {
		if s.Name == name {
			b.schedules = slices.Delete(b.schedules, i, i+1)
			return nil
		}
	}
	return fmt.Errorf("schedule %s: %w", name, api.ErrNotFound)
}
