package orchestration

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskerhq/tasker/internal/db"
	"github.com/taskerhq/tasker/internal/queue"
	"github.com/taskerhq/tasker/internal/tracing"
)

// readinessLoop is the task readiness poller (StepEnqueuerService.process_batch):
// it resumes tasks whose retry backoff elapsed or whose delay ended and any
// task left pending or waiting. It runs at start, every ReadinessInterval,
// whenever a retry timer fires and at the earliest run_at of a delayed task
// it has seen, whichever process created that task.
func (s *Service) readinessLoop(ctx context.Context) {
	tick := time.NewTicker(s.cfg.ReadinessInterval)
	defer tick.Stop()
	for first := true; ; first = false {
		if !first {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			case <-s.wakeReadiness:
			}
		}
		s.pollReady(ctx)
		s.wakeAtNextRunAt(ctx)
	}
}

// pollReady runs readiness polls until one comes back short of a batch.
func (s *Service) pollReady(ctx context.Context) {
	for {
		n, err := s.ProcessReadyTasks(ctx)
		if err != nil {
			if ctx.Err() == nil {
				s.log.WarnContext(ctx, "readiness poll failed", "operation", "process_batch", "error", err)
			}
			return
		}
		if n < s.cfg.ReadinessBatch {
			return
		}
	}
}

// nextRunAtSQL is how long until the earliest run_at still ahead of a waiting
// delayed task, measured on the database's clock: the one the readiness poll
// compares run_at with. statement_timestamp() is stable, so it bounds the
// scan of tasks_delayed_idx instead of filtering it.
const nextRunAtSQL = `SELECT extract(epoch FROM min(run_at) - statement_timestamp())::float8 FROM tasker.tasks
	WHERE state = 'waiting_for_dependencies' AND run_at > statement_timestamp()`

// wakeAtNextRunAt sets a timer for the earliest future run_at unless one is
// already set for that time or earlier, so a delayed task starts when its
// time comes rather than at the next tick, even when another process created
// it or this one restarted since.
func (s *Service) wakeAtNextRunAt(ctx context.Context) {
	var secs *float64
	if err := s.pool.QueryRow(tracing.Suppress(ctx), nextRunAtSQL).Scan(&secs); err != nil {
		if ctx.Err() == nil {
			s.log.WarnContext(ctx, "reading the next run_at failed", "operation", "process_batch", "error", err)
		}
		return
	}
	if secs == nil {
		return
	}
	d := time.Duration(*secs * float64(time.Second))
	at := time.Now().Add(d)
	s.timersMu.Lock()
	armed := s.runAtWake
	if armed.After(time.Now()) && !armed.After(at) {
		s.timersMu.Unlock()
		return
	}
	s.runAtWake = at
	s.timersMu.Unlock()
	s.wakeAt(d)
}

// ProcessReadyTasks runs one readiness poll and returns how many tasks it found.
func (s *Service) ProcessReadyTasks(ctx context.Context) (int, error) {
	start := time.Now()
	ready, err := s.funcs.GetNextReadyTasks(tracing.Suppress(ctx), s.pool, s.cfg.ReadinessBatch)
	s.tr.Poll(ctx, "get_next_ready_tasks", start, len(ready), err, attribute.Int("batch_size", s.cfg.ReadinessBatch))
	if err != nil {
		return 0, err
	}
	for _, rt := range ready {
		if err := s.resumeTask(ctx, rt); err != nil {
			s.log.WarnContext(ctx, "resuming task failed", "task_uuid", rt.TaskUUID, "namespace", rt.Namespace,
				"operation", "process_batch", "error", err)
		}
	}
	return len(ready), nil
}

func (s *Service) resumeTask(ctx context.Context, rt db.ReadyTask) error {
	ev := s.events()
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		// SKIP LOCKED: another orchestrator (or a result for this task) is
		// already working on it and will evaluate it.
		t, err := s.lockTask(tracing.Suppress(ctx), tx, rt.TaskUUID, true)
		if err != nil || t == nil {
			return err
		}
		if t.state.Terminal() || t.state == "enqueuing_steps" || t.state == "blocked_by_failures" {
			return nil
		}
		// Continue the task's own trace: no message carries context here.
		var headers map[string]string
		_ = queue.DecodeHeaders(t.traceContext, &headers)
		tctx := tracing.WithCorrelationID(s.tr.Extract(ctx, headers), t.correlationID)
		tctx, span := s.tr.Start(tctx, "step_enqueuer.process_ready_task",
			trace.WithAttributes(tracing.IDs(t.correlationID, t.uuid, uuid.Nil, t.namespace, "")...),
			trace.WithAttributes(attribute.String("from_state", string(t.state))))
		ev.add(func() {
			s.log.InfoContext(tctx, "task evaluation started", "correlation_id", t.correlationID, "task_uuid", t.uuid,
				"namespace", t.namespace, "operation", "process_batch", "event", "task.evaluation_started", "trigger", "readiness_poller")
		})
		err = s.evaluateTask(tctx, tx, t, ev)
		tracing.End(span, err)
		return err
	})
	if err != nil {
		return fmt.Errorf("resuming task %s: %w", rt.TaskUUID, err)
	}
	ev.flush()
	if ev.retryIn > 0 {
		s.wakeAt(ev.retryIn)
	}
	return nil
}

// fallbackLoop finds orchestration messages whose notification was missed
// (listener reconnecting, a full buffer, a crashed orchestrator) and hands
// them to the processors.
func (s *Service) fallbackLoop(ctx context.Context, c *Consumers, results chan<- int64, jobs chan<- work) {
	tick := time.NewTicker(s.cfg.FallbackInterval)
	defer tick.Stop()
	for {
		minAge := s.cfg.FallbackMinAge
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-c.results.Resync:
			minAge = 0
		case <-c.requests.Resync:
			minAge = 0
		}
		s.drainQueue(ctx, queue.StepResults, minAge, func(id int64) bool {
			select {
			case results <- id:
				return true
			case <-ctx.Done():
				return false
			}
		})
		s.drainQueue(ctx, queue.TaskRequests, minAge, func(id int64) bool {
			select {
			case jobs <- work{queue: queue.TaskRequests, id: id}:
				return true
			case <-ctx.Done():
				return false
			}
		})
	}
}

// drainQueue hands every pending message of q to the processors, a page at
// a time, until a page comes back short.
func (s *Service) drainQueue(ctx context.Context, q string, minAge time.Duration, hand func(int64) bool) {
	const page = 500
	after := int64(0)
	for ctx.Err() == nil {
		{
			ids, err := s.pendingMessages(ctx, q, minAge, after, page)
			if err != nil {
				if ctx.Err() == nil {
					s.log.WarnContext(ctx, "fallback poll failed", "queue", q, "error", err)
				}
				return
			}
			if len(ids) > 0 {
				s.m.FallbackPollHits(ctx, q, len(ids))
				s.log.DebugContext(ctx, "fallback poll found messages", "queue", q, "count", len(ids))
			}
			for _, id := range ids {
				if !hand(id) {
					return
				}
			}
			if len(ids) < page {
				return
			}
			after = ids[len(ids)-1]
		}
	}
}

// pendingMessages lists visible messages at least minAge old. It does not hide
// them: the processors lock each message for the length of their transaction.
func (s *Service) pendingMessages(ctx context.Context, q string, minAge time.Duration, after int64, limit int) ([]int64, error) {
	rows, err := s.pool.Query(tracing.Suppress(ctx), `SELECT msg_id FROM tasker.queue_messages
		WHERE queue_name = $1 AND vt <= clock_timestamp() AND enqueued_at <= clock_timestamp() - make_interval(secs => $2)
			AND msg_id > $3
		ORDER BY msg_id LIMIT $4`, q, minAge.Seconds(), after, limit)
	if err != nil {
		return nil, fmt.Errorf("polling %s: %w", q, err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("polling %s: %w", q, err)
	}
	return ids, nil
}
