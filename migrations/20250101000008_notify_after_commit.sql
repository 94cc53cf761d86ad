-- NOTIFY serialises commits: a transaction that notified takes a
-- cluster-wide lock at commit and holds it through its WAL flush, so under
-- load every notifying commit waits for the one before (seen as dozens of
-- backends waiting on an "object" lock). The hot-path functions can now skip
-- the NOTIFY (p_notify = false) and the caller sends it right after commit,
-- in a transaction that writes nothing and so flushes nothing. A crash
-- between the two loses only the wake-up; the fallback pollers find the
-- message. queue_send keeps NOTIFY-at-commit by default.

-- +goose Up
DROP FUNCTION tasker.enqueue_steps(uuid, uuid[], text, jsonb);
DROP FUNCTION tasker.submit_step_result(uuid, integer, boolean, jsonb, text, text, bigint, text, jsonb);
DROP FUNCTION tasker.queue_send(text, jsonb, jsonb, integer);

-- +goose StatementBegin
CREATE FUNCTION tasker.queue_send(p_queue text, p_message jsonb, p_headers jsonb DEFAULT '{}', p_delay_ms integer DEFAULT 0,
    p_notify boolean DEFAULT true)
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
    IF p_notify AND p_delay_ms <= 0 THEN
        PERFORM pg_notify(p_queue, tasker.queue_notify_payload(v_id, p_headers));
    END IF;
    RETURN v_id;
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION tasker.enqueue_steps(p_task_uuid uuid, p_step_uuids uuid[], p_queue text, p_headers jsonb DEFAULT '{}', p_notify boolean DEFAULT true)
RETURNS TABLE (step_uuid uuid, step_name text, msg_id bigint)
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    v_corr uuid;
    v_ns text;
BEGIN
    SELECT t.correlation_id, ns.name INTO v_corr, v_ns
    FROM tasker.tasks t
    JOIN tasker.named_tasks nt ON nt.named_task_uuid = t.named_task_uuid
    JOIN tasker.task_namespaces ns ON ns.task_namespace_uuid = nt.task_namespace_uuid
    WHERE t.task_uuid = p_task_uuid;
    FOR r IN
        SELECT s.workflow_step_uuid, s.name, s.state, s.attempts
        FROM tasker.workflow_steps s
        WHERE s.task_uuid = p_task_uuid AND s.workflow_step_uuid = ANY (p_step_uuids)
          AND s.state IN ('pending', 'waiting_for_retry')
        ORDER BY s.workflow_step_uuid
        FOR UPDATE
    LOOP
        IF r.state = 'waiting_for_retry' THEN
            INSERT INTO tasker.workflow_step_transitions
                (workflow_step_uuid, task_uuid, from_state, to_state, reason, attempt, correlation_id)
            VALUES (r.workflow_step_uuid, p_task_uuid, 'waiting_for_retry', 'pending', 'retry_ready', r.attempts, v_corr);
        END IF;
        UPDATE tasker.workflow_steps SET state = 'enqueued', updated_at = clock_timestamp()
        WHERE workflow_step_uuid = r.workflow_step_uuid;
        INSERT INTO tasker.workflow_step_transitions
            (workflow_step_uuid, task_uuid, from_state, to_state, reason, attempt, correlation_id)
        VALUES (r.workflow_step_uuid, p_task_uuid, 'pending', 'enqueued', 'enqueue', r.attempts, v_corr);
        step_uuid := r.workflow_step_uuid;
        step_name := r.name;
        msg_id := tasker.queue_send(p_queue,
            jsonb_build_object('task_uuid', p_task_uuid, 'step_uuid', r.workflow_step_uuid,
                               'correlation_id', v_corr, 'namespace', v_ns, 'step_name', r.name,
                               'attempt', r.attempts + 1),
            p_headers, 0, p_notify);
        RETURN NEXT;
    END LOOP;
END;
$$;
-- +goose StatementEnd

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
    PERFORM tasker.queue_archive(p_queue, p_msg_id);
    v_msg := tasker.queue_send(p_result_queue,
        jsonb_build_object('task_uuid', s.task_uuid, 'step_uuid', p_step_uuid, 'correlation_id', v_corr,
                           'step_name', s.name, 'attempt', p_attempt, 'success', p_success, 'worker_id', p_worker_id),
        p_headers, 0, p_notify);
    RETURN v_msg;
END;
$$;
-- +goose StatementEnd

-- +goose Down
SELECT 'down migration not supported: recreate the database';
