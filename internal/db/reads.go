package db

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
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

// ErrAlreadyExists is returned (wrapped) by an insert whose unique key is
// taken. It is the one place a unique violation (SQLSTATE 23505) becomes a
// domain error.
var ErrAlreadyExists = errors.New("already exists")

// uniqueViolation maps a unique violation to ErrAlreadyExists, naming what
// was being written.
func uniqueViolation(err error, what string) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return fmt.Errorf("%s: %w", what, ErrAlreadyExists)
	}
	return fmt.Errorf("writing %s: %w", what, err)
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

// ListTasksParams selects tasks: every field set narrows the selection.
type ListTasksParams struct {
	States              []string
	Namespace           string
	Name                string
	CreatedAfter        *time.Time // exclusive
	CreatedBefore       *time.Time // exclusive
	CorrelationID       *uuid.UUID
	ParentCorrelationID *uuid.UUID
	// After is the keyset cursor: only tasks older than this (created_at,
	// task_uuid) pair, in the listing's order, are returned.
	After *TaskKey
	// Limit bounds the rows returned; it must be positive.
	Limit int
}

// TaskKey is a task's place in the newest-first order of ListTasks.
type TaskKey struct {
	CreatedAt time.Time
	TaskUUID  uuid.UUID
}

// ListTasks returns up to p.Limit tasks that p selects, newest first (by
// created_at, then task_uuid). Paging is by keyset (p.After), so a page costs
// the same however deep it is; the indexes behind each filter are in the
// task-search migration.
func ListTasks(ctx context.Context, q Querier, p ListTasksParams) ([]TaskRow, error) {
	sql, args, err := ListTasksQuery(ctx, q, p)
	if err != nil || sql == "" {
		return nil, err
	}
	rows, err := q.Query(ctx, sql, args)
	if err != nil {
		return nil, fmt.Errorf("listing tasks: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (TaskRow, error) { return scanTask(r) })
	if err != nil {
		return nil, fmt.Errorf("listing tasks: %w", err)
	}
	return out, nil
}

// ListTasksQuery is the statement ListTasks runs for p, exported so that its
// plans can be checked (EXPLAIN) at scale. It resolves a namespace or name
// filter to template rows first; an empty sql means nothing can match.
//
// Each page must come from an index scan in (created_at, task_uuid) order
// that stops after a page. One equality on an indexed column allows that
// directly. A filter with several values (several template versions, several
// states) is read as one such scan per value, each limited to a page, and
// the pages merged: at most values × limit rows however many tasks match.
func ListTasksQuery(ctx context.Context, q Querier, p ListTasksParams) (string, pgx.NamedArgs, error) {
	if p.Limit <= 0 {
		return "", nil, errors.New("listing tasks: limit must be positive")
	}
	var where []string
	args := pgx.NamedArgs{"limit": p.Limit}
	from := "tasker.tasks t"
	var namedTasks []uuid.UUID
	if p.Namespace != "" || p.Name != "" {
		rows, err := q.Query(ctx, `SELECT nt.named_task_uuid FROM tasker.named_tasks nt
			JOIN tasker.task_namespaces ns ON ns.task_namespace_uuid = nt.task_namespace_uuid
			WHERE ($1 = '' OR ns.name = $1) AND ($2 = '' OR nt.name = $2)`, p.Namespace, p.Name)
		if err == nil {
			namedTasks, err = pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
		}
		if err != nil {
			return "", nil, fmt.Errorf("listing tasks: resolving templates: %w", err)
		}
		if len(namedTasks) == 0 {
			return "", nil, nil
		}
	}
	switch {
	case len(namedTasks) == 1:
		where = append(where, "t.named_task_uuid = @named_task")
		args["named_task"] = namedTasks[0]
	case len(namedTasks) > 1:
		from = "unnest(@named_tasks::uuid[]) AS k(v)"
		where = append(where, "t.named_task_uuid = k.v")
		args["named_tasks"] = namedTasks
	}
	switch {
	case len(p.States) == 1:
		where = append(where, "t.state = @state")
		args["state"] = p.States[0]
	case len(p.States) > 1 && len(namedTasks) <= 1:
		from = "unnest(@states::text[]) AS k(v)"
		where = append(where, "t.state = k.v")
		args["states"] = p.States
	case len(p.States) > 1:
		where = append(where, "t.state = ANY(@states)")
		args["states"] = p.States
	}
	if p.CreatedAfter != nil {
		where = append(where, "t.created_at > @created_after")
		args["created_after"] = *p.CreatedAfter
	}
	if p.CreatedBefore != nil {
		where = append(where, "t.created_at < @created_before")
		args["created_before"] = *p.CreatedBefore
	}
	if p.CorrelationID != nil {
		where = append(where, "t.correlation_id = @correlation_id")
		args["correlation_id"] = *p.CorrelationID
	}
	if p.ParentCorrelationID != nil {
		where = append(where, "t.parent_correlation_id = @parent_correlation_id")
		args["parent_correlation_id"] = *p.ParentCorrelationID
	}
	if p.After != nil {
		where = append(where, "(t.created_at, t.task_uuid) < (@after_at, @after_uuid)")
		args["after_at"], args["after_uuid"] = p.After.CreatedAt, p.After.TaskUUID
	}
	const order = " ORDER BY t.created_at DESC, t.task_uuid DESC LIMIT @limit"
	cond := "true"
	if len(where) > 0 {
		cond = strings.Join(where, " AND ")
	}
	inner := "SELECT t.* FROM tasker.tasks t WHERE " + cond
	if from != "tasker.tasks t" {
		inner = "SELECT t.* FROM " + from + " CROSS JOIN LATERAL (SELECT t.* FROM tasker.tasks t WHERE " + cond + order + ") t"
	}
	sql := "SELECT " + taskColumns + " FROM (" + inner + `) t
	JOIN tasker.named_tasks nt ON nt.named_task_uuid = t.named_task_uuid
	JOIN tasker.task_namespaces ns ON ns.task_namespace_uuid = nt.task_namespace_uuid` + order
	return sql, args, nil
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
	// Meta is the history row's metadata when it says more than the reason
	// (an operator action's actor and message); nil otherwise.
	Meta []byte
}

// TaskTransitions returns a task's own state history, oldest first.
func TaskTransitions(ctx context.Context, q Querier, taskUUID uuid.UUID) ([]Transition, error) {
	rows, err := q.Query(ctx, `SELECT coalesce(from_state, ''), to_state, coalesce(reason, ''), created_at,
			CASE WHEN metadata - 'reason' = '{}' THEN NULL ELSE metadata END
		FROM tasker.task_transitions WHERE task_uuid = $1 ORDER BY task_transition_id`, taskUUID)
	if err != nil {
		return nil, fmt.Errorf("reading history of task %s: %w", taskUUID, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Transition, error) {
		var x Transition
		err := r.Scan(&x.From, &x.To, &x.Reason, &x.At, &x.Meta)
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
	rows, err := q.Query(ctx, `SELECT workflow_step_uuid, coalesce(from_state, ''), to_state, coalesce(reason, ''), created_at,
			CASE WHEN metadata ? 'actor' THEN metadata END
		FROM tasker.workflow_step_transitions WHERE task_uuid = $1 ORDER BY workflow_step_transition_id`, taskUUID)
	if err != nil {
		return nil, fmt.Errorf("reading step history of task %s: %w", taskUUID, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Transition, error) {
		var x Transition
		err := r.Scan(&x.StepUUID, &x.From, &x.To, &x.Reason, &x.At, &x.Meta)
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

// CancelledSteps returns those of ids whose step is cancelled.
func CancelledSteps(ctx context.Context, q Querier, ids []uuid.UUID) ([]uuid.UUID, error) {
	rows, err := q.Query(ctx, `SELECT workflow_step_uuid FROM tasker.workflow_steps
		WHERE workflow_step_uuid = ANY($1) AND state = 'cancelled'`, ids)
	if err != nil {
		return nil, fmt.Errorf("reading cancelled steps: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return nil, fmt.Errorf("reading cancelled steps: %w", err)
	}
	return out, nil
}

// HistoryEvent is one row of a task's or one of its steps' state history,
// with the row's id so a reader can ask for what came after it.
type HistoryEvent struct {
	// ID is the history row's id, in its own table's sequence.
	ID int64
	// Step is true for a step transition.
	Step     bool
	StepUUID uuid.UUID
	StepName string
	Transition
}

// TaskHistoryAfter returns the task's transitions with id > afterTask and its
// steps' with id > afterStep, each table's in order (tasks first).
func TaskHistoryAfter(ctx context.Context, q Querier, taskUUID uuid.UUID, afterTask, afterStep int64) ([]HistoryEvent, error) {
	rows, err := q.Query(ctx, `SELECT * FROM (
			SELECT false AS step, task_transition_id AS id, NULL::uuid AS step_uuid, '' AS step_name,
				coalesce(from_state, '') AS from_state, to_state, coalesce(reason, '') AS reason, created_at,
				CASE WHEN metadata - 'reason' = '{}' THEN NULL ELSE metadata END AS meta
			FROM tasker.task_transitions WHERE task_uuid = $1 AND task_transition_id > $2
			UNION ALL
			SELECT true, st.workflow_step_transition_id, st.workflow_step_uuid, s.name, coalesce(st.from_state, ''),
				st.to_state, coalesce(st.reason, ''), st.created_at, CASE WHEN st.metadata ? 'actor' THEN st.metadata END
			FROM tasker.workflow_step_transitions st
			JOIN tasker.workflow_steps s ON s.workflow_step_uuid = st.workflow_step_uuid
			WHERE st.task_uuid = $1 AND st.workflow_step_transition_id > $3) h
		ORDER BY created_at, step, id`, taskUUID, afterTask, afterStep)
	if err != nil {
		return nil, fmt.Errorf("reading history of task %s: %w", taskUUID, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (HistoryEvent, error) {
		var e HistoryEvent
		var step *uuid.UUID
		err := r.Scan(&e.Step, &e.ID, &step, &e.StepName, &e.From, &e.To, &e.Reason, &e.At, &e.Meta)
		if step != nil {
			e.StepUUID = *step
		}
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("reading history of task %s: %w", taskUUID, err)
	}
	return out, nil
}
