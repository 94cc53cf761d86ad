-- Trace context travels with every wake-up and every retry:
-- * NOTIFY payloads carry the message headers after the id ("<id> <json>"),
--   so a consumer starts its spans under the producer's before it reads the
--   message;
-- * a claim returns the traceparent the previous attempt stored in its
--   result, so a retried attempt's span links to the one before.
-- Also: a send to a queue that was never created fails instead of leaving a
-- message nobody reads; a malformed step message is archived as stale instead
-- of failing every claim of its queue; a "busy" claim leaves the message
-- visible when the holder's lease ends, not a full lease later.

-- +goose Up

-- +goose StatementBegin
CREATE FUNCTION tasker.queue_notify_payload(p_id bigint, p_headers jsonb) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    -- NOTIFY payloads must stay under 8000 bytes; oversized headers are left
    -- for the consumer to read from the message.
    SELECT CASE WHEN p_headers IS NULL OR p_headers = '{}'::jsonb OR length(p_headers::text) > 7000
                THEN p_id::text
                ELSE p_id::text || ' ' || p_headers::text END;
$$;
-- +goose StatementEnd

-- The NOTIFY payload now carries the headers after the message id.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION tasker.queue_send(p_queue text, p_message jsonb, p_headers jsonb DEFAULT '{}', p_delay_ms integer DEFAULT 0)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM tasker.queues WHERE queue_name = p_queue) THEN
        RAISE EXCEPTION 'queue % does not exist', p_queue USING ERRCODE = 'undefined_object';
    END IF;
    INSERT INTO tasker.queue_messages (queue_name, message, headers, vt)
    VALUES (p_queue, p_message, coalesce(p_headers, '{}'),
            clock_timestamp() + make_interval(secs => p_delay_ms / 1000.0))
    RETURNING msg_id INTO v_id;
    IF p_delay_ms <= 0 THEN
        PERFORM pg_notify(p_queue, tasker.queue_notify_payload(v_id, p_headers));
    END IF;
    RETURN v_id;
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION tasker.queue_send_batch(p_queue text, p_messages jsonb[], p_headers jsonb DEFAULT '{}')
RETURNS SETOF bigint LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM tasker.queues WHERE queue_name = p_queue) THEN
        RAISE EXCEPTION 'queue % does not exist', p_queue USING ERRCODE = 'undefined_object';
    END IF;
    FOR v_id IN
        INSERT INTO tasker.queue_messages (queue_name, message, headers)
        SELECT p_queue, m, coalesce(p_headers, '{}') FROM unnest(p_messages) AS m
        RETURNING msg_id
    LOOP
        PERFORM pg_notify(p_queue, tasker.queue_notify_payload(v_id, p_headers));
        RETURN NEXT v_id;
    END LOOP;
END;
$$;
-- +goose StatementEnd

DROP FUNCTION tasker.claim_steps(text, integer, integer, text, integer);
DROP FUNCTION tasker.claim_step(text, bigint, integer, text);
DROP FUNCTION tasker.claim_step_message(text, bigint, jsonb, integer, text);

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
    BEGIN
        SELECT ws.* INTO s FROM tasker.workflow_steps ws
        WHERE ws.workflow_step_uuid = (p_message ->> 'step_uuid')::uuid FOR UPDATE;
    EXCEPTION WHEN invalid_text_representation THEN
        -- A malformed message must not wedge the queue: archive it as stale.
        PERFORM tasker.queue_archive(p_queue, p_msg_id);
        RETURN QUERY SELECT 'stale'::text, NULL::uuid, NULL::uuid, NULL::text, NULL::text, NULL::integer,
            NULL::integer, NULL::integer, NULL::jsonb, NULL::jsonb, NULL::uuid, NULL::uuid, NULL::text, NULL::text, NULL::text, NULL::jsonb, NULL::text;
        RETURN;
    END;
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
               (SELECT coalesce(jsonb_object_agg(d.step_name, d.results -> 'result'), '{}')
                FROM tasker.get_step_transitive_dependencies(s.workflow_step_uuid) d
                WHERE d.current_state IN ('complete', 'resolved_manually') AND d.results IS NOT NULL)
           END,
           s.results -> 'metadata' ->> 'traceparent'
    FROM tasker.tasks t
    JOIN tasker.named_tasks nt ON nt.named_task_uuid = t.named_task_uuid
    JOIN tasker.task_namespaces ns ON ns.task_namespace_uuid = nt.task_namespace_uuid
    WHERE t.task_uuid = s.task_uuid;
END;
$$;
-- +goose StatementEnd

-- Claim by message id (the NOTIFY path): hide the message for the lease, then claim its step.
-- +goose StatementBegin
CREATE FUNCTION tasker.claim_step(p_queue text, p_msg_id bigint, p_lease_ms integer, p_worker_id text)
RETURNS TABLE (
    msg_id bigint, read_ct integer, headers jsonb,
    outcome text, task_uuid uuid, step_uuid uuid, step_name text, handler text, attempt integer, max_attempts integer,
    timeout_ms integer, inputs jsonb, task_context jsonb, correlation_id uuid, parent_correlation_id uuid,
    namespace text, task_name text, task_version text, dependency_results jsonb, prior_traceparent text)
LANGUAGE plpgsql AS $$
DECLARE
    m record;
BEGIN
    FOR m IN SELECT * FROM tasker.queue_read_message(p_queue, p_msg_id, p_lease_ms) LOOP
        RETURN QUERY SELECT m.msg_id, m.read_ct, m.headers, c.*
            FROM tasker.claim_step_message(p_queue, m.msg_id, m.message, p_lease_ms, p_worker_id) c;
    END LOOP;
END;
$$;
-- +goose StatementEnd

-- Claim up to p_qty visible messages (the fallback poller and crash recovery path).
-- +goose StatementBegin
CREATE FUNCTION tasker.claim_steps(p_queue text, p_qty integer, p_lease_ms integer, p_worker_id text, p_min_age_ms integer DEFAULT 0)
RETURNS TABLE (
    msg_id bigint, read_ct integer, headers jsonb,
    outcome text, task_uuid uuid, step_uuid uuid, step_name text, handler text, attempt integer, max_attempts integer,
    timeout_ms integer, inputs jsonb, task_context jsonb, correlation_id uuid, parent_correlation_id uuid,
    namespace text, task_name text, task_version text, dependency_results jsonb, prior_traceparent text)
LANGUAGE plpgsql AS $$
DECLARE
    m record;
BEGIN
    FOR m IN SELECT * FROM tasker.queue_read(p_queue, p_lease_ms, p_qty, p_min_age_ms) LOOP
        RETURN QUERY SELECT m.msg_id, m.read_ct, m.headers, c.*
            FROM tasker.claim_step_message(p_queue, m.msg_id, m.message, p_lease_ms, p_worker_id) c;
    END LOOP;
END;
$$;
-- +goose StatementEnd

-- +goose Down
SELECT 'down migration not supported: recreate the database';
