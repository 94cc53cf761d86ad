-- Core schema: templates, tasks, steps, edges and their state history.
-- The current state lives on the row and changes only by compare-and-swap;
-- the transitions tables are the append-only history.

-- +goose Up
CREATE SCHEMA IF NOT EXISTS tasker;

CREATE TABLE tasker.task_namespaces (
    task_namespace_uuid uuid PRIMARY KEY,
    name                varchar(64) NOT NULL UNIQUE CHECK (name ~ '^[a-z][a-z0-9_]{0,47}$'),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tasker.named_tasks (
    named_task_uuid     uuid PRIMARY KEY,
    task_namespace_uuid uuid NOT NULL REFERENCES tasker.task_namespaces,
    name                varchar(64) NOT NULL,
    version             varchar(32) NOT NULL,
    description         text,
    -- The full template as JSON; orchestration reads templates from here.
    configuration       jsonb NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (task_namespace_uuid, name, version)
);

CREATE TABLE tasker.named_steps (
    named_step_uuid uuid PRIMARY KEY,
    name            varchar(128) NOT NULL UNIQUE,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tasker.tasks (
    task_uuid        uuid PRIMARY KEY,
    named_task_uuid  uuid NOT NULL REFERENCES tasker.named_tasks,
    state            varchar(32) NOT NULL DEFAULT 'pending' CHECK (state IN (
                         'pending', 'initializing', 'enqueuing_steps', 'steps_in_process',
                         'evaluating_results', 'waiting_for_dependencies', 'waiting_for_retry',
                         'blocked_by_failures', 'complete', 'error', 'cancelled', 'resolved_manually')),
    complete         boolean NOT NULL DEFAULT false,
    initiator        varchar(128),
    source_system    varchar(128),
    reason           varchar(128),
    priority         integer NOT NULL DEFAULT 0 CHECK (priority BETWEEN -100 AND 100),
    requested_at     timestamptz NOT NULL DEFAULT now(),
    state_changed_at timestamptz NOT NULL DEFAULT now(),
    completed_at     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    -- run_at is when a delayed task (run_at / delay) may start; NULL for a
    -- task that may start at once.
    run_at           timestamptz,
    -- The large columns come last and never change after insert: an update
    -- that stays on its page logs only the bytes between the first and the
    -- last column it changes, so they stay out of the WAL.
    context          jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(context) = 'object'),
    tags             jsonb NOT NULL DEFAULT '[]'
);
CREATE INDEX tasks_named_task_idx ON tasker.tasks (named_task_uuid);
-- Only tasks that may need the readiness poller are indexed, so its cost
-- follows the waiting work, not the table.
CREATE INDEX tasks_waiting_idx ON tasker.tasks (state, priority DESC, created_at)
    WHERE state IN ('pending', 'waiting_for_dependencies', 'waiting_for_retry');
CREATE INDEX tasks_unfinished_idx ON tasker.tasks (state) WHERE NOT complete;

CREATE TABLE tasker.workflow_steps (
    workflow_step_uuid uuid PRIMARY KEY,
    task_uuid          uuid NOT NULL REFERENCES tasker.tasks ON DELETE CASCADE,
    named_step_uuid    uuid NOT NULL REFERENCES tasker.named_steps,
    name               varchar(128) NOT NULL,
    handler            varchar(128) NOT NULL,
    state              varchar(40) NOT NULL DEFAULT 'pending' CHECK (state IN (
                           'pending', 'enqueued', 'in_progress', 'enqueued_for_orchestration',
                           'enqueued_as_error_for_orchestration', 'waiting_for_retry',
                           'complete', 'error', 'cancelled', 'resolved_manually')),
    retryable          boolean NOT NULL DEFAULT true,
    max_attempts       integer NOT NULL DEFAULT 3 CHECK (max_attempts BETWEEN 1 AND 100),
    attempts           integer NOT NULL DEFAULT 0,
    backoff_base_ms    integer NOT NULL DEFAULT 1000,
    backoff_cap_ms     integer NOT NULL DEFAULT 30000,
    timeout_ms         integer NOT NULL DEFAULT 30000,
    in_process         boolean NOT NULL DEFAULT false,
    processed          boolean NOT NULL DEFAULT false,
    processed_at       timestamptz,
    last_attempted_at  timestamptz,
    last_failure_at    timestamptz,
    backoff_request_ms integer,
    next_retry_at      timestamptz,
    lease_expires_at   timestamptz,
    worker_id          varchar(128),
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    -- Large columns last (see tasks): inputs never change, results once.
    inputs             jsonb,
    results            jsonb,
    UNIQUE (task_uuid, named_step_uuid)
);
CREATE INDEX workflow_steps_task_idx ON tasker.workflow_steps (task_uuid);
CREATE INDEX workflow_steps_retry_idx ON tasker.workflow_steps (next_retry_at)
    WHERE state = 'waiting_for_retry';
CREATE INDEX workflow_steps_lease_idx ON tasker.workflow_steps (lease_expires_at)
    WHERE state = 'in_progress';

CREATE TABLE tasker.workflow_step_edges (
    workflow_step_edge_uuid uuid PRIMARY KEY,
    from_step_uuid          uuid NOT NULL REFERENCES tasker.workflow_steps ON DELETE CASCADE,
    to_step_uuid            uuid NOT NULL REFERENCES tasker.workflow_steps ON DELETE CASCADE,
    name                    varchar(32) NOT NULL DEFAULT 'provides',
    created_at              timestamptz NOT NULL DEFAULT now(),
    UNIQUE (from_step_uuid, to_step_uuid, name),
    CHECK (from_step_uuid <> to_step_uuid)
);
CREATE INDEX workflow_step_edges_to_idx ON tasker.workflow_step_edges (to_step_uuid);

CREATE TABLE tasker.task_transitions (
    task_transition_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_uuid          uuid NOT NULL REFERENCES tasker.tasks ON DELETE CASCADE,
    from_state         varchar(32),
    to_state           varchar(32) NOT NULL,
    reason             varchar(64),
    processor_uuid     uuid,
    metadata           jsonb NOT NULL DEFAULT '{}',
    created_at         timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX task_transitions_task_idx ON tasker.task_transitions (task_uuid, task_transition_id);

CREATE TABLE tasker.workflow_step_transitions (
    workflow_step_transition_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workflow_step_uuid          uuid NOT NULL REFERENCES tasker.workflow_steps ON DELETE CASCADE,
    task_uuid                   uuid NOT NULL,
    from_state                  varchar(40),
    to_state                    varchar(40) NOT NULL,
    reason                      varchar(64),
    attempt                     integer,
    worker_id                   varchar(128),
    metadata                    jsonb NOT NULL DEFAULT '{}',
    created_at                  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX workflow_step_transitions_step_idx ON tasker.workflow_step_transitions (workflow_step_uuid, workflow_step_transition_id);
CREATE INDEX workflow_step_transitions_task_idx ON tasker.workflow_step_transitions (task_uuid);

-- +goose Down
DROP SCHEMA tasker CASCADE;
