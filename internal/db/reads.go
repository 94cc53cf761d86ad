package db

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// ErrNotFound is returned (wrapped) by reads of a row that does not exist.
// It is the one place pgx.ErrNoRows becomes a domain error.
var ErrNotFound = errors.New("not found")

// noRows maps pgx.ErrNoRows to ErrNotFound, naming what was looked for.
func noRows(err error, what string) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return fmt.Errorf("reading %s: %w", what, err)
}

// TaskRow is a task as stored, with its template's identity.
type TaskRow struct {
	TaskUUID            uuid.UUID
	Namespace           string
	Name                string
	Version             string
	State               string
	CorrelationID       uuid.UUID
	ParentCorrelationID *uuid.UUID
	Context             []byte
	Initiator           string
	SourceSystem        string
	Reason              string
	Tags                []byte
	Priority            int
	CreatedAt           time.Time
	UpdatedAt           time.Time
	CompletedAt         *time.Time
	TraceContext        []byte
}

const taskColumns = `t.task_uuid, ns.name, nt.name, nt.version, t.state, t.correlation_id, t.parent_correlation_id,
	t.context, coalesce(t.initiator, ''), coalesce(t.source_system, ''), coalesce(t.reason, ''), t.tags, t.priority,
	t.created_at, t.updated_at, t.completed_at, t.trace_context`

const taskFrom = ` FROM tasker.tasks t
	JOIN tasker.named_tasks nt ON nt.named_task_uuid = t.named_task_uuid
	JOIN tasker.task_namespaces ns ON ns.task_namespace_uuid = nt.task_namespace_uuid `

func scanTask(r pgx.Row) (TaskRow, error) {
	var t TaskRow
	err := r.Scan(&t.TaskUUID, &t.Namespace, &t.Name, &t.Version, &t.State, &t.CorrelationID, &t.ParentCorrelationID,
		&t.Context, &t.Initiator, &t.SourceSystem, &t.Reason, &t.Tags, &t.Priority, &t.CreatedAt, &t.UpdatedAt,
		&t.CompletedAt, &t.TraceContext)
	return t, err
}

// GetTask reads one task; ErrNotFound when it does not exist.
func GetTask(ctx context.Context, q Querier, taskUUID uuid.UUID) (*TaskRow, error) {
	t, err := scanTask(q.QueryRow(ctx, "SELECT "+taskColumns+taskFrom+"WHERE t.task_uuid = $1", taskUUID))
	if err != nil {
		return nil, noRows(err, "task "+taskUUID.String())
	}
	return &t, nil
}

// ListTasksParams selects tasks; exactly one field is set.
type ListTasksParams struct {
	CorrelationID       *uuid.UUID
	ParentCorrelationID *uuid.UUID
}

// ListTasks returns the tasks p selects, oldest first.
func ListTasks(ctx context.Context, q Querier, p ListTasksParams) ([]TaskRow, error) {
	where, arg := "t.correlation_id = $1", p.CorrelationID
	if p.ParentCorrelationID != nil {
		where, arg = "t.parent_correlation_id = $1", p.ParentCorrelationID
	}
	if arg == nil {
		return nil, errors.New("listing tasks: no filter given")
	}
	rows, err := q.Query(ctx, "SELECT "+taskColumns+taskFrom+"WHERE "+where+" ORDER BY t.created_at", *arg)
	if err != nil {
		return nil, fmt.Errorf("listing tasks: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (TaskRow, error) { return scanTask(r) })
	if err != nil {
		return nil, fmt.Errorf("listing tasks: %w", err)
	}
	return out, nil
}

// StepOutcome is what a task view needs of each step: whether it is a leaf
// (nothing depends on it) and its stored result.
type StepOutcome struct {
	Name    string
	State   string
	Results []byte
	Leaf    bool
}

// TaskStepOutcomes returns the outcomes of a task's steps, least recently
// updated first.
func TaskStepOutcomes(ctx context.Context, q Querier, taskUUID uuid.UUID) ([]StepOutcome, error) {
	rows, err := q.Query(ctx, `SELECT s.name, s.state, s.results,
			NOT EXISTS (SELECT 1 FROM tasker.workflow_step_edges e WHERE e.from_step_uuid = s.workflow_step_uuid) AS leaf
		FROM tasker.workflow_steps s WHERE s.task_uuid = $1 ORDER BY s.updated_at`, taskUUID)
	if err != nil {
		return nil, fmt.Errorf("reading steps of task %s: %w", taskUUID, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (StepOutcome, error) {
		var s StepOutcome
		err := r.Scan(&s.Name, &s.State, &s.Results, &s.Leaf)
		return s, err
	})
	if err != nil {
		return nil, fmt.Errorf("reading steps of task %s: %w", taskUUID, err)
	}
	return out, nil
}

// Transition is one row of a task's or step's state history.
type Transition struct {
	// StepUUID is set for step transitions.
	StepUUID uuid.UUID
	From     string
	To       string
	Reason   string
	At       time.Time
}

// TaskTransitions returns a task's own state history, oldest first.
func TaskTransitions(ctx context.Context, q Querier, taskUUID uuid.UUID) ([]Transition, error) {
	rows, err := q.Query(ctx, `SELECT coalesce(from_state, ''), to_state, coalesce(reason, ''), created_at
		FROM tasker.task_transitions WHERE task_uuid = $1 ORDER BY task_transition_id`, taskUUID)
	if err != nil {
		return nil, fmt.Errorf("reading history of task %s: %w", taskUUID, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Transition, error) {
		var x Transition
		err := r.Scan(&x.From, &x.To, &x.Reason, &x.At)
		return x, err
	})
	if err != nil {
		return nil, fmt.Errorf("reading history of task %s: %w", taskUUID, err)
	}
	return out, nil
}

// StepTransitions returns the state history of every step of a task,
// oldest first.
func StepTransitions(ctx context.Context, q Querier, taskUUID uuid.UUID) ([]Transition, error) {
	rows, err := q.Query(ctx, `SELECT workflow_step_uuid, coalesce(from_state, ''), to_state, coalesce(reason, ''), created_at
		FROM tasker.workflow_step_transitions WHERE task_uuid = $1 ORDER BY workflow_step_transition_id`, taskUUID)
	if err != nil {
		return nil, fmt.Errorf("reading step history of task %s: %w", taskUUID, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Transition, error) {
		var x Transition
		err := r.Scan(&x.StepUUID, &x.From, &x.To, &x.Reason, &x.At)
		return x, err
	})
	if err != nil {
		return nil, fmt.Errorf("reading step history of task %s: %w", taskUUID, err)
	}
	return out, nil
}

// StepRow is a step as stored, with the names of the steps it depends on.
type StepRow struct {
	StepUUID       uuid.UUID
	TaskUUID       uuid.UUID
	Name           string
	Handler        string
	State          string
	Attempts       int
	MaxAttempts    int
	Retryable      bool
	Results        []byte
	NextRetryAt    *time.Time
	LeaseExpiresAt *time.Time
	CreatedAt      time.Time
	UpdatedAt      time.Time
	ProcessedAt    *time.Time
	DependsOn      []string
}

// ListSteps returns a task's correlation ID and its steps in creation order;
// ErrNotFound when the task does not exist. The correlation ID comes with
// the existence check, so a read can be traced to its task at no cost.
func ListSteps(ctx context.Context, q Querier, taskUUID uuid.UUID) (uuid.UUID, []StepRow, error) {
	var corr uuid.UUID
	if err := q.QueryRow(ctx, "SELECT correlation_id FROM tasker.tasks WHERE task_uuid = $1", taskUUID).Scan(&corr); err != nil {
		return uuid.Nil, nil, noRows(err, "task "+taskUUID.String())
	}
	rows, err := q.Query(ctx, `SELECT s.workflow_step_uuid, s.task_uuid, s.name, s.handler, s.state, s.attempts,
			s.max_attempts, s.retryable, s.results, s.next_retry_at, s.lease_expires_at, s.created_at, s.updated_at, s.processed_at,
			coalesce((SELECT array_agg(p.name ORDER BY p.name) FROM tasker.workflow_step_edges e
				JOIN tasker.workflow_steps p ON p.workflow_step_uuid = e.from_step_uuid
				WHERE e.to_step_uuid = s.workflow_step_uuid), '{}')
		FROM tasker.workflow_steps s WHERE s.task_uuid = $1 ORDER BY s.workflow_step_uuid`, taskUUID)
	if err != nil {
		return uuid.Nil, nil, fmt.Errorf("reading steps of task %s: %w", taskUUID, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (StepRow, error) {
		var s StepRow
		err := r.Scan(&s.StepUUID, &s.TaskUUID, &s.Name, &s.Handler, &s.State, &s.Attempts, &s.MaxAttempts, &s.Retryable,
			&s.Results, &s.NextRetryAt, &s.LeaseExpiresAt, &s.CreatedAt, &s.UpdatedAt, &s.ProcessedAt, &s.DependsOn)
		return s, err
	})
	if err != nil {
		return uuid.Nil, nil, fmt.Errorf("reading steps of task %s: %w", taskUUID, err)
	}
	return corr, out, nil
}
