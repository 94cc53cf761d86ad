package orchestration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/robfig/cron/v3"

	"github.com/taskerhq/tasker/client"
	"github.com/taskerhq/tasker/internal/db"
	"github.com/taskerhq/tasker/internal/taskreq"
	"github.com/taskerhq/tasker/internal/tracing"
)

// scheduleNameRE is what a schedule name looks like: it is typed on command
// lines and put in URLs.
var scheduleNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

// scheduleBatch bounds the firings one scheduler round makes, so a backlog
// (orchestrators down for a while) cannot hold the loop.
const scheduleBatch = 100

// parseCron reads a standard 5-field cron expression and an IANA time zone.
func parseCron(expr, tz string) (cron.Schedule, *time.Location, error) {
	if tz == "" {
		tz = "UTC"
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return nil, nil, taskreq.Invalidf("time_zone", "time_zone must be an IANA time zone such as Europe/Paris, got %q", tz)
	}
	sched, err := cron.ParseStandard(expr)
	if err != nil {
		return nil, nil, taskreq.Invalidf("cron", "cron must be 5 fields (minute hour day-of-month month day-of-week): %v", err)
	}
	return sched, loc, nil
}

// CreateSchedule validates and stores a cron schedule; its first firing is
// the cron's next time after now. A name in use is a Conflict FieldError.
func (s *Service) CreateSchedule(ctx context.Context, req client.ScheduleRequest) (*client.Schedule, error) {
	if !scheduleNameRE.MatchString(req.Name) {
		return nil, taskreq.Invalidf("name", "name must match %s, got %q", scheduleNameRE, req.Name)
	}
	sched, loc, err := parseCron(req.Cron, req.TimeZone)
	if err != nil {
		return nil, err
	}
	if req.TimeZone == "" {
		req.TimeZone = "UTC"
	}
	if req.Task.RunAt != nil {
		return nil, taskreq.Invalidf("task.run_at", "a scheduled task cannot have run_at (each firing would share it); use delay")
	}
	if req.Task.IdempotencyKey != "" || req.Task.CorrelationID != nil {
		return nil, taskreq.Invalidf("task", "a scheduled task gets its own correlation ID and idempotency key on each firing; give neither")
	}
	if _, err := s.resolveTemplate(ctx, req.Task); err != nil {
		var fe *taskreq.FieldError
		if errors.As(err, &fe) {
			fe.Field = "task." + fe.Field
		}
		return nil, err
	}
	body, err := json.Marshal(req.Task)
	if err != nil {
		return nil, fmt.Errorf("encoding scheduled task: %w", err)
	}
	out := &client.Schedule{ScheduleUUID: uuid.Must(uuid.NewV7()), Name: req.Name, Cron: req.Cron, TimeZone: req.TimeZone,
		Task: req.Task, NextRunAt: sched.Next(time.Now().In(loc)).UTC()}
	out.CreatedAt, err = s.funcs.InsertSchedule(ctx, s.pool, db.InsertScheduleParams{ScheduleUUID: out.ScheduleUUID,
		Name: out.Name, Cron: out.Cron, TimeZone: out.TimeZone, TaskRequest: body, NextRunAt: out.NextRunAt})
	if errors.Is(err, db.ErrAlreadyExists) {
		return nil, &taskreq.FieldError{Field: "name", Code: client.CodeAlreadyExists, Kind: taskreq.Conflict,
			Message: fmt.Sprintf("a schedule named %q exists", req.Name)}
	}
	if err != nil {
		return nil, fmt.Errorf("creating schedule %s: %w", req.Name, err)
	}
	s.log.InfoContext(ctx, "schedule created", "operation", "create_schedule", "event", "schedule.created",
		"schedule", out.Name, "cron", out.Cron, "time_zone", out.TimeZone, "next_run_at", out.NextRunAt)
	return out, nil
}

// ListSchedules returns every schedule by name.
func (s *Service) ListSchedules(ctx context.Context) ([]client.Schedule, error) {
	rows, err := s.funcs.ListSchedules(ctx, s.pool)
	if err != nil {
		return nil, err
	}
	out := make([]client.Schedule, len(rows))
	for i, r := range rows {
		out[i] = client.Schedule{ScheduleUUID: r.ScheduleUUID, Name: r.Name, Cron: r.Cron, TimeZone: r.TimeZone,
			NextRunAt: r.NextRunAt, LastRunAt: r.LastRunAt, LastTaskUUID: r.LastTaskUUID, CreatedAt: r.CreatedAt}
		if err := json.Unmarshal(r.TaskRequest, &out[i].Task); err != nil {
			return nil, fmt.Errorf("listing schedules: decoding the task of %s: %w", r.Name, err)
		}
	}
	return out, nil
}

// DeleteSchedule removes a schedule; db.ErrNotFound when there is none by that name.
func (s *Service) DeleteSchedule(ctx context.Context, name string) error {
	if err := s.funcs.DeleteSchedule(ctx, s.pool, name); err != nil {
		return err
	}
	s.log.InfoContext(ctx, "schedule deleted", "operation", "delete_schedule", "event", "schedule.deleted", "schedule", name)
	return nil
}

// scheduleLoop fires due schedules every ScheduleInterval until ctx ends.
func (s *Service) scheduleLoop(ctx context.Context) {
	tick := time.NewTicker(s.cfg.ScheduleInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if _, err := s.RunDueSchedules(ctx); err != nil && ctx.Err() == nil {
			s.log.WarnContext(ctx, "running schedules failed; the next round tries again", "operation", "run_schedules", "error", err)
		}
	}
}

// RunDueSchedules fires every schedule whose time has come, each in its own
// transaction: the schedule row is locked (others skip it), its task created
// and its next time set before the commit, so a firing happens exactly once
// across orchestrators. Firings missed while no orchestrator ran are not
// made up: the next time is the cron's next after now. The task of a firing
// also carries the idempotency key schedule/<uuid>/<due time>.
func (s *Service) RunDueSchedules(ctx context.Context) (fired int, err error) {
	for fired < scheduleBatch {
		ok, err := s.fireOne(ctx)
		if err != nil || !ok {
			return fired, err
		}
		fired++
	}
	return fired, nil
}

func (s *Service) fireOne(ctx context.Context) (bool, error) {
	ev := s.events()
	found := false
	// The scheduler's own statements start no spans: they run every
	// ScheduleInterval and would each be a trace of their own. The task a
	// firing creates has its trace as any other.
	quiet := tracing.Suppress(ctx)
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		row, err := s.funcs.LockDueSchedule(quiet, tx)
		if errors.Is(err, db.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		found = true
		name, due := row.Name, row.NextRunAt
		sched, loc, err := parseCron(row.Cron, row.TimeZone)
		if err != nil {
			return fmt.Errorf("schedule %s: %w", name, err)
		}
		next := sched.Next(time.Now().In(loc)).UTC()
		var req client.TaskRequest
		if err := json.Unmarshal(row.TaskRequest, &req); err != nil {
			return fmt.Errorf("schedule %s: decoding its task: %w", name, err)
		}
		req.IdempotencyKey = fmt.Sprintf("schedule/%s/%d", row.ScheduleUUID, due.Unix())
		corr := uuid.Must(uuid.NewV7())
		req.CorrelationID = &corr
		var taskUUID *uuid.UUID
		reg, err := s.resolveTemplate(ctx, req)
		if err == nil {
			var created *Created
			err = pgx.BeginFunc(ctx, tx, func(sp pgx.Tx) error {
				var cerr error
				created, cerr = s.createTaskTx(ctx, sp, req, reg, ev)
				return cerr
			})
			if err == nil {
				taskUUID = &created.TaskUUID
				start := time.Now()
				ev.add(func() {
					s.m.TaskRequested(ctx, corr, req.Namespace, req.Name, time.Since(start))
					s.log.InfoContext(ctx, "schedule fired", "correlation_id", corr, "task_uuid", created.TaskUUID,
						"namespace", req.Namespace, "operation", "run_schedules", "event", "schedule.fired",
						"schedule", name, "due_at", due, "next_run_at", next)
				})
			}
		}
		if ferr := err; ferr != nil {
			// The schedule moves on: a template that went away should not
			// make it fire in a loop. The next firing tries again.
			ev.add(func() {
				s.log.WarnContext(ctx, "schedule could not create its task", "operation", "run_schedules",
					"schedule", name, "due_at", due, "error", ferr)
			})
		}
		return s.funcs.AdvanceSchedule(quiet, tx, db.AdvanceScheduleParams{ScheduleUUID: row.ScheduleUUID, NextRunAt: next,
			RanAt: due, TaskUUID: taskUUID})
	})
	if err != nil {
		return found, err
	}
	ev.flush()
	return found, nil
}
