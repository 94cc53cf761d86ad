-- A worker message carries its task's priority, so a worker's polling claim
-- (claim_steps) takes the highest priority first and the oldest first within
-- a priority. The index is that order within a queue: the claim reads it
-- from the front and stops after as many visible messages as it wants,
-- instead of sorting the whole queue.

-- +goose Up
ALTER TABLE tasker.queue_messages ADD COLUMN priority integer NOT NULL DEFAULT 0;
CREATE INDEX queue_messages_priority_idx ON tasker.queue_messages (queue_name, priority DESC, msg_id);

-- +goose Down
DROP INDEX tasker.queue_messages_priority_idx;
ALTER TABLE tasker.queue_messages DROP COLUMN priority;
