-- Delayed tasks (run_at / delay) wait in waiting_for_dependencies until their
-- time. The readiness poll reads that state through two partial indexes: the
-- undelayed tasks by priority, and the delayed ones by run_at, of which it
-- reads only those that are due. A backlog of tasks delayed into the future
-- therefore costs the poll nothing and cannot crowd undelayed tasks out of
-- its bounded scan; the orchestrators read the earliest future run_at from
-- the second index to wake their poll when it comes.

-- +goose Up
CREATE INDEX tasks_waiting_undelayed_idx ON tasker.tasks (priority DESC, created_at)
    WHERE state = 'waiting_for_dependencies' AND run_at IS NULL;
CREATE INDEX tasks_delayed_idx ON tasker.tasks (run_at)
    WHERE state = 'waiting_for_dependencies' AND run_at IS NOT NULL;

-- +goose Down
DROP INDEX tasker.tasks_delayed_idx;
DROP INDEX tasker.tasks_waiting_undelayed_idx;
