-- Retention pruning: finished tasks are deleted oldest first in small
-- batches once their retention has passed. Only finished tasks are indexed,
-- so the pruner's cost follows what there is to prune.

-- +goose Up
CREATE INDEX tasks_finished_idx ON tasker.tasks (completed_at)
    WHERE state IN ('complete', 'error', 'cancelled', 'resolved_manually');
CREATE INDEX queue_archive_archived_idx ON tasker.queue_archive (archived_at);

-- +goose Down
DROP INDEX tasker.queue_archive_archived_idx;
DROP INDEX tasker.tasks_finished_idx;
