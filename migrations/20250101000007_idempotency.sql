-- Idempotency keys: a client that may send a task request more than once
-- (a retry after a timeout, a redelivered message) names it with a key, and
-- the repeat finds the task the first one created instead of making another.
-- A key is unique per namespace and template name (idempotency_scope,
-- "namespace/name") for as long as the task row exists, so the retention
-- pruning that deletes old tasks also ends their keys' window.
-- idempotency_fingerprint is a hash of what the request asked for: a repeat
-- that asks for something else is refused rather than answered with a task
-- it did not ask for.

-- +goose Up
ALTER TABLE tasker.tasks ADD COLUMN idempotency_key text;
ALTER TABLE tasker.tasks ADD COLUMN idempotency_scope text;
ALTER TABLE tasker.tasks ADD COLUMN idempotency_fingerprint text;
ALTER TABLE tasker.tasks ADD CONSTRAINT tasks_idempotency_complete
    CHECK ((idempotency_key IS NULL) = (idempotency_scope IS NULL)
       AND (idempotency_key IS NULL) = (idempotency_fingerprint IS NULL));
-- Partial: most tasks carry no key and cost the index nothing.
CREATE UNIQUE INDEX tasks_idempotency_idx ON tasker.tasks (idempotency_scope, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- +goose Down
DROP INDEX tasker.tasks_idempotency_idx;
ALTER TABLE tasker.tasks DROP CONSTRAINT tasks_idempotency_complete;
ALTER TABLE tasker.tasks DROP COLUMN idempotency_fingerprint;
ALTER TABLE tasker.tasks DROP COLUMN idempotency_scope;
ALTER TABLE tasker.tasks DROP COLUMN idempotency_key;
