-- Orchestration SQL functions. Each is called from Go through one typed
-- wrapper that times it. Because the state lives on the row, none of them
-- scans transition history: cost follows the steps of one task or the
-- work that is ready.
--
-- The set-based functions of the hot path are plpgsql with generic plans
-- (plan_cache_mode = force_generic_plan): PostgreSQL parses and plans the
-- body of a LANGUAGE sql function on every call, and re-plans a statement
-- over an array parameter on every call unless told to keep one plan; the
-- two together were a quarter of the database's CPU per step in a profile
-- of a saturated engine. Their statements look rows up by key, so one plan
-- per connection fits every call, and they plan without sequential scans
-- (enable_seqscan = off): a plan made while the tables were small (a new
-- database, a burst of tasks before autovacuum's next ANALYZE, which comes
-- up to a minute later) would otherwise scan workflow_steps and tasks on
-- every call once they are large; an open-loop benchmark at 2,000 tasks/s
-- on a fresh database collapsed to 118 completed tasks/s that way.

-- +goose Up

-- State facts the functions below share, defined once (Go's twins are in
-- internal/state): which task states are final, which step states satisfy a
-- dependency.
-- +goose StatementBegin
CREATE FUNCTION tasker.task_state_is_terminal(p_state text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT p_state IN ('complete', 'error', 'cancelled', 'resolved_manually');
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION tasker.step_state_satisfies_dependencies(p_state text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT p_state IN ('complete', 'resolved_manually');
$$;
-- +goose StatementEnd

-- Readiness of every step of several tasks in one read: orchestration
-- evaluates a batch of tasks at once. get_step_readiness_status is this for
-- one task.
-- +goose StatementBegin
CREATE FUNCTION tasker.step_readiness(p_task_uuids uuid[])
RETURNS TABLE (
    workflow_step_uuid uuid, task_uuid uuid, named_step_uuid uuid, name text, current_state text,
    dependencies_satisfied boolean, retry_eligible boolean, ready_for_execution boolean,
    last_failure_at timestamptz, next_retry_at timestamptz, total_parents integer, completed_parents integer,
    attempts integer, max_attempts integer, backoff_request_ms integer, last_attempted_at timestamptz)
LANGUAGE plpgsql STABLE SET plan_cache_mode = force_generic_plan SET enable_seqscan = off AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT s.workflow_step_uuid, s.task_uuid, s.named_step_uuid, s.name::text, s.state::text,
           coalesce(p.total, 0) = coalesce(p.done, 0),
           (s.attempts = 0 OR (s.retryable AND s.attempts < s.max_attempts)),
           (s.state IN ('pending', 'waiting_for_retry')
               AND NOT s.processed AND NOT s.in_process
               AND coalesce(p.total, 0) = coalesce(p.done, 0)
               AND (s.attempts = 0 OR (s.retryable AND s.attempts < s.max_attempts))
               AND (s.next_retry_at IS NULL OR s.next_retry_at <= clock_timestamp())),
           s.last_failure_at, s.next_retry_at,
           coalesce(p.total, 0)::integer, coalesce(p.done, 0)::integer,
           s.attempts, s.max_attempts, s.backoff_request_ms, s.last_attempted_at
    FROM tasker.workflow_steps s
    LEFT JOIN LATERAL (
        SELECT count(*) AS total,
               count(*) FILTER (WHERE tasker.step_state_satisfies_dependencies(ps.state)) AS done
        FROM tasker.workflow_step_edges e
        JOIN tasker.workflow_steps ps ON ps.workflow_step_uuid = e.from_step_uuid
        WHERE e.to_step_uuid = s.workflow_step_uuid
    ) p ON true
    WHERE s.task_uuid = ANY (p_task_uuids)
    ORDER BY s.task_uuid, s.workflow_step_uuid;
END;
$$;
-- +goose StatementEnd

-- Locks the tasks of a batch of results, in task order so that two
-- orchestrators locking overlapping sets cannot deadlock, and reads what
-- applying each result needs of its task and step. Element i of the two
-- arrays is one result's task and step; one whose task or step is gone is
-- left out. FOR NO KEY UPDATE serialises orchestration's decisions about a
-- task without blocking the foreign-key checks of rows inserted under it.
-- +goose StatementBegin
CREATE FUNCTION tasker.lock_result_targets(p_task_uuids uuid[], p_step_uuids uuid[])
RETURNS TABLE (
    task_uuid uuid, task_state text, correlation_id uuid, namespace text, task_name text,
    step_uuid uuid, step_name text, step_state text, attempts integer, max_attempts integer, retryable boolean,
    backoff_base_ms integer, backoff_cap_ms integer, results jsonb)
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan SET enable_seqscan = off AS $$
BEGIN
    RETURN QUERY
    SELECT t.task_uuid, t.state::text, t.correlation_id, ns.name::text, nt.name::text,
           s.workflow_step_uuid, s.name::text, s.state::text, s.attempts, s.max_attempts, s.retryable,
           s.backoff_base_ms, s.backoff_cap_ms, s.results
    FROM unnest(p_task_uuids, p_step_uuids) AS r(task_uuid, step_uuid)
    JOIN tasker.tasks t ON t.task_uuid = r.task_uuid
    JOIN tasker.named_tasks nt ON nt.named_task_uuid = t.named_task_uuid
    JOIN tasker.task_namespaces ns ON ns.task_namespace_uuid = nt.task_namespace_uuid
    JOIN tasker.workflow_steps s ON s.workflow_step_uuid = r.step_uuid AND s.task_uuid = t.task_uuid
    ORDER BY t.task_uuid
    FOR NO KEY UPDATE OF t;
END;
$$;
-- +goose StatementEnd

-- Compare-and-swap of many steps' states, their side-effect columns and
-- their history rows, in one statement. Element i of each array describes
-- one step (no step twice). Returns the steps that moved; a step not in its
-- from-state is left alone. transition_step_state_atomic is this for one.
-- +goose StatementBegin
CREATE FUNCTION tasker.transition_step_states(
    p_step_uuids uuid[], p_from_states text[], p_to_states text[], p_metadata jsonb[], p_backoff_ms integer[])
RETURNS TABLE (step_uuid uuid) LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan SET enable_seqscan = off AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH r AS (
        SELECT * FROM unnest(p_step_uuids, p_from_states, p_to_states, p_metadata, p_backoff_ms)
            AS r(step_uuid, from_state, to_state, metadata, backoff_ms)
    ), u AS (
        UPDATE tasker.workflow_steps s
        SET state = r.to_state,
            updated_at = clock_timestamp(),
            in_process = r.to_state = 'in_progress',
            processed = r.to_state IN ('complete', 'cancelled', 'resolved_manually'),
            processed_at = CASE WHEN r.to_state IN ('complete', 'cancelled', 'resolved_manually')
                                THEN clock_timestamp() ELSE s.processed_at END,
            last_failure_at = CASE WHEN r.to_state IN ('error', 'waiting_for_retry')
                                   THEN clock_timestamp() ELSE s.last_failure_at END,
            backoff_request_ms = CASE WHEN r.to_state = 'waiting_for_retry' THEN r.backoff_ms ELSE s.backoff_request_ms END,
            next_retry_at = CASE WHEN r.to_state = 'waiting_for_retry'
                                 THEN clock_timestamp() + make_interval(secs => coalesce(r.backoff_ms, 0) / 1000.0)
                                 WHEN r.to_state IN ('pending', 'enqueued') THEN s.next_retry_at
                                 ELSE NULL END,
            lease_expires_at = CASE WHEN r.to_state = 'in_progress' THEN s.lease_expires_at ELSE NULL END,
            attempts = CASE WHEN r.metadata ->> 'reason' = 'reset_for_retry' THEN 0 ELSE s.attempts END
        FROM r
        WHERE s.workflow_step_uuid = r.step_uuid AND s.state = r.from_state
        RETURNING s.workflow_step_uuid, s.task_uuid, s.attempts, r.from_state, r.to_state, r.metadata
    ), h AS (
        INSERT INTO tasker.workflow_step_transitions
            (workflow_step_uuid, task_uuid, from_state, to_state, reason, attempt, metadata, correlation_id)
        SELECT u.workflow_step_uuid, u.task_uuid, u.from_state, u.to_state, u.metadata ->> 'reason', u.attempts,
               coalesce(u.metadata, '{}'), t.correlation_id
        FROM u JOIN tasker.tasks t ON t.task_uuid = u.task_uuid
        ORDER BY u.workflow_step_uuid
    )
    SELECT u.workflow_step_uuid FROM u;
END;
$$;
-- +goose StatementEnd

-- Moves many tasks along their paths in one statement: element i of each
-- array is one hop (task, from, to, reason), a task's hops in path order.
-- Each task's row is updated once (compare-and-swap on its first hop's
-- from-state) and gets one history row per hop. Returns the tasks that moved.
-- +goose StatementBegin
CREATE FUNCTION tasker.transition_task_paths(
    p_task_uuids uuid[], p_from_states text[], p_to_states text[], p_reasons text[], p_processor_uuid uuid)
RETURNS TABLE (task_uuid uuid) LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan SET enable_seqscan = off AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH h AS (
        SELECT * FROM unnest(p_task_uuids, p_from_states, p_to_states, p_reasons) WITH ORDINALITY
            AS h(task_uuid, from_state, to_state, reason, ord)
    ), p AS (
        SELECT h.task_uuid, (array_agg(h.from_state ORDER BY h.ord))[1] AS from_state,
               (array_agg(h.to_state ORDER BY h.ord DESC))[1] AS to_state
        FROM h GROUP BY h.task_uuid
    ), u AS (
        UPDATE tasker.tasks t
        SET state = p.to_state,
            state_changed_at = clock_timestamp(),
            updated_at = clock_timestamp(),
            complete = (p.to_state = 'complete'),
            completed_at = CASE WHEN tasker.task_state_is_terminal(p.to_state) THEN clock_timestamp() END
        FROM p
        WHERE t.task_uuid = p.task_uuid AND t.state = p.from_state
        RETURNING t.task_uuid, t.correlation_id
    ), i AS (
        INSERT INTO tasker.task_transitions (task_uuid, from_state, to_state, reason, processor_uuid, metadata, correlation_id)
        SELECT h.task_uuid, h.from_state, h.to_state, h.reason, p_processor_uuid,
               jsonb_build_object('reason', h.reason), u.correlation_id
        FROM h JOIN u ON u.task_uuid = h.task_uuid
        ORDER BY h.ord
    )
    SELECT u.task_uuid FROM u;
END;
$$;
-- +goose StatementEnd

-- Moves the ready steps of many tasks to enqueued and sends one worker
-- message per step, in one statement: element i of each array is one step
-- with its task, queue and message headers. Steps no longer pending (or
-- waiting for retry) are skipped. The caller holds the tasks' row locks.
-- enqueue_steps is this for one task.
-- +goose StatementBegin
CREATE FUNCTION tasker.enqueue_ready_steps(p_task_uuids uuid[], p_step_uuids uuid[], p_queues text[], p_headers jsonb[])
RETURNS TABLE (task_uuid uuid, step_uuid uuid, step_name text, msg_id bigint)
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan SET enable_seqscan = off AS $$
#variable_conflict use_column
DECLARE
    v_missing text;
BEGIN
    SELECT q INTO v_missing FROM unnest(p_queues) AS q
    WHERE NOT EXISTS (SELECT 1 FROM tasker.queues x WHERE x.queue_name = q) LIMIT 1;
    IF v_missing IS NOT NULL THEN
        RAISE EXCEPTION 'queue % does not exist', v_missing USING ERRCODE = 'undefined_object';
    END IF;
    RETURN QUERY
    WITH r AS (
        SELECT * FROM unnest(p_task_uuids, p_step_uuids, p_queues, p_headers) AS r(task_uuid, step_uuid, queue, headers)
    ), s AS (
        -- The caller holds the tasks' locks, so nothing else moves these
        -- steps: no row locks (each would write WAL) before the update.
        SELECT ws.workflow_step_uuid, ws.task_uuid, ws.name, ws.state, ws.attempts, r.queue, r.headers,
               t.correlation_id, t.priority, ns.name AS namespace
        FROM r
        JOIN tasker.workflow_steps ws ON ws.workflow_step_uuid = r.step_uuid AND ws.task_uuid = r.task_uuid
        JOIN tasker.tasks t ON t.task_uuid = ws.task_uuid
        JOIN tasker.named_tasks nt ON nt.named_task_uuid = t.named_task_uuid
        JOIN tasker.task_namespaces ns ON ns.task_namespace_uuid = nt.task_namespace_uuid
        WHERE ws.state IN ('pending', 'waiting_for_retry')
    ), u AS (
        UPDATE tasker.workflow_steps ws SET state = 'enqueued', updated_at = clock_timestamp()
        FROM s WHERE ws.workflow_step_uuid = s.workflow_step_uuid AND ws.state = s.state
    ), h AS (
        INSERT INTO tasker.workflow_step_transitions
            (workflow_step_uuid, task_uuid, from_state, to_state, reason, attempt, correlation_id)
        SELECT s.workflow_step_uuid, s.task_uuid, v.from_state, v.to_state, v.reason, s.attempts, s.correlation_id
        FROM s CROSS JOIN (VALUES (1, 'waiting_for_retry', 'pending', 'retry_ready'), (2, 'pending', 'enqueued', 'enqueue'))
            AS v(ord, from_state, to_state, reason)
        WHERE v.ord = 2 OR s.state = 'waiting_for_retry'
        ORDER BY s.workflow_step_uuid, v.ord
    ), m AS (
        -- Each message carries its task's priority, which orders the
        -- workers' polling claims (claim_steps).
        INSERT INTO tasker.queue_messages (queue_name, message, headers, priority)
        SELECT s.queue,
               jsonb_build_object('task_uuid', s.task_uuid, 'step_uuid', s.workflow_step_uuid,
                                  'correlation_id', s.correlation_id, 'namespace', s.namespace, 'step_name', s.name,
                                  'attempt', s.attempts + 1),
               coalesce(s.headers, '{}'), s.priority
        FROM s ORDER BY s.task_uuid, s.workflow_step_uuid
        RETURNING tasker.queue_messages.msg_id, tasker.queue_messages.message
    )
    SELECT (m.message ->> 'task_uuid')::uuid, (m.message ->> 'step_uuid')::uuid, m.message ->> 'step_name', m.msg_id
    FROM m ORDER BY m.msg_id;
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION tasker.get_step_readiness_status(input_task_uuid uuid, step_uuids uuid[] DEFAULT NULL)
RETURNS TABLE (
    workflow_step_uuid uuid, task_uuid uuid, named_step_uuid uuid, name text, current_state text,
    dependencies_satisfied boolean, retry_eligible boolean, ready_for_execution boolean,
    last_failure_at timestamptz, next_retry_at timestamptz, total_parents integer, completed_parents integer,
    attempts integer, max_attempts integer, backoff_request_ms integer, last_attempted_at timestamptz)
LANGUAGE sql STABLE AS $$
    SELECT r.* FROM tasker.step_readiness(ARRAY[input_task_uuid]) r
    WHERE step_uuids IS NULL OR r.workflow_step_uuid = ANY (step_uuids)
    ORDER BY r.workflow_step_uuid;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION tasker.get_task_execution_context(input_task_uuid uuid)
RETURNS TABLE (
    task_uuid uuid, named_task_uuid uuid, status text,
    total_steps bigint, pending_steps bigint, enqueued_steps bigint, in_progress_steps bigint,
    awaiting_orchestration_steps bigint, waiting_for_retry_steps bigint, completed_steps bigint,
    failed_steps bigint, ready_steps bigint,
    execution_status text, recommended_action text, completion_percentage numeric, health_status text)
LANGUAGE sql STABLE AS $$
    WITH r AS (SELECT * FROM tasker.get_step_readiness_status(input_task_uuid)),
    c AS (
        SELECT count(*) AS total,
               count(*) FILTER (WHERE current_state = 'pending') AS pending,
               count(*) FILTER (WHERE current_state = 'enqueued') AS enqueued,
               count(*) FILTER (WHERE current_state = 'in_progress') AS in_progress,
               count(*) FILTER (WHERE current_state IN ('enqueued_for_orchestration', 'enqueued_as_error_for_orchestration')) AS awaiting,
               count(*) FILTER (WHERE current_state = 'waiting_for_retry') AS retrying,
               count(*) FILTER (WHERE current_state IN ('complete', 'resolved_manually')) AS completed,
               count(*) FILTER (WHERE current_state = 'error') AS failed,
               count(*) FILTER (WHERE ready_for_execution) AS ready
        FROM r
    )
    SELECT t.task_uuid, t.named_task_uuid, t.state::text,
           c.total, c.pending, c.enqueued, c.in_progress, c.awaiting, c.retrying, c.completed, c.failed, c.ready,
           CASE WHEN c.failed > 0 THEN 'blocked_by_failures'
                WHEN c.ready > 0 THEN 'has_ready_steps'
                WHEN c.enqueued + c.in_progress + c.awaiting > 0 THEN 'processing'
                WHEN c.total > 0 AND c.completed = c.total THEN 'all_complete'
                ELSE 'waiting_for_dependencies' END,
           CASE WHEN c.failed > 0 THEN 'handle_failures'
                WHEN c.ready > 0 THEN 'execute_ready_steps'
                WHEN c.enqueued + c.in_progress + c.awaiting > 0 THEN 'wait_for_completion'
                WHEN c.total > 0 AND c.completed = c.total THEN 'finalize_task'
                ELSE 'wait_for_dependencies' END,
           CASE WHEN c.total = 0 THEN 0 ELSE round(c.completed::numeric / c.total * 100, 2) END,
           CASE WHEN c.failed > 0 THEN 'blocked'
                WHEN c.retrying > 0 THEN 'recovering'
                ELSE 'healthy' END
    FROM tasker.tasks t CROSS JOIN c
    WHERE t.task_uuid = input_task_uuid;
$$;
-- +goose StatementEnd

-- Candidates are pending or waiting tasks and tasks owning a step whose
-- retry backoff has elapsed, both found through partial indexes, so the cost
-- follows the ready work rather than the size of the tables.
-- +goose StatementBegin
CREATE FUNCTION tasker.get_next_ready_tasks(p_limit integer DEFAULT 5)
RETURNS TABLE (
    task_uuid uuid, task_name text, priority integer, namespace_name text,
    ready_steps_count bigint, computed_priority numeric, current_state text)
LANGUAGE sql STABLE AS $$
    -- Each source of candidates is read in index order and bounded (twice
    -- the limit), so a poll's cost follows p_limit, not the backlog. Ready
    -- counts come from what makes a candidate ready, without the costly
    -- execution context where the answer is known: a pending task's ready
    -- steps are its roots; a retry-due step already ran, so its parents are
    -- complete and it is ready. Only the waiting_for_dependencies safety net
    -- needs the full context; it takes undelayed tasks by priority and
    -- delayed ones whose run_at has come by run_at, so a task delayed into
    -- the future costs the poll nothing.
    WITH due AS (
        SELECT s.task_uuid, count(*) AS ready
        FROM (SELECT ws.task_uuid FROM tasker.workflow_steps ws
              -- statement_timestamp(), not the volatile clock_timestamp(): an
              -- index range over due retries, not a filter over every retry.
              WHERE ws.state = 'waiting_for_retry' AND ws.next_retry_at <= statement_timestamp()
              ORDER BY ws.next_retry_at LIMIT greatest(p_limit, 1) * 2) s
        GROUP BY s.task_uuid
    ), cand AS (
        SELECT p.task_uuid,
               (SELECT count(*) FROM tasker.workflow_steps ws WHERE ws.task_uuid = p.task_uuid
                  AND NOT EXISTS (SELECT 1 FROM tasker.workflow_step_edges e WHERE e.to_step_uuid = ws.workflow_step_uuid)) AS ready
        FROM (SELECT t.task_uuid FROM tasker.tasks t WHERE t.state = 'pending'
              ORDER BY t.priority DESC, t.created_at LIMIT greatest(p_limit, 1) * 2) p
        UNION ALL
        SELECT d.task_uuid, d.ready FROM due d
        UNION ALL
        SELECT w.task_uuid, ctx.ready_steps
        FROM ((SELECT t.task_uuid FROM tasker.tasks t WHERE t.state = 'waiting_for_dependencies' AND t.run_at IS NULL
               ORDER BY t.priority DESC, t.created_at LIMIT greatest(p_limit, 1) * 2)
              UNION ALL
              -- statement_timestamp(), not the volatile clock_timestamp(), so
              -- that it bounds the index scan instead of filtering every
              -- delayed task's entry.
              (SELECT t.task_uuid FROM tasker.tasks t WHERE t.state = 'waiting_for_dependencies'
                 AND t.run_at <= statement_timestamp()
               ORDER BY t.run_at LIMIT greatest(p_limit, 1) * 2)) w
        CROSS JOIN LATERAL tasker.get_task_execution_context(w.task_uuid) ctx
        WHERE ctx.execution_status = 'has_ready_steps'
    ), per_task AS (
        SELECT c.task_uuid, max(c.ready) AS ready FROM cand c GROUP BY c.task_uuid
    )
    SELECT t.task_uuid, nt.name::text, t.priority, ns.name::text, pt.ready,
           (CASE
               WHEN clock_timestamp() - t.state_changed_at < interval '1 hour'
                   THEN t.priority + extract(epoch FROM clock_timestamp() - t.created_at) / 3600.0 * 0.1
               WHEN clock_timestamp() - t.state_changed_at < interval '24 hours'
                   THEN t.priority * exp(-extract(epoch FROM clock_timestamp() - t.state_changed_at) / 43200.0)
               ELSE 0.1 END)::numeric AS computed_priority,
           t.state::text
    FROM per_task pt
    JOIN tasker.tasks t ON t.task_uuid = pt.task_uuid
    JOIN tasker.named_tasks nt ON nt.named_task_uuid = t.named_task_uuid
    JOIN tasker.task_namespaces ns ON ns.task_namespace_uuid = nt.task_namespace_uuid
    -- A step's retry may come due while its siblings still run; a terminal
    -- task is never resumed.
    WHERE t.state IN ('pending', 'waiting_for_dependencies', 'waiting_for_retry', 'evaluating_results', 'steps_in_process')
    ORDER BY computed_priority DESC, t.created_at
    LIMIT p_limit;
$$;
-- +goose StatementEnd

-- Compare-and-swap of a task's state plus its history row. Returns false,
-- writing nothing, when the task is not in p_from_state.
-- +goose StatementBegin
CREATE FUNCTION tasker.transition_task_state_atomic(
    p_task_uuid uuid, p_from_state text, p_to_state text, p_processor_uuid uuid, p_metadata jsonb DEFAULT '{}')
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    v_corr uuid;
BEGIN
    UPDATE tasker.tasks
    SET state = p_to_state,
        state_changed_at = clock_timestamp(),
        updated_at = clock_timestamp(),
        complete = (p_to_state = 'complete'),
        completed_at = CASE WHEN p_to_state IN ('complete', 'error', 'cancelled', 'resolved_manually')
                            THEN clock_timestamp() END
    WHERE task_uuid = p_task_uuid AND state = p_from_state
    RETURNING correlation_id INTO v_corr;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    INSERT INTO tasker.task_transitions (task_uuid, from_state, to_state, reason, processor_uuid, metadata, correlation_id)
    VALUES (p_task_uuid, p_from_state, p_to_state, p_metadata ->> 'reason', p_processor_uuid,
            coalesce(p_metadata, '{}'), v_corr);
    RETURN true;
END;
$$;
-- +goose StatementEnd

-- Compare-and-swap of a step's state, its side-effect columns, and its history row.
-- +goose StatementBegin
CREATE FUNCTION tasker.transition_step_state_atomic(
    p_step_uuid uuid, p_from_state text, p_to_state text, p_metadata jsonb DEFAULT '{}', p_backoff_ms integer DEFAULT NULL)
RETURNS boolean LANGUAGE sql AS $$
    SELECT count(*) = 1 FROM tasker.transition_step_states(
        ARRAY[p_step_uuid], ARRAY[p_from_state], ARRAY[p_to_state], ARRAY[coalesce(p_metadata, '{}')], ARRAY[p_backoff_ms]);
$$;
-- +goose StatementEnd

-- Every completed ancestor of a step, nearest first: what its handler may read.
-- +goose StatementBegin
CREATE FUNCTION tasker.get_step_transitive_dependencies(target_step_uuid uuid)
RETURNS TABLE (workflow_step_uuid uuid, task_uuid uuid, step_name text, current_state text, results jsonb, processed boolean, distance integer)
LANGUAGE sql STABLE AS $$
    WITH RECURSIVE anc (step_uuid, distance) AS (
        SELECT e.from_step_uuid, 1 FROM tasker.workflow_step_edges e WHERE e.to_step_uuid = target_step_uuid
        UNION
        SELECT e.from_step_uuid, a.distance + 1
        FROM tasker.workflow_step_edges e JOIN anc a ON e.to_step_uuid = a.step_uuid
        WHERE a.distance < 50
    )
    SELECT s.workflow_step_uuid, s.task_uuid, s.name::text, s.state::text, s.results, s.processed, min(a.distance)::integer
    FROM anc a JOIN tasker.workflow_steps s ON s.workflow_step_uuid = a.step_uuid
    GROUP BY s.workflow_step_uuid
    ORDER BY min(a.distance), s.name;
$$;
-- +goose StatementEnd

-- A task can be finalized when every step completed (→ complete) or when a
-- step failed permanently and nothing is still in flight (→ error).
-- +goose StatementBegin
CREATE FUNCTION tasker.can_finalize_task(p_task_uuid uuid)
RETURNS TABLE (can_finalize boolean, execution_status text, target_state text, current_state text)
LANGUAGE sql STABLE AS $$
    SELECT CASE
               WHEN c.status IN ('complete', 'error', 'cancelled', 'resolved_manually') THEN false
               WHEN c.execution_status = 'all_complete' THEN true
               WHEN c.execution_status = 'blocked_by_failures'
                    AND c.enqueued_steps + c.in_progress_steps + c.awaiting_orchestration_steps = 0 THEN true
               ELSE false END,
           c.execution_status,
           CASE WHEN c.execution_status = 'all_complete' THEN 'complete'
                WHEN c.execution_status = 'blocked_by_failures' THEN 'error' END,
           c.status
    FROM tasker.get_task_execution_context(p_task_uuid) c;
$$;
-- +goose StatementEnd

-- Locks the task row for the rest of the caller's transaction when it can be
-- finalized, so two orchestrators never finalize one task twice.
-- +goose StatementBegin
CREATE FUNCTION tasker.claim_task_for_finalization(p_task_uuid uuid, p_processor_uuid uuid)
RETURNS TABLE (claimed boolean, current_state text, target_state text, execution_status text)
LANGUAGE plpgsql AS $$
DECLARE
    v_state text;
    f record;
BEGIN
    SELECT t.state INTO v_state FROM tasker.tasks t WHERE t.task_uuid = p_task_uuid FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT false, NULL::text, NULL::text, NULL::text;
        RETURN;
    END IF;
    SELECT * INTO f FROM tasker.can_finalize_task(p_task_uuid);
    RETURN QUERY SELECT f.can_finalize, v_state, f.target_state, f.execution_status;
END;
$$;
-- +goose StatementEnd

-- Moves ready steps to enqueued and sends one message per step to the
-- namespace's worker queue, all in the caller's transaction: enqueue_ready_steps
-- for one task, with an optional NOTIFY at commit.
-- +goose StatementBegin
CREATE FUNCTION tasker.enqueue_steps(p_task_uuid uuid, p_step_uuids uuid[], p_queue text, p_headers jsonb DEFAULT '{}', p_notify boolean DEFAULT true)
RETURNS TABLE (step_uuid uuid, step_name text, msg_id bigint)
LANGUAGE plpgsql AS $$
DECLARE
    n integer := coalesce(cardinality(p_step_uuids), 0);
    e record;
BEGIN
    FOR e IN SELECT * FROM tasker.enqueue_ready_steps(array_fill(p_task_uuid, ARRAY[n]), p_step_uuids,
            array_fill(p_queue, ARRAY[n]), array_fill(coalesce(p_headers, '{}'), ARRAY[n])) LOOP
        step_uuid := e.step_uuid;
        step_name := e.step_name;
        msg_id := e.msg_id;
        IF p_notify THEN
            PERFORM pg_notify(p_queue, tasker.queue_notify_payload(e.msg_id, p_headers));
        END IF;
        RETURN NEXT;
    END LOOP;
END;
$$;
-- +goose StatementEnd

-- The step a worker message names, or NULL when the message is malformed
-- (a regex rather than an EXCEPTION block: that would open a subtransaction
-- on every claim). Inlined by the planner where it is used.
-- +goose StatementBegin
CREATE FUNCTION tasker.message_step_uuid(p_message jsonb) RETURNS uuid
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN p_message ->> 'step_uuid' ~ '^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$'
                THEN (p_message ->> 'step_uuid')::uuid END;
$$;
-- +goose StatementEnd

-- The results of a step's completed ancestors, by step name: what its
-- handler receives as dependency results. One definition for both claim
-- paths. Every row is reached by key from the step: the edges per step
-- and each ancestor's row are lateral lookups (OFFSET 0 keeps them so),
-- because a plan made while the tables were small once joined the
-- ancestors against a scan of every completed step (a 17-step claim took
-- 155 ms with 7,400 steps in the table).
-- +goose StatementBegin
CREATE FUNCTION tasker.step_dependency_results(p_step_uuid uuid) RETURNS jsonb
LANGUAGE plpgsql STABLE SET plan_cache_mode = force_generic_plan SET enable_seqscan = off AS $$
DECLARE
    v_results jsonb;
BEGIN
    WITH RECURSIVE anc (step_uuid, depth) AS (
        SELECT e.from_step_uuid, 1 FROM tasker.workflow_step_edges e WHERE e.to_step_uuid = p_step_uuid
        UNION
        SELECT e.from_step_uuid, a.depth + 1
        FROM anc a CROSS JOIN LATERAL (
            SELECT x.from_step_uuid FROM tasker.workflow_step_edges x WHERE x.to_step_uuid = a.step_uuid OFFSET 0) e
        WHERE a.depth < 50)
    SELECT coalesce(jsonb_object_agg(d.name, d.results -> 'result'), '{}') INTO v_results
    FROM (SELECT DISTINCT anc.step_uuid FROM anc) a
    CROSS JOIN LATERAL (
        SELECT ws.name, ws.results FROM tasker.workflow_steps ws
        WHERE ws.workflow_step_uuid = a.step_uuid
          AND ws.state IN ('complete', 'resolved_manually') AND ws.results IS NOT NULL
        OFFSET 0) d;
    RETURN v_results;
END;
$$;
-- +goose StatementEnd

-- Worker claim of a step whose message the caller has just hidden: enqueued →
-- in_progress (attempts + 1), or a reclaim of a step whose previous worker's
-- lease expired. Returns what the handler needs in the same round trip.
-- outcome: claimed | reclaimed | exhausted (lease expired on the last attempt) | busy (another worker holds a live lease) | stale (the step is past this message; the message is archived).
-- +goose StatementBegin
CREATE FUNCTION tasker.claim_step_message(p_queue text, p_msg_id bigint, p_message jsonb, p_lease_ms integer, p_worker_id text)
RETURNS TABLE (
    outcome text, task_uuid uuid, step_uuid uuid, step_name text, handler text, attempt integer, max_attempts integer,
    timeout_ms integer, inputs jsonb, task_context jsonb, correlation_id uuid, parent_correlation_id uuid,
    namespace text, task_name text, task_version text, dependency_results jsonb, prior_traceparent text)
LANGUAGE plpgsql AS $$
DECLARE
    s record;
    v_outcome text;
    v_from text;
BEGIN
    -- A malformed message must not wedge the queue: it is archived as stale.
    -- (A regex rather than an EXCEPTION block: that would open a
    -- subtransaction on every claim.)
    IF coalesce(p_message ->> 'step_uuid', '') !~ '^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$' THEN
        PERFORM tasker.queue_archive(p_queue, p_msg_id);
        RETURN QUERY SELECT 'stale'::text, NULL::uuid, NULL::uuid, NULL::text, NULL::text, NULL::integer,
            NULL::integer, NULL::integer, NULL::jsonb, NULL::jsonb, NULL::uuid, NULL::uuid, NULL::text, NULL::text, NULL::text, NULL::jsonb, NULL::text;
        RETURN;
    END IF;
    SELECT ws.* INTO s FROM tasker.workflow_steps ws
    WHERE ws.workflow_step_uuid = (p_message ->> 'step_uuid')::uuid FOR UPDATE;
    IF NOT FOUND THEN
        PERFORM tasker.queue_archive(p_queue, p_msg_id);
        RETURN QUERY SELECT 'stale'::text, NULL::uuid, (p_message ->> 'step_uuid')::uuid, NULL::text, NULL::text, NULL::integer,
            NULL::integer, NULL::integer, NULL::jsonb, NULL::jsonb, NULL::uuid, NULL::uuid, NULL::text, NULL::text, NULL::text, NULL::jsonb, NULL::text;
        RETURN;
    END IF;
    IF s.state = 'enqueued' THEN
        v_outcome := 'claimed';
    ELSIF s.state = 'in_progress' AND s.lease_expires_at < clock_timestamp() THEN
        v_outcome := CASE WHEN s.attempts >= s.max_attempts THEN 'exhausted' ELSE 'reclaimed' END;
    ELSIF s.state = 'in_progress' THEN
        v_outcome := 'busy';
    ELSE
        v_outcome := 'stale';
    END IF;

    IF v_outcome = 'stale' THEN
        PERFORM tasker.queue_archive(p_queue, p_msg_id);
    ELSIF v_outcome = 'busy' THEN
        -- Reading hid the message for a whole lease; the holder's lease may end
        -- sooner, and a reclaim must not wait a lease longer than that.
        UPDATE tasker.queue_messages q SET vt = s.lease_expires_at WHERE q.msg_id = p_msg_id;
    ELSIF v_outcome IN ('claimed', 'reclaimed') THEN
        v_from := s.state;
        UPDATE tasker.workflow_steps ws
        SET state = 'in_progress', in_process = true, attempts = ws.attempts + 1,
            last_attempted_at = clock_timestamp(), updated_at = clock_timestamp(),
            lease_expires_at = clock_timestamp() + make_interval(secs => p_lease_ms / 1000.0),
            worker_id = p_worker_id
        WHERE ws.workflow_step_uuid = s.workflow_step_uuid;
        INSERT INTO tasker.workflow_step_transitions
            (workflow_step_uuid, task_uuid, from_state, to_state, reason, attempt, worker_id, correlation_id)
        VALUES (s.workflow_step_uuid, s.task_uuid, v_from, 'in_progress',
                CASE WHEN v_outcome = 'claimed' THEN 'claimed' ELSE 'lease_expired_reclaim' END,
                s.attempts + 1, p_worker_id, (p_message ->> 'correlation_id')::uuid);
        s.attempts := s.attempts + 1;
    ELSIF v_outcome = 'exhausted' THEN
        -- The lease expired on the last allowed attempt: the worker reports it as a failure without running the handler.
        UPDATE tasker.workflow_steps ws
        SET lease_expires_at = clock_timestamp() + make_interval(secs => p_lease_ms / 1000.0), worker_id = p_worker_id,
            updated_at = clock_timestamp()
        WHERE ws.workflow_step_uuid = s.workflow_step_uuid;
    END IF;

    RETURN QUERY
    SELECT v_outcome, s.task_uuid, s.workflow_step_uuid, s.name::text, s.handler::text, s.attempts, s.max_attempts,
           s.timeout_ms, s.inputs, t.context, t.correlation_id, t.parent_correlation_id,
           ns.name::text, nt.name::text, nt.version::text,
           CASE WHEN v_outcome IN ('claimed', 'reclaimed') THEN
               tasker.step_dependency_results(s.workflow_step_uuid)
           END,
           s.results -> 'metadata' ->> 'traceparent'
    FROM tasker.tasks t
    JOIN tasker.named_tasks nt ON nt.named_task_uuid = t.named_task_uuid
    JOIN tasker.task_namespaces ns ON ns.task_namespace_uuid = nt.task_namespace_uuid
    WHERE t.task_uuid = s.task_uuid;
END;
$$;
-- +goose StatementEnd

-- Claim by message ids (the NOTIFY path, one statement for every wake-up a
-- worker has a free slot for), or, with p_msg_ids NULL, up to p_qty visible
-- messages at least p_min_age_ms old (the poller's claim_steps): hide the
-- messages for the lease, then claim their steps. queue_wait_ms is how long
-- a message waited between its enqueue and this read, on the database's
-- clock (tasker_message_queue_wait_duration_milliseconds).
--
-- The common case, a step still enqueued, is set-based: one statement moves
-- every such step to in_progress, writes all their history rows and returns
-- every claim. The uncommon ones (a reclaim after an expired lease,
-- exhausted, busy, stale, malformed) go one by one through
-- claim_step_message.
--
-- Messages, then steps (in uuid order), are locked with SKIP LOCKED: a claim
-- never waits for a lock, so it cannot take part in a deadlock. A message
-- another claimer is hiding right now is skipped; one whose step another
-- transaction holds (a result being stored after its lease expired, a
-- heartbeat, a cancel) is made visible again for a later claim.
--
-- The claim commits without waiting for its WAL flush (synchronous_commit
-- off): if the server loses it in a crash, the step is still enqueued and
-- its message visible again, so it is simply claimed again (steps run at
-- least once either way). WAL is flushed in order, so the result submission
-- that follows (durable) makes the claim durable too.
-- It runs with generic plans (as submit_step_results and extend_step_leases
-- do): PostgreSQL would otherwise find a statement over an array parameter
-- cheaper to plan for each call's array and plan it again on every call (a
-- fifth of a claim's time in a profile); the generic plans use the same
-- indexes.
-- +goose StatementBegin
CREATE FUNCTION tasker.claim_step_messages(p_queue text, p_msg_ids bigint[], p_lease_ms integer, p_worker_id text,
    p_qty integer DEFAULT NULL, p_min_age_ms integer DEFAULT 0)
RETURNS TABLE (
    msg_id bigint, read_ct integer, headers jsonb, queue_wait_ms double precision,
    outcome text, task_uuid uuid, step_uuid uuid, step_name text, handler text, attempt integer, max_attempts integer,
    timeout_ms integer, inputs jsonb, task_context jsonb, correlation_id uuid, parent_correlation_id uuid,
    namespace text, task_name text, task_version text, dependency_results jsonb, prior_traceparent text)
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan SET enable_seqscan = off AS $$
DECLARE
    v_msgs tasker.queue_messages[];
    v_steps uuid[];
    v_locked uuid[];
    v_enqueued uuid[];
    v_released bigint[];
    v_claimed integer;
    r record;
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    IF p_msg_ids IS NOT NULL THEN
        -- Locked through the primary key, updated by the addresses the
        -- lock returned (a locked row stays where it is); the queue's name
        -- is checked on the locked rows, not offered to the planner: with
        -- a queue's statistics from an empty moment it would otherwise
        -- scan the whole queue by name, once per message.
        WITH v AS MATERIALIZED (
            SELECT q.ctid, q.queue_name FROM tasker.queue_messages q
            WHERE q.msg_id = ANY (p_msg_ids) AND q.vt <= clock_timestamp()
            ORDER BY q.msg_id
            FOR UPDATE SKIP LOCKED
        ), hidden AS (
            UPDATE tasker.queue_messages q
            SET vt = clock_timestamp() + make_interval(secs => p_lease_ms / 1000.0), read_ct = q.read_ct + 1
            WHERE q.ctid = ANY (ARRAY(SELECT v.ctid FROM v WHERE v.queue_name = p_queue))
            RETURNING q
        )
        SELECT array_agg(hidden.q) INTO v_msgs FROM hidden;
    ELSE
        -- Highest priority first, oldest first within a priority, read in
        -- the order of queue_messages_priority_idx (priority is the task's,
        -- copied into its steps' messages by enqueue_ready_steps; the column
        -- and index come with migration 20250101000012).
        WITH v AS MATERIALIZED (
            SELECT q.ctid FROM tasker.queue_messages q
            WHERE q.queue_name = p_queue
              AND q.vt <= clock_timestamp()
              AND q.enqueued_at <= clock_timestamp() - make_interval(secs => p_min_age_ms / 1000.0)
            ORDER BY q.priority DESC, q.msg_id
            LIMIT p_qty
            FOR UPDATE SKIP LOCKED
        ), hidden AS (
            UPDATE tasker.queue_messages q
            SET vt = clock_timestamp() + make_interval(secs => p_lease_ms / 1000.0), read_ct = q.read_ct + 1
            WHERE q.ctid = ANY (ARRAY(SELECT v.ctid FROM v))
            RETURNING q
        )
        SELECT array_agg(hidden.q) INTO v_msgs FROM hidden;
    END IF;
    IF v_msgs IS NULL THEN
        RETURN;
    END IF;

    -- A malformed message names no step; claim_step_message archives it.
    SELECT array_agg(DISTINCT tasker.message_step_uuid(mm.message)) FILTER (WHERE tasker.message_step_uuid(mm.message) IS NOT NULL)
    INTO v_steps FROM unnest(v_msgs) mm;
    SELECT coalesce(array_agg(l.workflow_step_uuid), '{}'),
           coalesce(array_agg(l.workflow_step_uuid) FILTER (WHERE l.state = 'enqueued'), '{}')
    INTO v_locked, v_enqueued
    FROM (SELECT ws.workflow_step_uuid, ws.state FROM tasker.workflow_steps ws
          WHERE ws.workflow_step_uuid = ANY (v_steps)
          ORDER BY ws.workflow_step_uuid
          FOR UPDATE SKIP LOCKED) l;
    IF cardinality(v_locked) < coalesce(cardinality(v_steps), 0) THEN
        -- Either locked by another transaction (its message is released) or
        -- gone (its message is stale: claim_step_message archives it).
        WITH released AS (
            UPDATE tasker.queue_messages q SET vt = clock_timestamp()
            FROM unnest(v_msgs) mm
            WHERE q.msg_id = mm.msg_id
              AND tasker.message_step_uuid(mm.message) IN (
                  SELECT ws.workflow_step_uuid FROM tasker.workflow_steps ws
                  WHERE ws.workflow_step_uuid = ANY (v_steps) AND ws.workflow_step_uuid <> ALL (v_locked))
            RETURNING q.msg_id)
        SELECT array_agg(rel.msg_id) INTO v_released FROM released rel;
    END IF;

    RETURN QUERY
    WITH m AS (
        -- One message per step takes the common path; a duplicate falls to
        -- claim_step_message below, which finds its step busy.
        SELECT DISTINCT ON (1) tasker.message_step_uuid(mm.message) AS step, mm.msg_id, mm.read_ct, mm.headers, mm.enqueued_at
        FROM unnest(v_msgs) mm
        WHERE tasker.message_step_uuid(mm.message) = ANY (v_enqueued)
        ORDER BY 1, mm.msg_id
    ), c AS (
        UPDATE tasker.workflow_steps ws
        SET state = 'in_progress', in_process = true, attempts = ws.attempts + 1,
            last_attempted_at = clock_timestamp(), updated_at = clock_timestamp(),
            lease_expires_at = clock_timestamp() + make_interval(secs => p_lease_ms / 1000.0),
            worker_id = p_worker_id
        FROM m
        WHERE ws.workflow_step_uuid = m.step AND ws.state = 'enqueued'
        RETURNING m.msg_id, m.read_ct, m.headers, m.enqueued_at, ws.workflow_step_uuid, ws.task_uuid, ws.name, ws.handler,
                  ws.attempts, ws.max_attempts, ws.timeout_ms, ws.inputs, ws.results -> 'metadata' ->> 'traceparent' AS prior
    ), t AS (
        SELECT c.*, tk.context, tk.correlation_id AS corr, tk.parent_correlation_id AS parent_corr,
               ns.name::text AS ns_name, nt.name::text AS nt_name, nt.version::text AS nt_version
        FROM c
        JOIN tasker.tasks tk ON tk.task_uuid = c.task_uuid
        JOIN tasker.named_tasks nt ON nt.named_task_uuid = tk.named_task_uuid
        JOIN tasker.task_namespaces ns ON ns.task_namespace_uuid = nt.task_namespace_uuid
    ), h AS (
        INSERT INTO tasker.workflow_step_transitions
            (workflow_step_uuid, task_uuid, from_state, to_state, reason, attempt, worker_id, correlation_id)
        SELECT t.workflow_step_uuid, t.task_uuid, 'enqueued', 'in_progress', 'claimed', t.attempts, p_worker_id, t.corr
        FROM t
        ORDER BY t.workflow_step_uuid
    )
    SELECT t.msg_id, t.read_ct, t.headers, extract(epoch FROM clock_timestamp() - t.enqueued_at)::double precision * 1000,
           'claimed'::text, t.task_uuid, t.workflow_step_uuid, t.name::text, t.handler::text, t.attempts, t.max_attempts,
           t.timeout_ms, t.inputs, t.context, t.corr, t.parent_corr, t.ns_name, t.nt_name, t.nt_version,
           tasker.step_dependency_results(t.workflow_step_uuid),
           t.prior
    FROM t;
    GET DIAGNOSTICS v_claimed = ROW_COUNT;

    IF v_claimed + coalesce(cardinality(v_released), 0) < cardinality(v_msgs) THEN
        FOR r IN
            SELECT mm.msg_id, mm.read_ct, mm.headers, mm.message, mm.enqueued_at
            FROM unnest(v_msgs) mm
            WHERE NOT (coalesce(tasker.message_step_uuid(mm.message) = ANY (v_enqueued), false)
                       AND mm.msg_id = (SELECT min(m2.msg_id) FROM unnest(v_msgs) m2
                                        WHERE tasker.message_step_uuid(m2.message) = tasker.message_step_uuid(mm.message)))
              AND mm.msg_id <> ALL (coalesce(v_released, '{}'))
            ORDER BY tasker.message_step_uuid(mm.message), mm.msg_id
        LOOP
            RETURN QUERY SELECT r.msg_id, r.read_ct, r.headers,
                    extract(epoch FROM clock_timestamp() - r.enqueued_at)::double precision * 1000, c.*
                FROM tasker.claim_step_message(p_queue, r.msg_id, r.message, p_lease_ms, p_worker_id) c;
        END LOOP;
    END IF;
END;
$$;
-- +goose StatementEnd

-- Claim by one message id: claim_step_messages of one.
-- +goose StatementBegin
CREATE FUNCTION tasker.claim_step(p_queue text, p_msg_id bigint, p_lease_ms integer, p_worker_id text)
RETURNS TABLE (
    msg_id bigint, read_ct integer, headers jsonb, queue_wait_ms double precision,
    outcome text, task_uuid uuid, step_uuid uuid, step_name text, handler text, attempt integer, max_attempts integer,
    timeout_ms integer, inputs jsonb, task_context jsonb, correlation_id uuid, parent_correlation_id uuid,
    namespace text, task_name text, task_version text, dependency_results jsonb, prior_traceparent text)
LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY SELECT * FROM tasker.claim_step_messages(p_queue, ARRAY[p_msg_id], p_lease_ms, p_worker_id);
END;
$$;
-- +goose StatementEnd

-- Claim up to p_qty visible messages at least p_min_age_ms old, highest
-- priority first and oldest first within a priority (the fallback poller and
-- crash recovery path): claim_step_messages without message ids.
-- +goose StatementBegin
CREATE FUNCTION tasker.claim_steps(p_queue text, p_qty integer, p_lease_ms integer, p_worker_id text, p_min_age_ms integer DEFAULT 0)
RETURNS TABLE (
    msg_id bigint, read_ct integer, headers jsonb, queue_wait_ms double precision,
    outcome text, task_uuid uuid, step_uuid uuid, step_name text, handler text, attempt integer, max_attempts integer,
    timeout_ms integer, inputs jsonb, task_context jsonb, correlation_id uuid, parent_correlation_id uuid,
    namespace text, task_name text, task_version text, dependency_results jsonb, prior_traceparent text)
LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY SELECT * FROM tasker.claim_step_messages(p_queue, NULL, p_lease_ms, p_worker_id, p_qty, p_min_age_ms);
END;
$$;
-- +goose StatementEnd

-- Keeps live steps' leases (and their messages' visibility) ahead of the clock
-- while their handlers run. Only the attempt that holds the lease may extend
-- it, and only that attempt's message is kept hidden: a worker that lost its
-- lease must not keep hiding the message the step's next holder (or, after
-- that holder stops, the next reclaim) depends on. The three arrays are
-- parallel: element i of each describes one lease.
-- Rows are locked in the order submit_step_results uses (steps by uuid,
-- then their messages by id), so a heartbeat and a result batch of one
-- worker, which share steps, cannot deadlock.
-- +goose StatementBegin
CREATE FUNCTION tasker.extend_step_leases(p_step_uuids uuid[], p_attempts integer[], p_msg_ids bigint[], p_lease_ms integer)
RETURNS integer LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan SET enable_seqscan = off AS $$
DECLARE
    v_n integer;
BEGIN
    PERFORM tasker.lock_step_leases(p_step_uuids, p_attempts, p_msg_ids);
    WITH extended AS (
        UPDATE tasker.workflow_steps ws
        SET lease_expires_at = clock_timestamp() + make_interval(secs => p_lease_ms / 1000.0)
        FROM unnest(p_step_uuids, p_attempts, p_msg_ids) AS l(step_uuid, attempt, msg_id)
        WHERE ws.workflow_step_uuid = l.step_uuid AND ws.attempts = l.attempt AND ws.state = 'in_progress'
        RETURNING l.msg_id
    ), hidden AS (
        UPDATE tasker.queue_messages q
        SET vt = clock_timestamp() + make_interval(secs => p_lease_ms / 1000.0)
        WHERE q.msg_id IN (SELECT e.msg_id FROM extended e)
        RETURNING 1
    )
    SELECT count(*) INTO v_n FROM extended;
    RETURN v_n;
END;
$$;
-- +goose StatementEnd

-- Locks, in one fixed order, the step rows of the given attempts that still
-- hold their step (by step uuid) and then their messages (by id): the
-- order every function that changes a worker's leased steps and their
-- messages takes (extend_step_leases, submit_step_results), so two of them
-- sharing rows wait for each other instead of deadlocking. Claims take their
-- locks with SKIP LOCKED and never wait.
-- +goose StatementBegin
CREATE FUNCTION tasker.lock_step_leases(p_step_uuids uuid[], p_attempts integer[], p_msg_ids bigint[])
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM tasker.workflow_steps ws
    JOIN unnest(p_step_uuids, p_attempts) AS l(step_uuid, attempt) ON ws.workflow_step_uuid = l.step_uuid
    WHERE ws.attempts = l.attempt AND ws.state = 'in_progress'
    ORDER BY ws.workflow_step_uuid
    FOR UPDATE OF ws;
    PERFORM 1 FROM tasker.queue_messages q
    WHERE q.msg_id = ANY (p_msg_ids)
    ORDER BY q.msg_id
    FOR UPDATE;
END;
$$;
-- +goose StatementEnd

-- Worker result submission in one statement: store the result and move the
-- step to enqueued_(as_error_)for_orchestration if this attempt still holds it,
-- delete the worker's message (the history row records it), and send the
-- result to orchestration.
-- Returns false (writing nothing) when the attempt lost its lease.
-- +goose StatementBegin
CREATE FUNCTION tasker.submit_step_result(
    p_step_uuid uuid, p_attempt integer, p_success boolean, p_results jsonb, p_worker_id text,
    p_queue text, p_msg_id bigint, p_result_queue text, p_headers jsonb DEFAULT '{}', p_notify boolean DEFAULT true)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    s record;
    v_to text := CASE WHEN p_success THEN 'enqueued_for_orchestration' ELSE 'enqueued_as_error_for_orchestration' END;
    v_corr uuid;
    v_msg bigint;
BEGIN
    UPDATE tasker.workflow_steps ws
    SET state = v_to, in_process = false, results = p_results, lease_expires_at = NULL,
        updated_at = clock_timestamp()
    WHERE ws.workflow_step_uuid = p_step_uuid AND ws.state = 'in_progress' AND ws.attempts = p_attempt
    RETURNING ws.task_uuid, ws.name INTO s;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    SELECT t.correlation_id INTO v_corr FROM tasker.tasks t WHERE t.task_uuid = s.task_uuid;
    INSERT INTO tasker.workflow_step_transitions
        (workflow_step_uuid, task_uuid, from_state, to_state, reason, attempt, worker_id, correlation_id, metadata)
    VALUES (p_step_uuid, s.task_uuid, 'in_progress', v_to, CASE WHEN p_success THEN 'handler_succeeded' ELSE 'handler_failed' END,
            p_attempt, p_worker_id, v_corr,
            jsonb_build_object('execution_time_ms', p_results -> 'metadata' -> 'execution_time_ms'));
    DELETE FROM tasker.queue_messages q WHERE q.msg_id = p_msg_id AND q.queue_name = p_queue;
    v_msg := tasker.queue_send(p_result_queue,
        jsonb_build_object('task_uuid', s.task_uuid, 'step_uuid', p_step_uuid, 'correlation_id', v_corr,
                           'step_name', s.name, 'attempt', p_attempt, 'success', p_success, 'worker_id', p_worker_id),
        p_headers, 0, p_notify);
    RETURN v_msg;
END;
$$;
-- +goose StatementEnd

-- Moves a task from p_from_state through every state of p_states, writing one
-- history row per hop (reason i for hop i) but updating the row once.
-- +goose StatementBegin
-- submit_step_results is submit_step_result for a worker's batch of results:
-- one statement and one commit (one WAL flush) for every result that
-- finished while the previous batch was being written. Each element keeps the
-- single-result semantics (lease fencing by attempt; NULL msg_id when the
-- step is no longer this attempt's). Wake-ups are left to the caller, one
-- per batch.
CREATE FUNCTION tasker.submit_step_results(
    p_step_uuids uuid[], p_attempts integer[], p_success boolean[], p_results jsonb[], p_worker_id text,
    p_queues text[], p_msg_ids bigint[], p_result_queue text, p_headers jsonb[])
RETURNS TABLE (step_uuid uuid, msg_id bigint) LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan SET enable_seqscan = off AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM tasker.queues WHERE queue_name = p_result_queue) THEN
        RAISE EXCEPTION 'queue % does not exist', p_result_queue USING ERRCODE = 'undefined_object';
    END IF;
    -- The heartbeat's lock order (see lock_step_leases), not the batch's.
    PERFORM tasker.lock_step_leases(p_step_uuids, p_attempts, p_msg_ids);
    -- Set-based: one UPDATE for every step this batch still holds, one
    -- INSERT of their history, one DELETE of their worker messages and one
    -- INSERT of their result messages, whatever the batch's size.
    RETURN QUERY
    WITH l AS (
        SELECT * FROM unnest(p_step_uuids, p_attempts, p_success, p_results, p_queues, p_msg_ids, p_headers)
            WITH ORDINALITY AS l(step, attempt, success, results, queue, msg, headers, i)
    ), s AS (
        UPDATE tasker.workflow_steps ws
        SET state = CASE WHEN l.success THEN 'enqueued_for_orchestration' ELSE 'enqueued_as_error_for_orchestration' END,
            in_process = false, results = l.results, lease_expires_at = NULL, updated_at = clock_timestamp()
        FROM l
        WHERE ws.workflow_step_uuid = l.step AND ws.state = 'in_progress' AND ws.attempts = l.attempt
        RETURNING l.i, l.step, l.attempt, l.success, l.results, l.queue, l.msg, l.headers, ws.task_uuid, ws.name, ws.state AS to_state
    ), c AS (
        SELECT s.*, t.correlation_id AS corr FROM s JOIN tasker.tasks t ON t.task_uuid = s.task_uuid
    ), h AS (
        INSERT INTO tasker.workflow_step_transitions
            (workflow_step_uuid, task_uuid, from_state, to_state, reason, attempt, worker_id, correlation_id, metadata)
        SELECT c.step, c.task_uuid, 'in_progress', c.to_state, CASE WHEN c.success THEN 'handler_succeeded' ELSE 'handler_failed' END,
               c.attempt, p_worker_id, c.corr, jsonb_build_object('execution_time_ms', c.results -> 'metadata' -> 'execution_time_ms')
        FROM c ORDER BY c.i
    ), settled AS (
        -- Deleted, not archived: the step's history row above says the
        -- same, and an archive row per step was a tenth of its WAL.
        DELETE FROM tasker.queue_messages q USING c
        WHERE q.msg_id = c.msg AND q.queue_name = c.queue
    ), sent AS (
        INSERT INTO tasker.queue_messages (queue_name, message, headers)
        SELECT p_result_queue,
               jsonb_build_object('task_uuid', c.task_uuid, 'step_uuid', c.step, 'correlation_id', c.corr,
                                  'step_name', c.name, 'attempt', c.attempt, 'success', c.success, 'worker_id', p_worker_id),
               coalesce(c.headers, '{}')
        FROM c ORDER BY c.i
        RETURNING queue_messages.msg_id AS id, (queue_messages.message ->> 'step_uuid')::uuid AS step
    )
    SELECT l.step, sent.id FROM l LEFT JOIN sent ON sent.step = l.step AND l.i = (SELECT c.i FROM c WHERE c.step = l.step)
    ORDER BY l.i;
END;
$$;

CREATE FUNCTION tasker.transition_task_state_path(
    p_task_uuid uuid, p_from_state text, p_states text[], p_processor_uuid uuid, p_reasons text[])
RETURNS boolean LANGUAGE sql AS $$
    SELECT count(*) = 1 FROM tasker.transition_task_paths(
        array_fill(p_task_uuid, ARRAY[cardinality(p_states)]),
        p_from_state || p_states[1:cardinality(p_states) - 1], p_states, p_reasons, p_processor_uuid);
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION tasker.enqueue_ready_steps(uuid[], uuid[], text[], jsonb[]);
DROP FUNCTION tasker.transition_task_paths(uuid[], text[], text[], text[], uuid);
DROP FUNCTION tasker.transition_step_states(uuid[], text[], text[], jsonb[], integer[]);
DROP FUNCTION tasker.submit_step_result(uuid, integer, boolean, jsonb, text, text, bigint, text, jsonb, boolean);
DROP FUNCTION tasker.transition_task_state_path(uuid, text, text[], uuid, text[]);
DROP FUNCTION tasker.extend_step_leases(uuid[], integer[], bigint[], integer);
DROP FUNCTION tasker.lock_step_leases(uuid[], integer[], bigint[]);
DROP FUNCTION tasker.claim_steps(text, integer, integer, text, integer);
DROP FUNCTION tasker.claim_step(text, bigint, integer, text);
DROP FUNCTION tasker.claim_step_messages(text, bigint[], integer, text, integer, integer);
DROP FUNCTION tasker.message_step_uuid(jsonb);
DROP FUNCTION tasker.claim_step_message(text, bigint, jsonb, integer, text);
DROP FUNCTION tasker.step_dependency_results(uuid);
DROP FUNCTION tasker.enqueue_steps(uuid, uuid[], text, jsonb, boolean);
DROP FUNCTION tasker.claim_task_for_finalization(uuid, uuid);
DROP FUNCTION tasker.can_finalize_task(uuid);
DROP FUNCTION tasker.get_step_transitive_dependencies(uuid);
DROP FUNCTION tasker.transition_step_state_atomic(uuid, text, text, jsonb, integer);
DROP FUNCTION tasker.transition_task_state_atomic(uuid, text, text, uuid, jsonb);
DROP FUNCTION tasker.get_next_ready_tasks(integer);
DROP FUNCTION tasker.get_task_execution_context(uuid);
DROP FUNCTION tasker.get_step_readiness_status(uuid, uuid[]);
DROP FUNCTION tasker.lock_result_targets(uuid[], uuid[]);
DROP FUNCTION tasker.step_readiness(uuid[]);
DROP FUNCTION tasker.step_state_satisfies_dependencies(text);
DROP FUNCTION tasker.task_state_is_terminal(text);
