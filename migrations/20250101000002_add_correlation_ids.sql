-- Correlation IDs: one business ID per workflow, and the
-- parent's for nested workflows. Generated as UUIDv7 by the application.

-- +goose Up
ALTER TABLE tasker.tasks ADD COLUMN correlation_id uuid;
ALTER TABLE tasker.tasks ADD COLUMN parent_correlation_id uuid;
UPDATE tasker.tasks SET correlation_id = task_uuid WHERE correlation_id IS NULL;
ALTER TABLE tasker.tasks ALTER COLUMN correlation_id SET NOT NULL;
CREATE INDEX tasks_correlation_id_idx ON tasker.tasks (correlation_id);
CREATE INDEX tasks_parent_correlation_id_idx ON tasker.tasks (parent_correlation_id)
    WHERE parent_correlation_id IS NOT NULL;

ALTER TABLE tasker.task_transitions ADD COLUMN correlation_id uuid;
ALTER TABLE tasker.workflow_step_transitions ADD COLUMN correlation_id uuid;

-- +goose Down
ALTER TABLE tasker.workflow_step_transitions DROP COLUMN correlation_id;
ALTER TABLE tasker.task_transitions DROP COLUMN correlation_id;
DROP INDEX tasker.tasks_parent_correlation_id_idx;
DROP INDEX tasker.tasks_correlation_id_idx;
ALTER TABLE tasker.tasks DROP COLUMN parent_correlation_id;
ALTER TABLE tasker.tasks DROP COLUMN correlation_id;
