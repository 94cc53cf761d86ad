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
--
-- The history tables carry no foreign keys: a foreign-key check locks the
-- parent row (FOR KEY SHARE), which writes a WAL record, and a multixact
-- when several transactions do it, for every history row, on the hottest
-- rows of the database. History rows are written only by the engine's
-- functions, in the statement that moves their parent, and retention
-- deletes them with their task.
--
-- Each history table has one index, its primary key (task, id): history is
-- read a task at a time, in order, and deleted a task at a time; the
-- separate id key and per-step index cost an index entry (and its WAL) for
-- each of the ~5 step and ~4 task history rows written per step, and were
-- never read on their own.
--
-- Nor do tasks and steps reference their template rows (named_tasks,
-- named_steps) by foreign key: every task created checked the same few
-- template rows (FOR KEY SHARE, twice for a row updated in the transaction
-- that inserted it), so concurrent creations queued on those rows and
-- churned multixacts. Template rows are never deleted, and tasks are only
-- created from templates read in the same transaction.

--
-- A claim hides its messages by moving their visibility time (vt). No index
-- names vt or read_ct any more (the queue's readers go by message id or by
-- priority, and check visibility on the row), so hiding a message is a HOT
-- update too; the few messages hidden at a time (those in flight) cost a
-- reader a row visit each.

-- +goose Up
DROP INDEX tasker.queue_messages_visible_idx;
CREATE INDEX queue_messages_queue_idx ON tasker.queue_messages (queue_name, msg_id);
ALTER TABLE tasker.queue_messages SET (fillfactor = 70);
DROP INDEX tasker.workflow_steps_task_idx;
DROP INDEX tasker.workflow_steps_lease_idx;
DROP INDEX tasker.workflow_steps_retry_idx;
CREATE INDEX workflow_steps_retry_idx ON tasker.workflow_steps (next_retry_at) WHERE next_retry_at IS NOT NULL;
ALTER TABLE tasker.workflow_steps SET (fillfactor = 70);
-- A task's own updates between steps (evaluating → enqueuing → in process)
-- leave its indexed columns as they were: room on the page makes them HOT.
ALTER TABLE tasker.tasks SET (fillfactor = 80);
ALTER TABLE tasker.workflow_step_transitions DROP CONSTRAINT workflow_step_transitions_workflow_step_uuid_fkey;
ALTER TABLE tasker.task_transitions DROP CONSTRAINT task_transitions_task_uuid_fkey;
ALTER TABLE tasker.task_transitions DROP CONSTRAINT task_transitions_pkey,
    ADD PRIMARY KEY (task_uuid, task_transition_id);
DROP INDEX tasker.task_transitions_task_idx;
ALTER TABLE tasker.workflow_step_transitions DROP CONSTRAINT workflow_step_transitions_pkey,
    ADD PRIMARY KEY (task_uuid, workflow_step_transition_id);
DROP INDEX tasker.workflow_step_transitions_step_idx;
DROP INDEX tasker.workflow_step_transitions_task_idx;
ALTER TABLE tasker.tasks DROP CONSTRAINT tasks_named_task_uuid_fkey;
ALTER TABLE tasker.workflow_steps DROP CONSTRAINT workflow_steps_named_step_uuid_fkey;

-- +goose Down
CREATE INDEX workflow_step_transitions_task_idx ON tasker.workflow_step_transitions (task_uuid);
CREATE INDEX workflow_step_transitions_step_idx ON tasker.workflow_step_transitions (workflow_step_uuid, workflow_step_transition_id);
ALTER TABLE tasker.workflow_step_transitions DROP CONSTRAINT workflow_step_transitions_pkey,
    ADD PRIMARY KEY (workflow_step_transition_id);
CREATE INDEX task_transitions_task_idx ON tasker.task_transitions (task_uuid, task_transition_id);
ALTER TABLE tasker.task_transitions DROP CONSTRAINT task_transitions_pkey,
    ADD PRIMARY KEY (task_transition_id);
ALTER TABLE tasker.workflow_steps ADD CONSTRAINT workflow_steps_named_step_uuid_fkey
    FOREIGN KEY (named_step_uuid) REFERENCES tasker.named_steps;
ALTER TABLE tasker.tasks ADD CONSTRAINT tasks_named_task_uuid_fkey
    FOREIGN KEY (named_task_uuid) REFERENCES tasker.named_tasks;
ALTER TABLE tasker.task_transitions ADD CONSTRAINT task_transitions_task_uuid_fkey
    FOREIGN KEY (task_uuid) REFERENCES tasker.tasks ON DELETE CASCADE;
ALTER TABLE tasker.workflow_step_transitions ADD CONSTRAINT workflow_step_transitions_workflow_step_uuid_fkey
    FOREIGN KEY (workflow_step_uuid) REFERENCES tasker.workflow_steps ON DELETE CASCADE;
ALTER TABLE tasker.tasks RESET (fillfactor);
ALTER TABLE tasker.workflow_steps RESET (fillfactor);
DROP INDEX tasker.workflow_steps_retry_idx;
CREATE INDEX workflow_steps_retry_idx ON tasker.workflow_steps (next_retry_at) WHERE state = 'waiting_for_retry';
CREATE INDEX workflow_steps_lease_idx ON tasker.workflow_steps (lease_expires_at) WHERE state = 'in_progress';
CREATE INDEX workflow_steps_task_idx ON tasker.workflow_steps (task_uuid);
ALTER TABLE tasker.queue_messages RESET (fillfactor);
DROP INDEX tasker.queue_messages_queue_idx;
CREATE INDEX queue_messages_visible_idx ON tasker.queue_messages (queue_name, vt, msg_id);
