package db

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/taskerhq/tasker/internal/state"
)

// The statements of orchestration's batched hot path: one statement per
// phase for a whole batch of result messages and the tasks they touch.

// TakenMessage is an orchestration message taken off its queue: deleted and
// archived by the caller's transaction.
type TakenMessage struct {
	MsgID   int64
	Body    []byte
	Headers []byte
	// Waited is the time between its enqueue and this read, on the database's clock.
	Waited time.Duration
}

// TakeMessages deletes the messages ids of queue that no other transaction
// holds (SKIP LOCKED) and returns them; the delete commits with the
// caller's transaction or not at all. They are not archived: what they said
// is in the step's transition history, and the archive would double the
// WAL of every hop. The transaction is made asynchronous-commit: if a
// crash loses it, its messages are back in the queue and are processed
// again.
func (f *Funcs) TakeMessages(ctx context.Context, q Querier, queue string, ids []int64) (out []TakenMessage, err error) {
	ctx, sc := f.in.Begin(ctx, Call{Function: "take_messages", Queue: queue, Messaging: "receive"})
	defer func() { sc.End(err) }()
	// Messages are locked through the primary key, then deleted by the
	// row addresses the lock returned (a lock keeps them in place); the
	// queue's name is checked on the locked rows, never offered to the
	// planner as an index condition. A queue's statistics are those of
	// whatever moment ANALYZE caught it in (often empty: one row), and
	// given queue_name = $2 and a join the planner chose to scan the whole
	// queue once per message (0.5 s a statement with 1,800 results queued:
	// the orchestrator fell a minute behind).
	rows, err := q.Query(ctx, `WITH v AS MATERIALIZED (
			SELECT ctid, queue_name FROM tasker.queue_messages
			WHERE msg_id = ANY ($1) ORDER BY msg_id FOR UPDATE SKIP LOCKED
		), m AS (
			DELETE FROM tasker.queue_messages q
			WHERE q.ctid = ANY (ARRAY(SELECT v.ctid FROM v WHERE v.queue_name = $2))
			RETURNING q.msg_id, q.enqueued_at, q.message, q.headers
		)
		SELECT msg_id, message, headers, extract(epoch FROM clock_timestamp() - enqueued_at)::float8,
			set_config('synchronous_commit', 'off', true)
		FROM m ORDER BY msg_id`, ids, queue)
	if err != nil {
		return nil, fmt.Errorf("taking messages of %s: %w", queue, err)
	}
	out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (TakenMessage, error) {
		var m TakenMessage
		var waited float64
		err := r.Scan(&m.MsgID, &m.Body, &m.Headers, &waited, nil)
		m.Waited = time.Duration(waited * float64(time.Second))
		return m, err
	})
	if err != nil {
		return nil, fmt.Errorf("taking messages of %s: %w", queue, err)
	}
	return out, nil
}

// StepRef names a step of a task.
type StepRef struct {
	TaskUUID uuid.UUID
	StepUUID uuid.UUID
}

// LockedTask is a task row locked for the rest of a transaction.
type LockedTask struct {
	UUID          uuid.UUID
	State         state.Task
	CorrelationID uuid.UUID
	Namespace     string
	Name          string
	// TraceContext is the creating request's trace context (set by LockTask).
	TraceContext []byte
}

// ResultStep is what applying a result needs of its step.
type ResultStep struct {
	UUID        uuid.UUID
	Name        string
	State       state.Step
	Attempts    int
	MaxAttempts int
	Retryable   bool
	BackoffBase time.Duration
	BackoffCap  time.Duration
	// Results is the result the worker stored.
	Results []byte
}

// ResultTarget is a locked task and one of its steps.
type ResultTarget struct {
	Task LockedTask
	Step ResultStep
}

// LockResultTargets locks the tasks of refs, in task order so that two
// orchestrators locking overlapping sets cannot deadlock, and reads the
// steps named (lock_result_targets). A ref whose task or step is gone is
// left out.
func (f *Funcs) LockResultTargets(ctx context.Context, q Querier, refs []StepRef) (out []ResultTarget, err error) {
	ctx, sc := f.in.Begin(ctx, Call{Function: "lock_result_targets"})
	defer func() { sc.End(err) }()
	tasks, steps := make([]uuid.UUID, len(refs)), make([]uuid.UUID, len(refs))
	for i, r := range refs {
		tasks[i], steps[i] = r.TaskUUID, r.StepUUID
	}
	rows, err := q.Query(ctx, `SELECT task_uuid, task_state, correlation_id, namespace, task_name, step_uuid, step_name,
			step_state, attempts, max_attempts, retryable, backoff_base_ms, backoff_cap_ms, results
		FROM tasker.lock_result_targets($1, $2)`, tasks, steps)
	if err != nil {
		return nil, fmt.Errorf("locking tasks: %w", err)
	}
	out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (ResultTarget, error) {
		var t ResultTarget
		var tstate, sstate string
		var baseMs, capMs int32
		err := r.Scan(&t.Task.UUID, &tstate, &t.Task.CorrelationID, &t.Task.Namespace, &t.Task.Name,
			&t.Step.UUID, &t.Step.Name, &sstate, &t.Step.Attempts, &t.Step.MaxAttempts, &t.Step.Retryable,
			&baseMs, &capMs, &t.Step.Results)
		t.Task.State, t.Step.State = state.Task(tstate), state.Step(sstate)
		t.Step.BackoffBase = time.Duration(baseMs) * time.Millisecond
		t.Step.BackoffCap = time.Duration(capMs) * time.Millisecond
		return t, err
	})
	if err != nil {
		return nil, fmt.Errorf("locking tasks: %w", err)
	}
	return out, nil
}

// StepTransition is one step's compare-and-swap.
type StepTransition struct {
	StepUUID uuid.UUID
	From, To state.Step
	Metadata map[string]any
	// Backoff is the retry delay when To is waiting_for_retry.
	Backoff time.Duration
}

// TransitionSteps applies transitions (no step twice) in one statement
// (transition_step_states) and returns the steps that moved; a step no
// longer in its From state is left alone and not returned.
func (f *Funcs) TransitionSteps(ctx context.Context, q Querier, ts []StepTransition) (moved []uuid.UUID, err error) {
	ctx, sc := f.in.Begin(ctx, Call{Function: "transition_step_states"})
	defer func() { sc.End(err) }()
	n := len(ts)
	steps, from, to := make([]uuid.UUID, n), make([]string, n), make([]string, n)
	meta, backoff := make([][]byte, n), make([]*int32, n)
	for i, t := range ts {
		steps[i], from[i], to[i] = t.StepUUID, string(t.From), string(t.To)
		if meta[i], err = json.Marshal(orEmpty(t.Metadata)); err != nil {
			return nil, fmt.Errorf("transition_step_states: encoding metadata: %w", err)
		}
		if t.To == state.StepWaitingForRetry {
			ms := int32(t.Backoff / time.Millisecond)
			backoff[i] = &ms
		}
	}
	rows, err := q.Query(ctx, "SELECT step_uuid FROM tasker.transition_step_states($1, $2, $3, $4, $5)",
		steps, from, to, meta, backoff)
	if err != nil {
		return nil, fmt.Errorf("transition_step_states: %w", err)
	}
	if moved, err = pgx.CollectRows(rows, pgx.RowTo[uuid.UUID]); err != nil {
		return nil, fmt.Errorf("transition_step_states: %w", err)
	}
	return moved, nil
}

// StepReadiness returns the readiness of every step of tasks, ordered by
// task and step (step_readiness).
func (f *Funcs) StepReadiness(ctx context.Context, q Querier, tasks []uuid.UUID) (out []StepReadiness, err error) {
	ctx, sc := f.in.Begin(ctx, Call{Function: "step_readiness"})
	defer func() { sc.End(err) }()
	rows, err := q.Query(ctx, `SELECT workflow_step_uuid, task_uuid, named_step_uuid, name, current_state,
		dependencies_satisfied, retry_eligible, ready_for_execution, last_failure_at, next_retry_at,
		total_parents, completed_parents, attempts, max_attempts, backoff_request_ms, last_attempted_at
		FROM tasker.step_readiness($1)`, tasks)
	if err != nil {
		return nil, fmt.Errorf("step_readiness: %w", err)
	}
	if out, err = pgx.CollectRows(rows, scanReadiness); err != nil {
		return nil, fmt.Errorf("step_readiness: %w", err)
	}
	return out, nil
}

func scanReadiness(r pgx.CollectableRow) (StepReadiness, error) {
	var s StepReadiness
	err := r.Scan(&s.StepUUID, &s.TaskUUID, &s.NamedStepUUID, &s.Name, &s.CurrentState,
		&s.DependenciesSatisfied, &s.RetryEligible, &s.ReadyForExecution, &s.LastFailureAt, &s.NextRetryAt,
		&s.TotalParents, &s.CompletedParents, &s.Attempts, &s.MaxAttempts, &s.BackoffRequestMs, &s.LastAttemptedAt)
	return s, err
}

// StepToEnqueue is one ready step and the worker queue its message goes to.
type StepToEnqueue struct {
	TaskUUID uuid.UUID
	StepUUID uuid.UUID
	Queue    string
	// Headers travel with the message (the enqueue's trace context).
	Headers map[string]string
}

// EnqueueReadySteps moves steps of many tasks to enqueued and sends their
// messages in one statement (enqueue_ready_steps), without NOTIFY: the
// caller wakes the workers once per batch after commit. Steps no longer
// pending or waiting for retry are skipped.
func (f *Funcs) EnqueueReadySteps(ctx context.Context, q Querier, steps []StepToEnqueue) (out []EnqueuedStep, err error) {
	ctx, sc := f.in.Begin(ctx, Call{Function: "enqueue_ready_steps", Messaging: "send", Queue: commonQueue(steps)})
	defer func() { sc.End(err) }()
	n := len(steps)
	tasks, ids, queues, headers := make([]uuid.UUID, n), make([]uuid.UUID, n), make([]string, n), make([][]byte, n)
	for i, s := range steps {
		tasks[i], ids[i], queues[i] = s.TaskUUID, s.StepUUID, s.Queue
		if headers[i], err = json.Marshal(orEmptyS(s.Headers)); err != nil {
			return nil, fmt.Errorf("enqueue_ready_steps: encoding headers: %w", err)
		}
	}
	rows, err := q.Query(ctx, "SELECT task_uuid, step_uuid, step_name, msg_id FROM tasker.enqueue_ready_steps($1, $2, $3, $4)",
		tasks, ids, queues, headers)
	if err != nil {
		return nil, fmt.Errorf("enqueue_ready_steps: %w", err)
	}
	out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (EnqueuedStep, error) {
		var e EnqueuedStep
		err := r.Scan(&e.TaskUUID, &e.StepUUID, &e.StepName, &e.MsgID)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("enqueue_ready_steps: %w", err)
	}
	return out, nil
}

// commonQueue is the queue every step goes to, or "" when they differ.
func commonQueue(steps []StepToEnqueue) string {
	if len(steps) == 0 || slices.ContainsFunc(steps, func(s StepToEnqueue) bool { return s.Queue != steps[0].Queue }) {
		return ""
	}
	return steps[0].Queue
}

// TaskHop is one hop of a task's path.
type TaskHop struct {
	TaskUUID uuid.UUID
	From, To state.Task
	Reason   string
}

// ErrTaskMoved is returned when a task was not in the state a transition
// expected: another transaction moved it.
var ErrTaskMoved = errors.New("task state changed concurrently")

// TransitionTaskPaths moves tasks along their paths in one statement
// (transition_task_paths): hops of one task are consecutive and in order.
// Every task must move; one that does not fails the call with ErrTaskMoved.
func (f *Funcs) TransitionTaskPaths(ctx context.Context, q Querier, hops []TaskHop, processor uuid.UUID) (err error) {
	ctx, sc := f.in.Begin(ctx, Call{Function: "transition_task_paths"})
	defer func() { sc.End(err) }()
	n := len(hops)
	tasks, from, to, reasons := make([]uuid.UUID, n), make([]string, n), make([]string, n), make([]string, n)
	want := map[uuid.UUID]bool{}
	for i, h := range hops {
		tasks[i], from[i], to[i], reasons[i] = h.TaskUUID, string(h.From), string(h.To), h.Reason
		want[h.TaskUUID] = true
	}
	rows, err := q.Query(ctx, "SELECT task_uuid FROM tasker.transition_task_paths($1, $2, $3, $4, $5)",
		tasks, from, to, reasons, processor)
	if err != nil {
		return fmt.Errorf("transition_task_paths: %w", err)
	}
	moved, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return fmt.Errorf("transition_task_paths: %w", err)
	}
	if len(moved) != len(want) {
		for _, m := range moved {
			delete(want, m)
		}
		for id := range want {
			return fmt.Errorf("task %s: %w", id, ErrTaskMoved)
		}
	}
	return nil
}
