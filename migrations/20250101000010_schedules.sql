-- Cron schedules: each row creates a task from its stored request whenever
-- its cron expression (standard 5 fields, in its time zone) comes due. The
-- orchestrator that locks a due row (FOR UPDATE SKIP LOCKED) creates the
-- task and moves next_run_at on in the same transaction, so each firing
-- happens exactly once however many orchestrators run.

-- +goose Up
CREATE TABLE tasker.schedules (
    schedule_uuid  uuid PRIMARY KEY,
    name           varchar(128) NOT NULL UNIQUE,
    cron           varchar(128) NOT NULL,
    time_zone      varchar(64) NOT NULL DEFAULT 'UTC',
    task_request   jsonb NOT NULL CHECK (jsonb_typeof(task_request) = 'object'),
    next_run_at    timestamptz NOT NULL,
    last_run_at    timestamptz,
    last_task_uuid uuid,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX schedules_due_idx ON tasker.schedules (next_run_at);

-- +goose Down
DROP TABLE tasker.schedules;
