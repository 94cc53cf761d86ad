package db

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/taskerhq/tasker/internal/state"
)

// LockTaskParams names the task to lock.
type LockTaskParams struct {
	TaskUUID uuid.UUID
	// SkipLocked returns ErrNotFound instead of waiting when another
	// transaction holds the task.
	SkipLocked bool
}

// LockTask locks a task row for the rest of the caller's transaction (FOR
// UPDATE: every decision about a task is serialised on it) and reads what
// orchestration decides with. ErrNotFound when there is no such task, or
// it is held elsewhere and SkipLocked is set.
func (f *Funcs) LockTask(ctx context.Context, q Querier, p LockTaskParams) (t LockedTask, err error) {
	ctx, sc := f.in.Begin(ctx, Call{Function: "lock_task"})
	defer func() { sc.End(err) }()
	sql := `SELECT t.task_uuid, t.state, t.correlation_id, ns.name, nt.name, t.trace_context
		FROM tasker.tasks t
		JOIN tasker.named_tasks nt ON nt.named_task_uuid = t.named_task_uuid
		JOIN tasker.task_namespaces ns ON ns.task_namespace_uuid = nt.task_namespace_uuid
		WHERE t.task_uuid = $1 FOR UPDATE OF t`
	if p.SkipLocked {
		sql += " SKIP LOCKED"
	}
	var st string
	err = q.QueryRow(ctx, sql, p.TaskUUID).Scan(&t.UUID, &st, &t.CorrelationID, &t.Namespace, &t.Name, &t.TraceContext)
	if err != nil {
		return t, noRows(err, fmt.Sprintf("task %s", p.TaskUUID))
	}
	t.State = state.Task(st)
	return t, nil
}

// PendingMessagesParams pages through a queue's visible messages.
type PendingMessagesParams struct {
	Queue string
	// MinAge leaves out messages younger than this (their wake-up may still
	// be on its way).
	MinAge time.Duration
	// After is the last id of the previous page.
	After int64
	Limit int
}

// PendingMessages lists the ids of visible messages, oldest first, without
// hiding them: the consumer that processes one locks it for the length of its
// transaction. It is the orchestration fallback poller's read.
func (f *Funcs) PendingMessages(ctx context.Context, q Querier, p PendingMessagesParams) (ids []int64, err error) {
	ctx, sc := f.in.Begin(ctx, Call{Function: "pending_messages", Queue: p.Queue})
	defer func() { sc.End(err) }()
	rows, err := q.Query(ctx, `SELECT msg_id FROM tasker.queue_messages
		WHERE queue_name = $1 AND vt <= clock_timestamp() AND enqueued_at <= clock_timestamp() - make_interval(secs => $2)
			AND msg_id > $3
		ORDER BY msg_id LIMIT $4`, p.Queue, p.MinAge.Seconds(), p.After, p.Limit)
	if err != nil {
		return nil, fmt.Errorf("polling %s: %w", p.Queue, err)
	}
	if ids, err = pgx.CollectRows(rows, pgx.RowTo[int64]); err != nil {
		return nil, fmt.Errorf("polling %s: %w", p.Queue, err)
	}
	return ids, nil
}

// LockMessage locks message msgID of queue for the rest of the caller's
// transaction and reads it, for a consumer that settles it (archives it) in
// that transaction. ErrNotFound when it is gone, belongs to another queue, or
// another transaction holds it (SKIP LOCKED: that one is processing it).
func (f *Funcs) LockMessage(ctx context.Context, q Querier, queue string, msgID int64) (out TakenMessage, err error) {
	ctx, sc := f.in.Begin(ctx, Call{Function: "lock_message", Queue: queue, Messaging: "receive"})
	defer func() { sc.End(err) }()
	var waited float64
	err = q.QueryRow(ctx, `SELECT message, headers, extract(epoch FROM clock_timestamp() - enqueued_at)::float8
		FROM tasker.queue_messages WHERE msg_id = $1 AND queue_name = $2 FOR UPDATE SKIP LOCKED`, msgID, queue).
		Scan(&out.Body, &out.Headers, &waited)
	if err != nil {
		return out, noRows(err, fmt.Sprintf("message %d of %s", msgID, queue))
	}
	out.MsgID, out.Waited = msgID, time.Duration(waited*float64(time.Second))
	return out, nil
}

// NextRunAt is how long until the earliest run_at still ahead of a waiting
// delayed task, on the database's clock (the one the readiness poll compares
// run_at with); ok is false when no task waits for its run_at.
// statement_timestamp() is stable, so it bounds the scan of
// tasks_delayed_idx instead of filtering it.
func (f *Funcs) NextRunAt(ctx context.Context, q Querier) (d time.Duration, ok bool, err error) {
	ctx, sc := f.in.Begin(ctx, Call{Function: "next_run_at"})
	defer func() { sc.End(err) }()
	var secs *float64
	if err = q.QueryRow(ctx, `SELECT extract(epoch FROM min(run_at) - statement_timestamp())::float8 FROM tasker.tasks
		WHERE state = 'waiting_for_dependencies' AND run_at > statement_timestamp()`).Scan(&secs); err != nil {
		return 0, false, fmt.Errorf("reading the next run_at: %w", err)
	}
	if secs == nil {
		return 0, false, nil
	}
	return time.Duration(*secs * float64(time.Second)), true, nil
}
