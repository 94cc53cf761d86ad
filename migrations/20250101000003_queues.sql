-- Queues with PGMQ semantics in plain tables: send (with NOTIFY delivered at
-- commit), read with a visibility timeout, archive, delete, depth. One table
-- holds every queue's messages; queue names are bound parameters, never SQL
-- text, and must be identifiers.

-- +goose Up
CREATE TABLE tasker.queues (
    queue_name varchar(63) PRIMARY KEY CHECK (queue_name ~ '^[a-z][a-z0-9_]{0,62}$'),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tasker.queue_messages (
    msg_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    queue_name  varchar(63) NOT NULL,
    read_ct     integer NOT NULL DEFAULT 0,
    enqueued_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    vt          timestamptz NOT NULL DEFAULT clock_timestamp(),
    message     jsonb NOT NULL,
    headers     jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX queue_messages_visible_idx ON tasker.queue_messages (queue_name, vt, msg_id);

CREATE TABLE tasker.queue_archive (
    msg_id      bigint PRIMARY KEY,
    queue_name  varchar(63) NOT NULL,
    read_ct     integer NOT NULL,
    enqueued_at timestamptz NOT NULL,
    archived_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    message     jsonb NOT NULL,
    headers     jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX queue_archive_queue_idx ON tasker.queue_archive (queue_name, archived_at);

-- +goose StatementBegin
CREATE FUNCTION tasker.queue_create(p_queue text) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO tasker.queues (queue_name) VALUES (p_queue) ON CONFLICT DO NOTHING;
$$;
-- +goose StatementEnd

-- The NOTIFY channel is the queue name; the payload is the message id and,
-- when present, the message headers (queue_notify_payload), so a consumer
-- can start its spans under the producer's. It is delivered only when the
-- sending transaction commits.
-- On the hot path (enqueue_steps, submit_step_result) callers pass
-- p_notify = false and notify right after commit instead: a transaction that
-- notified holds a cluster-wide lock through its WAL flush at commit, so
-- notifying commits queue behind each other under load. A crash between
-- commit and notify loses only the wake-up; the fallback pollers find it.
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
CREATE FUNCTION tasker.queue_send_batch(p_queue text, p_messages jsonb[], p_headers jsonb DEFAULT '{}')
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

-- Reads up to p_qty visible messages older than p_min_age_ms and hides them
-- for p_vt_ms. SKIP LOCKED lets any number of consumers read at once.
-- +goose StatementBegin
CREATE FUNCTION tasker.queue_read(p_queue text, p_vt_ms integer, p_qty integer, p_min_age_ms integer DEFAULT 0)
RETURNS TABLE (msg_id bigint, read_ct integer, enqueued_at timestamptz, vt timestamptz, message jsonb, headers jsonb)
LANGUAGE sql AS $$
    WITH visible AS (
        SELECT q.msg_id FROM tasker.queue_messages q
        WHERE q.queue_name = p_queue
          AND q.vt <= clock_timestamp()
          AND q.enqueued_at <= clock_timestamp() - make_interval(secs => p_min_age_ms / 1000.0)
        ORDER BY q.msg_id
        LIMIT p_qty
        FOR UPDATE SKIP LOCKED
    )
    UPDATE tasker.queue_messages q
    SET vt = clock_timestamp() + make_interval(secs => p_vt_ms / 1000.0), read_ct = q.read_ct + 1
    FROM visible WHERE q.msg_id = visible.msg_id
    RETURNING q.msg_id, q.read_ct, q.enqueued_at, q.vt, q.message, q.headers;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION tasker.queue_read_message(p_queue text, p_msg_id bigint, p_vt_ms integer)
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

-- The small queue functions are plpgsql because PostgreSQL plans LANGUAGE
-- sql functions called from plpgsql on every call.
-- +goose StatementBegin
CREATE FUNCTION tasker.queue_archive(p_queue text, p_msg_id bigint) RETURNS boolean
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
CREATE FUNCTION tasker.queue_delete(p_queue text, p_msg_id bigint) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM tasker.queue_messages q WHERE q.msg_id = p_msg_id AND q.queue_name = p_queue;
    RETURN FOUND;
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION tasker.queue_set_vt(p_queue text, p_msg_id bigint, p_vt_ms integer) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE tasker.queue_messages q SET vt = clock_timestamp() + make_interval(secs => p_vt_ms / 1000.0)
    WHERE q.msg_id = p_msg_id AND q.queue_name = p_queue;
    RETURN FOUND;
END;
$$;
-- +goose StatementEnd

-- Depth, how many are claimable now, and the age of the oldest claimable
-- message (a message hidden by a live visibility timeout is being worked on,
-- so it is not a sign of a stuck queue).
-- +goose StatementBegin
CREATE FUNCTION tasker.queue_metrics(p_queue text)
RETURNS TABLE (queue_name text, depth bigint, claimable bigint, oldest_claimable_age_seconds double precision)
LANGUAGE sql STABLE AS $$
    SELECT p_queue,
           count(*),
           count(*) FILTER (WHERE q.vt <= clock_timestamp()),
           coalesce(extract(epoch FROM clock_timestamp() - min(q.enqueued_at) FILTER (WHERE q.vt <= clock_timestamp())), 0)::double precision
    FROM tasker.queue_messages q WHERE q.queue_name = p_queue;
$$;
-- +goose StatementEnd

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

-- +goose Down
DROP FUNCTION tasker.queue_metrics(text);
DROP FUNCTION tasker.queue_set_vt(text, bigint, integer);
DROP FUNCTION tasker.queue_delete(text, bigint);
DROP FUNCTION tasker.queue_archive(text, bigint);
DROP FUNCTION tasker.queue_read_message(text, bigint, integer);
DROP FUNCTION tasker.queue_read(text, integer, integer, integer);
DROP FUNCTION tasker.queue_send_batch(text, jsonb[], jsonb);
DROP FUNCTION tasker.queue_send(text, jsonb, jsonb, integer, boolean);
DROP FUNCTION tasker.queue_notify_payload(bigint, jsonb);
DROP FUNCTION tasker.queue_create(text);
DROP TABLE tasker.queue_archive;
DROP TABLE tasker.queue_messages;
DROP TABLE tasker.queues;
