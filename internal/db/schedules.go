package db

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// The statements of cron schedules (table schedules). A due schedule is
// locked FOR UPDATE SKIP LOCKED by the orchestrator that fires it, which
// creates its task and advances it in the same transaction, so each firing
// happens once however many orchestrators run.

// Schedule is a schedule row.
type Schedule struct {
	ScheduleUUID uuid.UUID
	Name         string
	Cron         string
	TimeZone     string
	// TaskRequest is the stored request (a JSON object) each firing creates a task from.
	TaskRequest  json.RawMessage
	NextRunAt    time.Time
	LastRunAt    *time.Time
	LastTaskUUID *uuid.UUID
	CreatedAt    time.Time
}

// InsertScheduleParams is a new schedule.
type InsertScheduleParams struct {
	ScheduleUUID uuid.UUID
	Name         string
	Cron         string
	TimeZone     string
	TaskRequest  json.RawMessage
	// NextRunAt is the first firing.
	NextRunAt time.Time
}

// InsertSchedule stores a schedule and returns its creation time;
// ErrAlreadyExists when its name is taken.
func (f *Funcs) InsertSchedule(ctx context.Context, q Querier, p InsertScheduleParams) (createdAt time.Time, err error) {
	ctx, sc := f.in.Begin(ctx, Call{Function: "insert_schedule"})
	defer func() { sc.End(err) }()
	err = q.QueryRow(ctx, `INSERT INTO tasker.schedules (schedule_uuid, name, cron, time_zone, task_request, next_run_at)
		VALUES ($1, $2, $3, $4, $5, $6) RETURNING created_at`,
		p.ScheduleUUID, p.Name, p.Cron, p.TimeZone, []byte(p.TaskRequest), p.NextRunAt).Scan(&createdAt)
	if err != nil {
		return time.Time{}, uniqueViolation(err, "schedule "+p.Name)
	}
	return createdAt, nil
}

const scheduleColumns = `schedule_uuid, name, cron, time_zone, task_request, next_run_at,
	last_run_at, last_task_uuid, created_at`

func scanSchedule(r pgx.Row) (Schedule, error) {
	var s Schedule
	err := r.Scan(&s.ScheduleUUID, &s.Name, &s.Cron, &s.TimeZone, &s.TaskRequest, &s.NextRunAt,
		&s.LastRunAt, &s.LastTaskUUID, &s.CreatedAt)
	return s, err
}

// ListSchedules returns every schedule by name.
func (f *Funcs) ListSchedules(ctx context.Context, q Querier) (out []Schedule, err error) {
	ctx, sc := f.in.Begin(ctx, Call{Function: "list_schedules"})
	defer func() { sc.End(err) }()
	rows, err := q.Query(ctx, "SELECT "+scheduleColumns+" FROM tasker.schedules ORDER BY name")
	if err != nil {
		return nil, fmt.Errorf("listing schedules: %w", err)
	}
	out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Schedule, error) { return scanSchedule(r) })
	if err != nil {
		return nil, fmt.Errorf("listing schedules: %w", err)
	}
	return out, nil
}

// DeleteSchedule removes the schedule named name; ErrNotFound when there
// is none.
func (f *Funcs) DeleteSchedule(ctx context.Context, q Querier, name string) (err error) {
	ctx, sc := f.in.Begin(ctx, Call{Function: "delete_schedule"})
	defer func() { sc.End(err) }()
	tag, err := q.Exec(ctx, `DELETE FROM tasker.schedules WHERE name = $1`, name)
	if err != nil {
		return fmt.Errorf("deleting schedule %s: %w", name, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("schedule %s: %w", name, ErrNotFound)
	}
	return nil
}

// LockDueSchedule locks the schedule due the longest (next_run_at at or
// before the database's clock) that no other transaction holds, for the
// rest of the caller's transaction; ErrNotFound when none is due.
func (f *Funcs) LockDueSchedule(ctx context.Context, q Querier) (out Schedule, err error) {
	ctx, sc := f.in.Begin(ctx, Call{Function: "lock_due_schedule"})
	defer func() { sc.End(err) }()
	out, err = scanSchedule(q.QueryRow(ctx, "SELECT "+scheduleColumns+` FROM tasker.schedules
		WHERE next_run_at <= clock_timestamp()
		ORDER BY next_run_at LIMIT 1 FOR UPDATE SKIP LOCKED`))
	if err != nil {
		return Schedule{}, noRows(err, "due schedule")
	}
	return out, nil
}

// AdvanceScheduleParams records one firing of a schedule.
type AdvanceScheduleParams struct {
	ScheduleUUID uuid.UUID
	// NextRunAt is the next firing.
	NextRunAt time.Time
	// RanAt is the due time of the firing made.
	RanAt time.Time
	// TaskUUID is the task the firing created; nil when it could not create
	// one, which keeps the last task recorded.
	TaskUUID *uuid.UUID
}

// AdvanceSchedule moves a schedule to its next firing and records the one made.
func (f *Funcs) AdvanceSchedule(ctx context.Context, q Querier, p AdvanceScheduleParams) (err error) {
	ctx, sc := f.in.Begin(ctx, Call{Function: "advance_schedule"})
	defer func() { sc.End(err) }()
	if _, err = q.Exec(ctx, `UPDATE tasker.schedules SET next_run_at = $2, last_run_at = $3,
			last_task_uuid = coalesce($4, last_task_uuid), updated_at = now()
		WHERE schedule_uuid = $1`, p.ScheduleUUID, p.NextRunAt, p.RanAt, p.TaskUUID); err != nil {
		return fmt.Errorf("advancing schedule %s: %w", p.ScheduleUUID, err)
	}
	return nil
}
