-- Hot-path cost (measured with pg_stat_statements by `tasker bench e2e`):
-- * the small queue functions become plpgsql, whose plans are cached per
--   session; LANGUAGE sql functions called from plpgsql are planned on every
--   call, which cost more than the statements themselves;
-- * claim_step hides its message inline and claim_step_message walks the
--   ancestors inline and validates the message without an EXCEPTION block
--   (a subtransaction, and an extra transaction ID, per claim);
-- * transition_task_state_path moves a task through several states with one
--   UPDATE and one multi-row history INSERT;
-- * a claim commits without waiting for its WAL flush (see claim_step).

-- +goose Up

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION tasker.queue_archive(p_queue text, p_msg_id bigint) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    WITH moved AS (
        DELETE FROM tasker.queue_messages q
        WHERE q.msg_id = p_msg_id AND q.queue_name = p_queue
        RETURNING q.msg_id, q.queue_name, q.read_ct, q.enqueued_at, q.message, q.headers
    )
    INSERT INTO tasker.queue_archive (msg_id, queue_name, read_ct, enqueued_at, message, headers)
    SELECT * FROM moved;
    RETURN FOUND;
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION tasker.queue_read_message(p_queue text, p_msg_id bigint, p_vt_ms integer)
RETURNS TABLE (msg_id bigint, read_ct integer, enqueued_at timestamptz, vt timestamptz, message jsonb, headers jsonb)
LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY
    UPDATE tasker.queue_messages q
    SET vt = clock_timestamp() + make_interval(secs => p_vt_ms / 1000.0), read_ct = q.read_ct + 1
    WHERE q.msg_id = p_msg_id AND q.queue_name = p_queue AND q.vt <= clock_timestamp()
    RETURNING q.msg_id, q.read_ct, q.enqueued_at, q.vt, q.message, q.headers;
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION tasker.queue_delete(p_queue text, p_msg_id bigint) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM tasker.queue_messages q WHERE q.msg_id = p_msg_id AND q.queue_name = p_queue;
    RETURN FOUND;
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION tasker.queue_set_vt(p_queue text, p_msg_id bigint, p_vt_ms integer) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE tasker.queue_messages q SET vt = clock_timestamp() + make_interval(secs => p_vt_ms / 1000.0)
    WHERE q.msg_id = p_msg_id AND q.queue_name = p_queue;
    RETURN FOUND;
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION tasker.claim_step_message(p_queue text, p_msg_id bigint, p_message jsonb, p_lease_ms integer, p_worker_id text)
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
               -- The ancestor walk is inlined (not get_step_transitive_dependencies, a
               -- SQL function PostgreSQL would plan on every call).
               (WITH RECURSIVE anc (step_uuid, depth) AS (
                    SELECT e.from_step_uuid, 1 FROM tasker.workflow_step_edges e WHERE e.to_step_uuid = s.workflow_step_uuid
                    UNION
                    SELECT e.from_step_uuid, a.depth + 1
                    FROM tasker.workflow_step_edges e JOIN anc a ON e.to_step_uuid = a.step_uuid
                    WHERE a.depth < 50)
                SELECT coalesce(jsonb_object_agg(d.name, d.results -> 'result'), '{}')
                FROM tasker.workflow_steps d
                WHERE d.workflow_step_uuid IN (SELECT anc.step_uuid FROM anc)
                  AND d.state IN ('complete', 'resolved_manually') AND d.results IS NOT NULL)
           END,
           s.results -> 'metadata' ->> 'traceparent'
    FROM tasker.tasks t
    JOIN tasker.named_tasks nt ON nt.named_task_uuid = t.named_task_uuid
    JOIN tasker.task_namespaces ns ON ns.task_namespace_uuid = nt.task_namespace_uuid
    WHERE t.task_uuid = s.task_uuid;
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION tasker.claim_step(p_queue text, p_msg_id bigint, p_lease_ms integer, p_worker_id text)
RETURNS TABLE (
    msg_id bigint, read_ct integer, headers jsonb,
    outcome text, task_uuid uuid, step_uuid uuid, step_name text, handler text, attempt integer, max_attempts integer,
    timeout_ms integer, inputs jsonb, task_context jsonb, correlation_id uuid, parent_correlation_id uuid,
    namespace text, task_name text, task_version text, dependency_results jsonb, prior_traceparent text)
LANGUAGE plpgsql AS $$
DECLARE
    v_read integer;
    v_headers jsonb;
    v_message jsonb;
BEGIN
    -- A claim need not wait for its WAL flush: if the server loses it in a
    -- crash, the step is still enqueued and its message visible again, so
    -- it is simply claimed again (steps run at least once either way). WAL
    -- is flushed in order, so the result submission that follows (durable)
    -- makes the claim durable too.
    PERFORM set_config('synchronous_commit', 'off', true);
    UPDATE tasker.queue_messages q
    SET vt = clock_timestamp() + make_interval(secs => p_lease_ms / 1000.0), read_ct = q.read_ct + 1
    WHERE q.msg_id = p_msg_id AND q.queue_name = p_queue AND q.vt <= clock_timestamp()
    RETURNING q.read_ct, q.headers, q.message INTO v_read, v_headers, v_message;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    RETURN QUERY SELECT p_msg_id, v_read, v_headers, c.*
        FROM tasker.claim_step_message(p_queue, p_msg_id, v_message, p_lease_ms, p_worker_id) c;
END;
$$;
-- +goose StatementEnd

-- Moves a task from p_from_state through every state of p_states, writing one
-- history row per hop (reason i for hop i) but updating the row once.
-- +goose StatementBegin
CREATE FUNCTION tasker.transition_task_state_path(
    p_task_uuid uuid, p_from_state text, p_states text[], p_processor_uuid uuid, p_reasons text[])
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    v_corr uuid;
    v_to text := p_states[array_length(p_states, 1)];
BEGIN
    UPDATE tasker.tasks
    SET state = v_to,
        state_changed_at = clock_timestamp(),
        updated_at = clock_timestamp(),
        complete = (v_to = 'complete'),
        completed_at = CASE WHEN v_to IN ('complete', 'error', 'cancelled', 'resolved_manually') THEN clock_timestamp() END
    WHERE task_uuid = p_task_uuid AND state = p_from_state
    RETURNING correlation_id INTO v_corr;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    INSERT INTO tasker.task_transitions (task_uuid, from_state, to_state, reason, processor_uuid, metadata, correlation_id)
    SELECT p_task_uuid, coalesce(p_states[i - 1], p_from_state), p_states[i], p_reasons[i], p_processor_uuid,
           jsonb_build_object('reason', p_reasons[i]), v_corr
    FROM generate_subscripts(p_states, 1) AS i
    ORDER BY i;
    RETURN true;
END;
$$;
-- +goose StatementEnd

-- +goose Down
SELECT 'down migration not supported: recreate the database';
