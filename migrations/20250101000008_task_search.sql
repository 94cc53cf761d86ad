-- Indexes for listing and searching tasks (GET /v1/tasks), newest first with
-- keyset paging on (created_at, task_uuid). Each is scanned backwards to give
-- newest first, and the row comparison of the cursor is an index condition,
-- so a page costs the same at any depth and any table size.
--   no filter (or time bounds)       tasks_created_idx
--   state                            tasks_state_created_idx
--   namespace / template name        tasks_named_task_created_idx (replaces tasks_named_task_idx)
--   correlation / parent correlation the existing correlation indexes (few rows each)

-- +goose Up
CREATE INDEX tasks_created_idx ON tasker.tasks (created_at, task_uuid);
CREATE INDEX tasks_state_created_idx ON tasker.tasks (state, created_at, task_uuid);
CREATE INDEX tasks_named_task_created_idx ON tasker.tasks (named_task_uuid, created_at, task_uuid);
DROP INDEX tasker.tasks_named_task_idx;

-- +goose Down
CREATE INDEX tasks_named_task_idx ON tasker.tasks (named_task_uuid);
DROP INDEX tasker.tasks_named_task_created_idx;
DROP INDEX tasker.tasks_state_created_idx;
DROP INDEX tasker.tasks_created_idx;
