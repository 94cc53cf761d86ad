-- The trace context (W3C traceparent/tracestate/baggage) of the request that
-- created a task. Work that resumes a task without a message to carry the
-- context (the readiness poller after a retry backoff) continues the task's
-- trace from here, so one task stays one trace; `tasker trace` reads the
-- trace ID from it.

-- +goose Up
ALTER TABLE tasker.tasks ADD COLUMN trace_context jsonb NOT NULL DEFAULT '{}';

-- +goose Down
ALTER TABLE tasker.tasks DROP COLUMN trace_context;
