package db

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/taskerhq/tasker/internal/state"
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
// claimable age in one statement, ordered by queue name: the queue gauges'
// reading, and the overview's.
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

// QueueNames lists every queue by name.
func QueueNames(ctx context.Context, q Querier) ([]string, error) {
	rows, err := q.Query(ctx, `SELECT queue_name FROM tasker.queues ORDER BY queue_name`)
	if err != nil {
		return nil, fmt.Errorf("listing queues: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("listing queues: %w", err)
	}
	return names, nil
}

// TaskStateCount is how many tasks are in one state.
type TaskStateCount struct {
	State state.Task
	Tasks int64
}

// UnfinishedTasksByState counts the tasks in each state that is not
// terminal; every such state is listed, with 0 when no task is in it.
func UnfinishedTasksByState(ctx context.Context, q Querier) ([]TaskStateCount, error) {
	rows, err := q.Query(ctx, `SELECT s.state, coalesce(t.n, 0) FROM unnest(ARRAY['pending','initializing','enqueuing_steps',
			'steps_in_process','evaluating_results','waiting_for_dependencies','waiting_for_retry','blocked_by_failures']) AS s(state)
		LEFT JOIN (SELECT state, count(*) AS n FROM tasker.tasks WHERE NOT complete
			AND state NOT IN ('complete','error','cancelled','resolved_manually') GROUP BY state) t ON t.state = s.state`)
	if err != nil {
		return nil, fmt.Errorf("counting unfinished tasks: %w", err)
	}
	out := []TaskStateCount{}
	var st string
	var n int64
	if _, err := pgx.ForEachRow(rows, []any{&st, &n}, func() error {
		out = append(out, TaskStateCount{State: state.Task(st), Tasks: n})
		return nil
	}); err != nil {
		return nil, fmt.Errorf("counting unfinished tasks: %w", err)
	}
	return out, nil
}

// EnqueuedStepsByNamespace counts the enqueued steps of unfinished tasks
// (steps waiting for a worker) per namespace; every registered namespace is
// listed, with 0 when it has none.
func EnqueuedStepsByNamespace(ctx context.Context, q Querier) (map[string]int64, error) {
	rows, err := q.Query(ctx, `SELECT ns.name, count(s.workflow_step_uuid)
		FROM tasker.task_namespaces ns
		LEFT JOIN tasker.named_tasks nt ON nt.task_namespace_uuid = ns.task_namespace_uuid
		LEFT JOIN tasker.tasks t ON t.named_task_uuid = nt.named_task_uuid AND NOT t.complete
		LEFT JOIN tasker.workflow_steps s ON s.task_uuid = t.task_uuid AND s.state = 'enqueued'
		GROUP BY ns.name`)
	if err != nil {
		return nil, fmt.Errorf("counting enqueued steps: %w", err)
	}
	out := map[string]int64{}
	var ns string
	var n int64
	if _, err := pgx.ForEachRow(rows, []any{&ns, &n}, func() error {
		out[ns] = n
		return nil
	}); err != nil {
		return nil, fmt.Errorf("counting enqueued steps: %w", err)
	}
	return out, nil
}
