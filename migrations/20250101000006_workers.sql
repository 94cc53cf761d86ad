-- Live workers: each worker upserts its row on start and on every heartbeat
-- and deletes it on a clean stop. A namespace whose steps are enqueued while
-- no row serving it is fresh has no one to run them, which orchestration
-- logs and the tasker_workers_live gauge shows.

-- +goose Up
CREATE TABLE tasker.workers (
    worker_id         text PRIMARY KEY,
    namespaces        text[] NOT NULL,
    hostname          text NOT NULL DEFAULT '',
    pid               integer NOT NULL DEFAULT 0,
    started_at        timestamptz NOT NULL DEFAULT now(),
    last_heartbeat_at timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE tasker.workers;
