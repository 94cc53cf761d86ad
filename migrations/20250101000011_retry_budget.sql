-- An operator's retry renews a failed step's budget of attempts while its
-- attempt count keeps counting (max_attempts = attempts + max_attempts), so
-- the column may outgrow the template limit of 100 after many retries.
-- Templates are still limited to 100 by their validation.

-- +goose Up
ALTER TABLE tasker.workflow_steps DROP CONSTRAINT workflow_steps_max_attempts_check;
ALTER TABLE tasker.workflow_steps ADD CONSTRAINT workflow_steps_max_attempts_check CHECK (max_attempts >= 1);

-- +goose Down
ALTER TABLE tasker.workflow_steps DROP CONSTRAINT workflow_steps_max_attempts_check;
ALTER TABLE tasker.workflow_steps ADD CONSTRAINT workflow_steps_max_attempts_check CHECK (max_attempts BETWEEN 1 AND 100);
