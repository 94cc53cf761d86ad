package db

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Workers record their presence every WorkerPresenceInterval; one whose last
// record is older than WorkerLiveWindow counts as gone (it missed several).
const (
	WorkerPresenceInterval = 5 * time.Second
	WorkerLiveWindow       = 4 * WorkerPresenceInterval
)

// WorkerHeartbeatParams identifies a live worker.
type WorkerHeartbeatParams struct {
	WorkerID   string
	Namespaces []string
	Hostname   string
	PID        int
}

// WorkerHeartbeat records that a worker is alive and what it serves.
func WorkerHeartbeat(ctx context.Context, q Querier, p WorkerHeartbeatParams) error {
	if _, err := q.Exec(ctx, `INSERT INTO tasker.workers (worker_id, namespaces, hostname, pid)
		VALUES ($1, $2, $3, $4)
		ON CONFLICT (worker_id) DO UPDATE SET namespaces = EXCLUDED.namespaces, last_heartbeat_at = now()`,
		p.WorkerID, p.Namespaces, p.Hostname, p.PID); err != nil {
		return fmt.Errorf("recording heartbeat of worker %s: %w", p.WorkerID, err)
	}
	return nil
}

// WorkerGone removes a worker that stopped cleanly.
func WorkerGone(ctx context.Context, q Querier, workerID string) error {
	if _, err := q.Exec(ctx, `DELETE FROM tasker.workers WHERE worker_id = $1`, workerID); err != nil {
		return fmt.Errorf("removing worker %s: %w", workerID, err)
	}
	return nil
}

// LiveWorkersByNamespace counts, for every registered namespace, the workers
// serving it whose last heartbeat is within fresh (0 for a namespace no
// live worker serves). Stale rows are deleted on the way.
func LiveWorkersByNamespace(ctx context.Context, q Querier, fresh time.Duration) (map[string]int64, error) {
	rows, err := q.Query(ctx, `WITH gone AS (
			DELETE FROM tasker.workers WHERE last_heartbeat_at < now() - 10 * $1::interval)
		SELECT ns.name, count(w.worker_id)
		FROM tasker.task_namespaces ns
		LEFT JOIN tasker.workers w ON ns.name = ANY (w.namespaces) AND w.last_heartbeat_at >= now() - $1::interval
		GROUP BY ns.name`, fresh)
	if err != nil {
		return nil, fmt.Errorf("counting live workers: %w", err)
	}
	out := map[string]int64{}
	var ns string
	var n int64
	_, err = pgx.ForEachRow(rows, []any{&ns, &n}, func() error { out[ns] = n; return nil })
	if err != nil {
		return nil, fmt.Errorf("counting live workers: %w", err)
	}
	return out, nil
}
