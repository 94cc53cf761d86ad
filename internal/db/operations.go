package db

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/taskerhq/tasker/internal/state"
)

// The statements of operator actions on a task: cancel, retry from failed
// steps, resolve a failed step by hand. Each runs in the caller's
// transaction, which holds the task's row lock (as result processing does),
// and writes the step changes and their history rows in one statement.

// TaskStepsChange names a task whose steps an operator action changes and
// what every history row it writes carries.
type TaskStepsChange struct {
	TaskUUID      uuid.UUID
	CorrelationID uuid.UUID
	// Metadata is each history row's metadata: the reason, actor and the
	// operator's message.
	Metadata map[string]any
}

// CancelTaskSteps cancels every step of the task that has not finished, so
// pending and enqueued ones never run and running ones are stale; steps in
// error keep their error. Each cancelled step gets a history row with
// reason task_cancelled. It returns how many steps it cancelled.
func (f *Funcs) CancelTaskSteps(ctx context.Context, q Querier, p TaskStepsChange) (n int64, err error) {
	ctx, sc := f.in.Begin(ctx, Call{Function: "cancel_task_steps"})
	defer func() { sc.End(err) }()
	meta, err := json.Marshal(orEmpty(p.Metadata))
	if err != nil {
		return 0, fmt.Errorf("cancelling steps of task %s: encoding metadata: %w", p.TaskUUID, err)
	}
	tag, err := q.Exec(ctx, `WITH old AS (
			SELECT workflow_step_uuid, state, attempts FROM tasker.workflow_steps
			WHERE task_uuid = $1 AND state NOT IN ('complete', 'cancelled', 'resolved_manually', 'error')
			FOR UPDATE),
		upd AS (
			UPDATE tasker.workflow_steps s
			SET state = 'cancelled', in_process = false, processed = true, processed_at = clock_timestamp(),
				lease_expires_at = NULL, next_retry_at = NULL, updated_at = clock_timestamp()
			FROM old WHERE s.workflow_step_uuid = old.workflow_step_uuid)
		INSERT INTO tasker.workflow_step_transitions
			(workflow_step_uuid, task_uuid, from_state, to_state, reason, attempt, metadata, correlation_id)
		SELECT old.workflow_step_uuid, $1, old.state, 'cancelled', 'task_cancelled', old.attempts, $2, $3 FROM old`,
		p.TaskUUID, meta, p.CorrelationID)
	if err != nil {
		return 0, fmt.Errorf("cancelling steps of task %s: %w", p.TaskUUID, err)
	}
	return tag.RowsAffected(), nil
}

// UnfinishedChildTasks returns the tasks that name parentCorrelationID as
// their parent and have not finished, in task order (the order a caller
// locks them in).
func (f *Funcs) UnfinishedChildTasks(ctx context.Context, q Querier, parentCorrelationID uuid.UUID) (out []uuid.UUID, err error) {
	ctx, sc := f.in.Begin(ctx, Call{Function: "unfinished_child_tasks"})
	defer func() { sc.End(err) }()
	rows, err := q.Query(ctx, `SELECT task_uuid FROM tasker.tasks
		WHERE parent_correlation_id = $1 AND NOT tasker.task_state_is_terminal(state)
		ORDER BY task_uuid`, parentCorrelationID)
	if err != nil {
		return nil, fmt.Errorf("reading unfinished child tasks: %w", err)
	}
	if out, err = pgx.CollectRows(rows, pgx.RowTo[uuid.UUID]); err != nil {
		return nil, fmt.Errorf("reading unfinished child tasks: %w", err)
	}
	return out, nil
}

// ResetFailedSteps takes every step of the task in error back to pending
// with a fresh budget of attempts: max_attempts grows by its old value on
// top of the attempts made, so the attempt count keeps counting and a late
// result of an earlier attempt can never be taken for a new one. Results
// are cleared. Each step gets a history row with reason operator_retry. It
// returns how many steps it reset.
func (f *Funcs) ResetFailedSteps(ctx context.Context, q Querier, p TaskStepsChange) (n int64, err error) {
	ctx, sc := f.in.Begin(ctx, Call{Function: "reset_failed_steps"})
	defer func() { sc.End(err) }()
	meta, err := json.Marshal(orEmpty(p.Metadata))
	if err != nil {
		return 0, fmt.Errorf("resetting failed steps of task %s: encoding metadata: %w", p.TaskUUID, err)
	}
	tag, err := q.Exec(ctx, `WITH old AS (
			SELECT workflow_step_uuid, attempts FROM tasker.workflow_steps
			WHERE task_uuid = $1 AND state = 'error' FOR UPDATE),
		upd AS (
			UPDATE tasker.workflow_steps s
			SET state = 'pending', max_attempts = s.attempts + s.max_attempts, results = NULL,
				in_process = false, processed = false, next_retry_at = NULL, backoff_request_ms = NULL,
				lease_expires_at = NULL, updated_at = clock_timestamp()
			FROM old WHERE s.workflow_step_uuid = old.workflow_step_uuid)
		INSERT INTO tasker.workflow_step_transitions
			(workflow_step_uuid, task_uuid, from_state, to_state, reason, attempt, metadata, correlation_id)
		SELECT old.workflow_step_uuid, $1, 'error', 'pending', 'operator_retry', old.attempts, $2, $3 FROM old`,
		p.TaskUUID, meta, p.CorrelationID)
	if err != nil {
		return 0, fmt.Errorf("resetting failed steps of task %s: %w", p.TaskUUID, err)
	}
	return tag.RowsAffected(), nil
}

// StepLookup names one step of a task by its name or its UUID.
type StepLookup struct {
	TaskUUID uuid.UUID
	// Step is the step's name, or its UUID in text form.
	Step string
}

// LockedStep is a step row locked for the rest of a transaction.
type LockedStep struct {
	UUID     uuid.UUID
	Name     string
	State    state.Step
	Attempts int
}

// LockStep locks the step p names (FOR UPDATE) and reads it; ErrNotFound
// when the task has no such step. A name that happens to parse as a UUID
// matches a step by either.
func (f *Funcs) LockStep(ctx context.Context, q Querier, p StepLookup) (out LockedStep, err error) {
	ctx, sc := f.in.Begin(ctx, Call{Function: "lock_step"})
	defer func() { sc.End(err) }()
	byUUID, perr := uuid.Parse(p.Step)
	var st string
	err = q.QueryRow(ctx, `SELECT workflow_step_uuid, state, name, attempts FROM tasker.workflow_steps
		WHERE task_uuid = $1 AND (name = $2 OR ($3 AND workflow_step_uuid = $4)) FOR UPDATE`,
		p.TaskUUID, p.Step, perr == nil, byUUID).Scan(&out.UUID, &st, &out.Name, &out.Attempts)
	if err != nil {
		return LockedStep{}, noRows(err, fmt.Sprintf("step %q of task %s", p.Step, p.TaskUUID))
	}
	out.State = state.Step(st)
	return out, nil
}

// ResolveStepParams is a failed step an operator resolves by hand.
type ResolveStepParams struct {
	TaskUUID      uuid.UUID
	StepUUID      uuid.UUID
	CorrelationID uuid.UUID
	// Attempt is the step's attempt count, recorded in the history row.
	Attempt int
	// Results is the step's stored result document (what a worker's result
	// would hold), which the steps depending on it read.
	Results json.RawMessage
	// Metadata is the history row's metadata (reason, actor, message).
	Metadata map[string]any
}

// ResolveStep moves a step from error to resolved_manually with p.Results
// as its result and writes its history row. ok is false, and nothing is
// written, when the step was not in error.
func (f *Funcs) ResolveStep(ctx context.Context, q Querier, p ResolveStepParams) (ok bool, err error) {
	ctx, sc := f.in.Begin(ctx, Call{Function: "resolve_step"})
	defer func() { sc.End(err) }()
	meta, err := json.Marshal(orEmpty(p.Metadata))
	if err != nil {
		return false, fmt.Errorf("resolving step %s: encoding metadata: %w", p.StepUUID, err)
	}
	// The history row is inserted from the update's RETURNING, so a step
	// that was not in error gets no history row claiming it moved.
	tag, err := q.Exec(ctx, `WITH upd AS (
			UPDATE tasker.workflow_steps SET state = 'resolved_manually', results = $2, in_process = false,
				processed = true, processed_at = clock_timestamp(), next_retry_at = NULL, updated_at = clock_timestamp()
			WHERE workflow_step_uuid = $1 AND state = 'error'
			RETURNING workflow_step_uuid)
		INSERT INTO tasker.workflow_step_transitions
			(workflow_step_uuid, task_uuid, from_state, to_state, reason, attempt, metadata, correlation_id)
		SELECT upd.workflow_step_uuid, $3, 'error', 'resolved_manually', 'resolved_manually', $4, $5, $6 FROM upd`,
		p.StepUUID, []byte(p.Results), p.TaskUUID, p.Attempt, meta, p.CorrelationID)
	if err != nil {
		return false, fmt.Errorf("resolving step %s: %w", p.StepUUID, err)
	}
	return tag.RowsAffected() == 1, nil
}
