-- Step rows change on every hop of a step's life (enqueue, claim, result,
-- completion). An update that changes no indexed column, and finds room on
-- its page, is a HOT update: no new index entries, far less WAL. So no index
-- on workflow_steps names a column that changes on those hops:
--   * workflow_steps_task_idx duplicated the (task_uuid, named_step_uuid)
--     unique index, which serves lookups by task;
--   * the retry index's predicate named state; it now names next_retry_at,
--     which only a retry sets (a step found through it is still checked for
--     waiting_for_retry);
--   * the lease index served no query (expired leases are found through
--     their message's visibility).
-- and pages keep room for the new versions (fillfactor). Together with the
-- column order (large JSON columns last, see the schema migration), a hop
-- of a step writes a few dozen bytes of WAL for its row instead of the row.

-- +goose Up
DROP INDEX tasker.workflow_steps_task_idx;
DROP INDEX tasker.workflow_steps_lease_idx;
DROP INDEX tasker.workflow_steps_retry_idx;
CREATE INDEX workflow_steps_retry_idx ON tasker.workflow_steps (next_retry_at) WHERE next_retry_at IS NOT NULL;
ALTER TABLE tasker.workflow_steps SET (fillfactor = 70);
-- A task's own updates between steps (evaluating → enqueuing → in process)
-- leave its indexed columns as they were: room on the page makes them HOT.
ALTER TABLE tasker.tasks SET (fillfactor = 80);

-- +goose Down
ALTER TABLE tasker.tasks RESET (fillfactor);
ALTER TABLE tasker.workflow_steps RESET (fillfactor);
DROP INDEX tasker.workflow_steps_retry_idx;
CREATE INDEX workflow_steps_retry_idx ON tasker.workflow_steps (next_retry_at) WHERE state = 'waiting_for_retry';
CREATE INDEX workflow_steps_lease_idx ON tasker.workflow_steps (lease_expires_at) WHERE state = 'in_progress';
CREATE INDEX workflow_steps_task_idx ON tasker.workflow_steps (task_uuid);
