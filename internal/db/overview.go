package db

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// QueueStat is one queue at one instant.
type QueueStat struct {
	Queue     string
	Depth     int64
	Claimable int64
	// OldestClaimableAge is how long the oldest message a consumer could take
	// right now has waited; zero when none is claimable.
	OldestClaimableAge time.Duration
}

// QueueStats reads every queue's depth, claimable messages and oldest
// claimable age in one statement, ordered by queue name. It is the same
// reading the queue gauges make, for callers that want it on demand.
func QueueStats(ctx context.Context, q Querier) ([]QueueStat, error) {
	rows, err := q.Query(ctx, `SELECT q.queue_name, count(m.msg_id),
			count(m.msg_id) FILTER (WHERE m.vt <= clock_timestamp()),
			coalesce(extract(epoch FROM clock_timestamp() - min(m.enqueued_at) FILTER (WHERE m.vt <= clock_timestamp())), 0)::float8
		FROM tasker.queues q LEFT JOIN tasker.queue_messages m ON m.queue_name = q.queue_name
		GROUP BY q.queue_name ORDER BY q.queue_name`)
	if err != nil {
		return nil, fmt.Errorf("reading queue stats: %w", err)
	}
	out := []QueueStat{}
	var s QueueStat
	var age float64
	_, err = pgx.ForEachRow(rows, []any{&s.Queue, &s.Depth, &s.Claimable, &age}, func() error {
		s.OldestClaimableAge = time.Duration(age * float64(time.Second))
		out = append(out, s)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading queue stats: %w", err)
	}
	return out, nil
}

// WorkerRow is one worker's presence record.
type WorkerRow struct {
	WorkerID        string
	Namespaces      []string
	Hostname        string
	PID             int
	StartedAt       time.Time
	LastHeartbeatAt time.Time
}

// LiveWorkers lists the workers whose last heartbeat is within fresh, newest
// start first. Unlike LiveWorkersByNamespace it only reads.
func LiveWorkers(ctx context.Context, q Querier, fresh time.Duration) ([]WorkerRow, error) {
	rows, err := q.Query(ctx, `SELECT worker_id, namespaces, hostname, pid, started_at, last_heartbeat_at
		FROM tasker.workers WHERE last_heartbeat_at >= now() - $1::interval
		ORDER BY started_at DESC, worker_id`, fresh)
	if err != nil {
		return nil, fmt.Errorf("listing live workers: %w", err)
	}
	out := []WorkerRow{}
	var w WorkerRow
	_, err = pgx.ForEachRow(rows, []any{&w.WorkerID, &w.Namespaces, &w.Hostname, &w.PID, &w.StartedAt, &w.LastHeartbeatAt}, func() error {
		out = append(out, w)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing live workers: %w", err)
	}
	return out, nil
}

// Namespaces lists every registered namespace by name.
func Namespaces(ctx context.Context, q Querier) ([]string, error) {
	rows, err := q.Query(ctx, `SELECT name FROM tasker.task_namespaces ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("listing namespaces: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("listing namespaces: %w", err)
	}
	return names, nil
}
